#include "producers/gateway/submission_service.h"

#include <ctime>

#include "common/ids.h"
#include "common/log.h"
#include "pages/pages.h"
#include "producers/gateway/api_keys.h"
#include "producers/gateway/cover.h"
#include "producers/gateway/phone.h"
#include "topics/proto_message.h"

namespace faxflow {
namespace {

SubmitOutcome Reject(int http, std::string code, std::string message, std::string field = "") {
  SubmitOutcome out;
  out.http_status = http;
  out.error_code = std::move(code);
  out.message = std::move(message);
  out.field = std::move(field);
  return out;
}

bool PrintableAscii(const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

bool ValidTag(const std::string& t) {
  if (t.empty() || t.size() > 64) return false;
  for (char c : t)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.' || c == ':'))
      return false;
  return true;
}

// Pages of a document when cheap to know before rendering (TIFF directories, PDF page objects);
// 0 when unknown. Imaging enforces the limit exactly.
int64_t EstimatePages(const std::string& content, const std::string& type) {
  if (type == "image/tiff") {
    auto n = pages::CountPages(content);
    return n.ok() ? *n : 0;
  }
  if (type == "application/pdf") {
    int64_t n = 0;
    for (size_t pos = content.find("/Type"); pos != std::string::npos; pos = content.find("/Type", pos + 5)) {
      size_t i = pos + 5;
      while (i < content.size() && (content[i] == ' ' || content[i] == '\n' || content[i] == '\r')) ++i;
      if (content.compare(i, 5, "/Page") == 0 && (i + 5 >= content.size() || content[i + 5] != 's')) ++n;
    }
    return n;
  }
  return 0;
}

}  // namespace

SubmissionService::SubmissionService(SubmissionLimits limits, bus::Producer& producer, BlobStore& blobs,
                                     StatusStore& status, Clock& clock, DocumentSniffer sniffer)
    : limits_(std::move(limits)),
      producer_(producer),
      blobs_(blobs),
      status_(status),
      clock_(clock),
      sniffer_(std::move(sniffer)) {}

SubmitOutcome SubmissionService::Submit(const SubmitRequest& request) {
  // 1. Validate everything before writing anything.
  if (request.to.empty())
    return Reject(400, "missing_recipient", "at least one recipient ('to') is required", "to");
  if (static_cast<int64_t>(request.to.size()) > limits_.max_recipients)
    return Reject(
        422, "too_many_recipients",
        "at most " + std::to_string(limits_.max_recipients) + " recipients per fax; use a broadcast", "to");
  if (request.documents.empty())
    return Reject(400, "missing_document", "at least one document is required", "file");
  if (static_cast<int64_t>(request.documents.size()) > limits_.max_documents)
    return Reject(422, "too_many_documents",
                  "at most " + std::to_string(limits_.max_documents) + " documents", "file");
  const auto& opt = request.options;
  if (opt.header_text().size() > 50 || !PrintableAscii(opt.header_text()))
    return Reject(400, "invalid_option", "header_text must be at most 50 printable ASCII characters",
                  "header_text");
  if (opt.tsi().size() > 20 || !PrintableAscii(opt.tsi()))
    return Reject(400, "invalid_option", "tsi must be at most 20 printable ASCII characters", "tsi");
  if (opt.priority() < 0 || opt.priority() > 9)
    return Reject(400, "invalid_option", "priority must be between 0 and 9", "priority");
  if (opt.tags_size() > 20) return Reject(400, "invalid_option", "at most 20 tags", "tags");
  for (const auto& t : opt.tags())
    if (!ValidTag(t))
      return Reject(400, "invalid_option", "tags are 1-64 characters of [A-Za-z0-9_.:-]", "tags");
  const int64_t now_ms = clock_.NowMillis();
  if (opt.expires_at_ms() != 0 && opt.expires_at_ms() <= now_ms)
    return Reject(400, "invalid_option", "expires_at is in the past", "expires_at");
  if (opt.send_at_ms() < 0 || (opt.send_at_ms() != 0 && opt.send_at_ms() > now_ms + 30LL * 24 * 3600 * 1000))
    return Reject(400, "invalid_option", "send_at must be within 30 days", "send_at");
  if (opt.expires_at_ms() != 0 && opt.send_at_ms() != 0 && opt.expires_at_ms() <= opt.send_at_ms())
    return Reject(400, "invalid_option", "expires_at must be after send_at", "expires_at");
  {
    const auto& r = opt.retry();
    for (auto [v, name] : {std::pair{r.busy_seconds(), "retry.busy_seconds"},
                           std::pair{r.no_answer_seconds(), "retry.no_answer_seconds"},
                           std::pair{r.protocol_seconds(), "retry.protocol_seconds"},
                           std::pair{r.other_seconds(), "retry.other_seconds"}})
      if (v < 0 || v > 86400)
        return Reject(400, "invalid_option", std::string(name) + " must be 0..86400", name);
    for (auto [v, name] :
         {std::pair{r.max_tries(), "retry.max_tries"}, std::pair{r.max_dials(), "retry.max_dials"}})
      if (v < 0 || v > 50) return Reject(400, "invalid_option", std::string(name) + " must be 0..50", name);
  }
  if (!opt.callback_url().empty()) {
    const auto& u = opt.callback_url();
    const bool http = u.rfind("http://", 0) == 0 || u.rfind("https://", 0) == 0;
    const size_t host_at = u.find("://") + 3;
    if (u.size() > 2048 || !http || host_at >= u.size() || u[host_at] == '/' || PrintableAscii(u) == false ||
        u.find(' ') != std::string::npos)
      return Reject(400, "invalid_option", "callback_url must be an http(s) URL of at most 2048 characters",
                    "callback_url");
  }
  std::string caller_id;
  if (!opt.caller_id().empty()) {
    auto n = NormalizeNumber(opt.caller_id(), limits_.default_region);
    if (!n.ok()) return Reject(400, "invalid_option", "caller_id: " + n.status().message(), "caller_id");
    caller_id = *n;
  }
  if (opt.has_cover()) {
    Status c = ValidateCoverPage(opt.cover());
    if (!c.ok()) return Reject(400, "invalid_option", c.message(), "cover");
  }

  std::vector<std::string> numbers;
  for (size_t i = 0; i < request.to.size(); ++i) {
    auto n = NormalizeNumber(request.to[i], limits_.default_region);
    if (!n.ok()) return Reject(400, "invalid_number", n.status().message(), "to[" + std::to_string(i) + "]");
    numbers.push_back(*n);
  }
  std::vector<std::string> types;
  std::vector<int64_t> blob_sizes;
  for (size_t i = 0; i < request.documents.size(); ++i) {
    const auto& doc = request.documents[i];
    const std::string field = "file[" + std::to_string(i) + "]";
    if (!doc.blob_id.empty()) {
      // A stored blob (ingestion): same size and type rules, applied to the stored bytes.
      if (!IsBlobId(doc.blob_id))
        return Reject(400, "invalid_blob_id", "blob id '" + doc.blob_id + "' is not a lowercase hex SHA-256",
                      field);
      auto exists = blobs_.Exists(doc.blob_id);
      if (!exists.ok())
        return Reject(503, "storage_unavailable",
                      "could not read the blob store: " + exists.status().message());
      if (!*exists)
        return Reject(400, "unknown_blob", "blob '" + doc.blob_id + "' is not in the blob store", field);
      auto stored = blobs_.Get(doc.blob_id);
      if (!stored.ok()) {
        if (stored.status().code() == Code::kNotFound)
          return Reject(400, "unknown_blob", "blob '" + doc.blob_id + "' is not in the blob store", field);
        return Reject(503, "storage_unavailable",
                      "could not read blob '" + doc.blob_id + "': " + stored.status().message());
      }
      if (stored->empty()) return Reject(400, "empty_document", "blob '" + doc.blob_id + "' is empty", field);
      if (static_cast<int64_t>(stored->size()) > limits_.max_document_bytes)
        return Reject(413, "document_too_large",
                      "blob '" + doc.blob_id + "' is larger than " +
                          std::to_string(limits_.max_document_bytes) + " bytes",
                      field);
      auto type = sniffer_(*stored);
      if (!type.ok()) return Reject(415, "unsupported_document", type.status().message(), field);
      types.push_back(*type);
      blob_sizes.push_back(static_cast<int64_t>(stored->size()));
      continue;
    }
    blob_sizes.push_back(static_cast<int64_t>(doc.content.size()));
    if (doc.content.empty())
      return Reject(400, "empty_document", "document '" + doc.filename + "' is empty", field);
    if (static_cast<int64_t>(doc.content.size()) > limits_.max_document_bytes)
      return Reject(413, "document_too_large",
                    "document '" + doc.filename + "' is larger than " +
                        std::to_string(limits_.max_document_bytes) + " bytes",
                    field);
    auto type = sniffer_(doc.content);
    if (!type.ok()) return Reject(415, "unsupported_document", type.status().message(), field);
    types.push_back(*type);
  }
  // Pages, where they can be counted before rendering.
  int64_t pages_known = opt.has_cover() ? 1 : 0;
  for (size_t i = 0; i < request.documents.size(); ++i)
    if (request.documents[i].blob_id.empty())
      pages_known += EstimatePages(request.documents[i].content, types[i]);
  if (pages_known > limits_.max_pages)
    return Reject(422, "too_many_pages",
                  "the documents have " + std::to_string(pages_known) + " pages; at most " +
                      std::to_string(limits_.max_pages) + " per fax",
                  "file");

  // 2. Make the documents durable.
  v1::Submission sub;
  const int64_t now = now_ms;
  sub.set_fax_id(request.fax_id.empty() ? NewId("fax", now) : request.fax_id);
  sub.set_tenant(request.tenant);
  sub.set_submitted_at_ms(now);
  sub.set_source(request.source);
  sub.set_idempotency_key(request.idempotency_key);
  sub.set_api_key_id(request.api_key_id);
  *sub.mutable_options() = opt;
  if (!caller_id.empty()) sub.mutable_options()->set_caller_id(caller_id);
  sub.set_callback_url(opt.callback_url());
  if (sub.options().resolution() == v1::RESOLUTION_UNSPECIFIED)
    sub.mutable_options()->set_resolution(v1::RESOLUTION_FINE);
  if (sub.options().paper() == v1::PAPER_UNSPECIFIED) sub.mutable_options()->set_paper(v1::PAPER_A4);
  for (size_t i = 0; i < numbers.size(); ++i) {
    auto* r = sub.add_recipients();
    // Keyed submissions: the same request always yields the same recipient ids.
    r->set_recipient_id(request.fax_id.empty()
                            ? NewId("rcp", now)
                            : "rcp_" + Sha256Hex(request.fax_id + "/" + std::to_string(i)).substr(0, 20));
    r->set_number(numbers[i]);
    if (i < request.cover_blob_ids.size()) r->set_cover_blob_id(request.cover_blob_ids[i]);
  }
  if (opt.has_cover()) {
    const std::string ps = RenderCoverPage(opt.cover(), numbers, CoverDate(now));
    auto id = blobs_.Put(ps);
    if (!id.ok())
      return Reject(503, "storage_unavailable", "could not store the cover page: " + id.status().message());
    auto* d = sub.add_documents();
    d->set_blob_id(*id);
    d->set_content_type("application/postscript");
    d->set_filename("cover.ps");
    d->set_size_bytes(static_cast<int64_t>(ps.size()));
  }
  for (size_t i = 0; i < request.documents.size(); ++i) {
    std::string blob_id = request.documents[i].blob_id;
    if (blob_id.empty()) {
      auto id = blobs_.Put(request.documents[i].content);
      if (!id.ok())
        return Reject(503, "storage_unavailable", "could not store the document: " + id.status().message());
      blob_id = *id;
    }
    auto* d = sub.add_documents();
    d->set_blob_id(blob_id);
    d->set_content_type(types[i]);
    d->set_filename(request.documents[i].filename);
    d->set_size_bytes(blob_sizes[i]);
    if (!request.documents[i].url.empty()) d->set_url(request.documents[i].url);
  }

  // 3. Durable on the bus before the client hears 202.
  bus::Message m = bus::ProtoMessage(bus::topic::kSubmissions, sub.fax_id(), sub);
  if (chooser_) m.partition = chooser_(sub);  // prefer less loaded imaging workers
  auto pos = producer_.Produce(m);
  if (!pos.ok())
    return Reject(503, "queue_unavailable", "could not queue the fax: " + pos.status().message());

  // 4. Visible to GET at once (the status worker applies the same record idempotently).
  Status s = status_.RecordSubmission(sub);
  if (!s.ok())
    FF_LOG_WARN(Logger("gateway"), "status record of {} deferred to the status worker: {}", sub.fax_id(),
                s.ToString());

  SubmitOutcome out;
  out.submission = std::move(sub);
  return out;
}

}  // namespace faxflow
