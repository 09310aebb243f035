#include "producers/gateway/submission_service.h"

#include "common/ids.h"
#include "common/log.h"
#include "producers/gateway/phone.h"

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

}  // namespace

SubmissionService::SubmissionService(SubmissionLimits limits, bus::Producer& producer, BlobStore& blobs,
                                     StatusStore& status, Clock& clock, DocumentSniffer sniffer)
    : limits_(std::move(limits)), producer_(producer), blobs_(blobs), status_(status), clock_(clock),
      sniffer_(std::move(sniffer)) {}

SubmitOutcome SubmissionService::Submit(const SubmitRequest& request) {
  // 1. Validate everything before writing anything.
  if (request.to.empty()) return Reject(400, "missing_recipient", "at least one recipient ('to') is required", "to");
  if (static_cast<int64_t>(request.to.size()) > limits_.max_recipients)
    return Reject(422, "too_many_recipients",
                  "at most " + std::to_string(limits_.max_recipients) + " recipients per fax; use a broadcast", "to");
  if (request.documents.empty()) return Reject(400, "missing_document", "at least one document is required", "file");
  if (static_cast<int64_t>(request.documents.size()) > limits_.max_documents)
    return Reject(422, "too_many_documents", "at most " + std::to_string(limits_.max_documents) + " documents", "file");
  const auto& opt = request.options;
  if (opt.header_text().size() > 50 || !PrintableAscii(opt.header_text()))
    return Reject(400, "invalid_option", "header_text must be at most 50 printable ASCII characters", "header_text");
  if (opt.tsi().size() > 20 || !PrintableAscii(opt.tsi()))
    return Reject(400, "invalid_option", "tsi must be at most 20 printable ASCII characters", "tsi");
  if (opt.priority() < 0 || opt.priority() > 9)
    return Reject(400, "invalid_option", "priority must be between 0 and 9", "priority");

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
        return Reject(400, "invalid_blob_id", "blob id '" + doc.blob_id + "' is not a lowercase hex SHA-256", field);
      auto exists = blobs_.Exists(doc.blob_id);
      if (!exists.ok()) return Reject(503, "storage_unavailable", "could not read the blob store: " + exists.status().message());
      if (!*exists) return Reject(400, "unknown_blob", "blob '" + doc.blob_id + "' is not in the blob store", field);
      auto stored = blobs_.Get(doc.blob_id);
      if (!stored.ok()) {
        if (stored.status().code() == Code::kNotFound)
          return Reject(400, "unknown_blob", "blob '" + doc.blob_id + "' is not in the blob store", field);
        return Reject(503, "storage_unavailable", "could not read blob '" + doc.blob_id + "': " + stored.status().message());
      }
      if (stored->empty()) return Reject(400, "empty_document", "blob '" + doc.blob_id + "' is empty", field);
      if (static_cast<int64_t>(stored->size()) > limits_.max_document_bytes)
        return Reject(413, "document_too_large",
                      "blob '" + doc.blob_id + "' is larger than " + std::to_string(limits_.max_document_bytes) + " bytes",
                      field);
      auto type = sniffer_(*stored);
      if (!type.ok()) return Reject(415, "unsupported_document", type.status().message(), field);
      types.push_back(*type);
      blob_sizes.push_back(static_cast<int64_t>(stored->size()));
      continue;
    }
    blob_sizes.push_back(static_cast<int64_t>(doc.content.size()));
    if (doc.content.empty()) return Reject(400, "empty_document", "document '" + doc.filename + "' is empty", field);
    if (static_cast<int64_t>(doc.content.size()) > limits_.max_document_bytes)
      return Reject(413, "document_too_large",
                    "document '" + doc.filename + "' is larger than " + std::to_string(limits_.max_document_bytes) +
                        " bytes",
                    field);
    auto type = sniffer_(doc.content);
    if (!type.ok()) return Reject(415, "unsupported_document", type.status().message(), field);
    types.push_back(*type);
  }

  // 2. Make the documents durable.
  v1::Submission sub;
  const int64_t now = clock_.NowMillis();
  sub.set_fax_id(NewId("fax", now));
  sub.set_tenant(request.tenant);
  sub.set_submitted_at_ms(now);
  sub.set_source(request.source);
  *sub.mutable_options() = opt;
  if (sub.options().resolution() == v1::RESOLUTION_UNSPECIFIED) sub.mutable_options()->set_resolution(v1::RESOLUTION_FINE);
  if (sub.options().paper() == v1::PAPER_UNSPECIFIED) sub.mutable_options()->set_paper(v1::PAPER_A4);
  for (const auto& number : numbers) {
    auto* r = sub.add_recipients();
    r->set_recipient_id(NewId("rcp", now));
    r->set_number(number);
  }
  for (size_t i = 0; i < request.documents.size(); ++i) {
    std::string blob_id = request.documents[i].blob_id;
    if (blob_id.empty()) {
      auto id = blobs_.Put(request.documents[i].content);
      if (!id.ok()) return Reject(503, "storage_unavailable", "could not store the document: " + id.status().message());
      blob_id = *id;
    }
    auto* d = sub.add_documents();
    d->set_blob_id(blob_id);
    d->set_content_type(types[i]);
    d->set_filename(request.documents[i].filename);
    d->set_size_bytes(blob_sizes[i]);
  }

  // 3. Durable on the bus before the client hears 202.
  bus::Message m;
  m.topic = std::string(bus::topic::kSubmissions);
  m.key = sub.fax_id();
  m.value = sub.SerializeAsString();
  m.headers.push_back({std::string(bus::header::kSchema), "faxflow.v1.Submission"});
  auto pos = producer_.Produce(m);
  if (!pos.ok()) return Reject(503, "queue_unavailable", "could not queue the fax: " + pos.status().message());

  // 4. Visible to GET at once (the status worker applies the same record idempotently).
  Status s = status_.RecordSubmission(sub);
  if (!s.ok()) FF_LOG_WARN(Logger("gateway"), "status record of {} deferred to the status worker: {}", sub.fax_id(), s.ToString());

  SubmitOutcome out;
  out.submission = std::move(sub);
  return out;
}

}  // namespace faxflow
