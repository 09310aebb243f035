#include "producers/gateway/broadcast.h"

#include <httplib.h>
#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>

#include <algorithm>
#include <ctime>
#include <future>
#include <set>

#include "common/ids.h"
#include "common/log.h"
#include "producers/gateway/broadcast_replica.h"
#include "producers/gateway/cover.h"
#include "producers/gateway/phone.h"
#include "schemas/event.pb.h"
#include "schemas/job.pb.h"
#include "schemas/outbound_job.h"
#include "topics/catalogue.h"
#include "topics/proto_message.h"

namespace faxflow {
namespace {

using nlohmann::json;

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  if (s.IsBusy() || s.IsTryAgain() || s.IsTimedOut())
    return Status::Retryable(Code::kUnavailable, "broadcast store " + what + ": " + s.ToString());
  return Status::Fatal(s.IsCorruption() ? Code::kCorruption : Code::kIoError,
                       "broadcast store " + what + ": " + s.ToString());
}

rocksdb::WriteOptions Synced() {
  rocksdb::WriteOptions w;
  w.sync = true;
  return w;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.erase(s.begin());
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.pop_back();
  return s;
}

// RFC 4180 CSV: quoted fields with "" escapes, CRLF or LF line ends.
std::vector<std::vector<std::string>> ParseCsv(std::string_view text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        field += c;
      }
      continue;
    }
    if (c == '"') {
      quoted = true;
      any = true;
    } else if (c == ',') {
      row.push_back(Trim(field));
      field.clear();
      any = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      if (any || !field.empty()) {
        row.push_back(Trim(field));
        rows.push_back(std::move(row));
      }
      row.clear();
      field.clear();
      any = false;
    } else {
      field += c;
      any = true;
    }
  }
  if (any || !field.empty()) {
    row.push_back(Trim(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string CsvCell(const std::string& v) {
  if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
  std::string out = "\"";
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

struct Chunk {
  std::string fax_id;
  std::vector<std::string> recipient_ids;
};

json CoverJson(const v1::CoverPage& c) {
  json f = json::object();
  for (const auto& [k, v] : c.fields()) f[k] = v;
  return {{"template", c.template_()}, {"fields", f}};
}

v1::CoverPage CoverFromJson(const json& j) {
  v1::CoverPage c;
  c.set_template_(j.at("template").get<std::string>());
  for (auto it = j.at("fields").begin(); it != j.at("fields").end(); ++it)
    (*c.mutable_fields())[it.key()] = it->get<std::string>();
  return c;
}

}  // namespace

v1::CoverPage RecipientCover(const v1::CoverPage& shared, const BroadcastRecipient& recipient) {
  v1::CoverPage c = shared;
  for (const auto& [column, value] : recipient.fields) {
    if (value.empty()) continue;
    std::string k = Trim(column);
    std::transform(k.begin(), k.end(), k.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    if (k == "name") k = "to_name";
    if (k == "company") k = "to_company";
    if (IsCoverField(k)) (*c.mutable_fields())[k] = value;
  }
  return c;
}

Result<std::vector<BroadcastRecipient>> ParseRecipients(std::string_view content) {
  std::vector<BroadcastRecipient> out;
  size_t first = content.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos)
    return Status::Permanent(Code::kInvalidArgument, "the recipient list is empty");
  if (content[first] == '[') {
    json j = json::parse(content, nullptr, false);
    if (j.is_discarded() || !j.is_array())
      return Status::Permanent(Code::kInvalidArgument, "recipients: not a JSON array");
    for (size_t i = 0; i < j.size(); ++i) {
      const auto& e = j[i];
      BroadcastRecipient r;
      if (e.is_string()) {
        r.to = e.get<std::string>();
      } else if (e.is_object() && e.contains("to") && e["to"].is_string()) {
        r.to = e["to"].get<std::string>();
        for (auto it = e.begin(); it != e.end(); ++it) {
          if (it.key() == "to") continue;
          r.fields.emplace_back(it.key(), it->is_string() ? it->get<std::string>() : it->dump());
        }
      } else {
        return Status::Permanent(Code::kInvalidArgument, "recipients[" + std::to_string(i) +
                                                             "]: expected a number or an object with \"to\"");
      }
      out.push_back(std::move(r));
    }
    return out;
  }
  auto rows = ParseCsv(content);
  if (rows.empty()) return Status::Permanent(Code::kInvalidArgument, "the recipient list is empty");
  const auto& header = rows[0];
  int to_col = -1;
  for (size_t i = 0; i < header.size(); ++i) {
    std::string h = header[i];
    std::transform(h.begin(), h.end(), h.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (h == "to" || h == "number" || h == "fax" || h == "fax_number") to_col = static_cast<int>(i);
  }
  if (to_col < 0)
    return Status::Permanent(Code::kInvalidArgument,
                             "recipients CSV: the header row needs a 'to' (or 'number', 'fax') column");
  for (size_t r = 1; r < rows.size(); ++r) {
    const auto& row = rows[r];
    if (row.size() == 1 && row[0].empty()) continue;
    if (row.size() != header.size())
      return Status::Permanent(Code::kInvalidArgument, "recipients CSV line " + std::to_string(r + 1) + ": " +
                                                           std::to_string(row.size()) +
                                                           " columns, header has " +
                                                           std::to_string(header.size()));
    BroadcastRecipient rec;
    rec.to = row[static_cast<size_t>(to_col)];
    for (size_t c = 0; c < row.size(); ++c)
      if (static_cast<int>(c) != to_col) rec.fields.emplace_back(header[c], row[c]);
    out.push_back(std::move(rec));
  }
  return out;
}

struct BroadcastService::Record {
  std::string id;
  std::string tenant;
  std::string state = "rendering";
  int64_t created_ms = 0;
  int64_t queued_ms = 0;
  int64_t done_ms = 0;
  int64_t count = 0;
  int chunk_size = 100;
  int64_t fanned = 1;  // next chunk to fan out (chunk 0 is the rendered submission)
  std::string recipients_blob;
  std::vector<std::string> columns;
  std::string template_submission;  // serialized v1::Submission of chunk 0
  std::string error;
  // Cover broadcasts: the shared cover (template + fields, JSON; empty object: no cover), the
  // date printed on every cover, and how many chunks are known to be rendered.
  json cover = json::object();
  std::string cover_date;
  int64_t rendered_chunks = 0;
  bool has_cover() const { return !cover.empty(); }

  int64_t chunks() const { return (count + chunk_size - 1) / chunk_size; }
  json ToJson() const {
    return {{"id", id},
            {"tenant", tenant},
            {"state", state},
            {"created_ms", created_ms},
            {"queued_ms", queued_ms},
            {"done_ms", done_ms},
            {"count", count},
            {"chunk_size", chunk_size},
            {"fanned", fanned},
            {"recipients_blob", recipients_blob},
            {"columns", columns},
            {"template",
             json::binary(std::vector<uint8_t>(template_submission.begin(), template_submission.end()))},
            {"error", error},
            {"cover", cover},
            {"cover_date", cover_date},
            {"rendered_chunks", rendered_chunks}};
  }
  static Record From(const json& j) {
    Record r;
    r.id = j.at("id");
    r.tenant = j.at("tenant");
    r.state = j.at("state");
    r.created_ms = j.at("created_ms");
    r.queued_ms = j.at("queued_ms");
    r.done_ms = j.at("done_ms");
    r.count = j.at("count");
    r.chunk_size = j.at("chunk_size");
    r.fanned = j.at("fanned");
    r.recipients_blob = j.at("recipients_blob");
    r.columns = j.at("columns").get<std::vector<std::string>>();
    // A json::binary dumped as text JSON reads back as {"bytes":[...],"subtype":null}.
    const auto& t = j.at("template");
    if (t.is_binary()) {
      r.template_submission.assign(t.get_binary().begin(), t.get_binary().end());
    } else {
      for (const auto& b : t.at("bytes")) r.template_submission.push_back(static_cast<char>(b.get<int>()));
    }
    r.error = j.at("error");
    r.cover = j.value("cover", json::object());  // records written before covers have none
    r.cover_date = j.value("cover_date", "");
    r.rendered_chunks = j.value("rendered_chunks", int64_t{0});
    return r;
  }
};

BroadcastService::BroadcastService(BroadcastOptions options, SubmissionService& submissions,
                                   bus::Producer& producer, BlobStore& blobs, StatusStore& status,
                                   prometheus::Registry& registry, Clock& clock)
    : options_(std::move(options)),
      submissions_(submissions),
      producer_(producer),
      blobs_(blobs),
      status_(status),
      clock_(clock),
      created_(prometheus::BuildCounter()
                   .Name("faxflow_broadcasts_created_total")
                   .Help("Broadcasts accepted by POST /v1/broadcasts.")
                   .Register(registry)
                   .Add({})),
      jobs_(prometheus::BuildCounter()
                .Name("faxflow_broadcast_jobs_queued_total")
                .Help("Outbound jobs produced by broadcast fan-out (recipients after the first chunk).")
                .Register(registry)
                .Add({})),
      fanout_seconds_(prometheus::BuildHistogram()
                          .Name("faxflow_broadcast_fanout_seconds")
                          .Help("Time from a broadcast's acceptance until every job is queued.")
                          .Register(registry)
                          .Add({}, prometheus::Histogram::BucketBoundaries{0.5, 1, 2, 5, 10, 30, 60, 300})) {}

BroadcastService::~BroadcastService() { Stop(); }

Status BroadcastService::Open(const std::string& path) {
  rocksdb::Options o;
  o.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  FF_RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(o, path, &raw), "open " + path));
  db_.reset(raw);
  return Status::Ok();
}

Status BroadcastService::Start() {
  if (!db_) return Status::Fatal(Code::kFailedPrecondition, "broadcast store not open");
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void BroadcastService::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

Result<std::optional<BroadcastService::Record>> BroadcastService::Load(const std::string& id) {
  std::string v;
  auto s = db_->Get(rocksdb::ReadOptions(), "b/" + id, &v);
  if (s.IsNotFound()) return std::optional<Record>();
  FF_RETURN_IF_ERROR(FromRocks(s, "get"));
  try {
    return std::optional<Record>(Record::From(json::parse(v)));
  } catch (const std::exception& e) {
    return Status::Fatal(Code::kCorruption, "broadcast store: bad record " + id + ": " + e.what());
  }
}

Status BroadcastService::Save(const Record& r) { return Put("b/" + r.id, r.ToJson().dump()); }

Status BroadcastService::Put(const std::string& key, const std::string& value) {
  if (mirror_) FF_RETURN_IF_ERROR(mirror_(key, value));
  return FromRocks(db_->Put(Synced(), key, value), "put " + key);
}

Status BroadcastService::ApplyReplicated(const std::string& key, const std::string& value) {
  std::lock_guard lock(mu_);
  std::string local;
  auto s = db_->Get(rocksdb::ReadOptions(), key, &local);
  if (!s.ok() && !s.IsNotFound()) return FromRocks(s, "get " + key);
  if (s.ok() && key.rfind("b/", 0) == 0) {
    try {
      const Record have = Record::From(json::parse(local)), got = Record::From(json::parse(value));
      auto rank = [](const std::string& state) {
        return state == "rendering" ? 0 : state == "fanning_out" ? 1 : state == "sending" ? 2 : 3;
      };
      if (got.fanned < have.fanned || got.rendered_chunks < have.rendered_chunks ||
          rank(got.state) < rank(have.state) || (have.queued_ms != 0 && got.queued_ms == 0) ||
          (have.done_ms != 0 && got.done_ms == 0))
        return Status::Ok();  // an older version (e.g. this node's own write read back)
    } catch (const std::exception& e) {
      return Status::Permanent(Code::kInvalidArgument,
                               "replicated broadcast record " + key + ": " + e.what());
    }
  } else if (s.ok()) {
    return Status::Ok();  // chunks are written once
  }
  return FromRocks(db_->Put(Synced(), key, value), "apply " + key);
}

BroadcastService::CreateOutcome BroadcastService::Create(const BroadcastRequest& request) {
  CreateOutcome out;
  auto fail = [&](int http, std::string code, std::string message, std::string field) {
    out.http_status = http;
    out.error_code = std::move(code);
    out.message = std::move(message);
    out.field = std::move(field);
    return out;
  };
  if (request.recipients.empty())
    return fail(422, "no_recipients", "a broadcast needs at least one recipient", "recipients");
  if (static_cast<int64_t>(request.recipients.size()) > options_.max_recipients)
    return fail(422, "too_many_recipients",
                "a broadcast takes at most " + std::to_string(options_.max_recipients) + " recipients, got " +
                    std::to_string(request.recipients.size()),
                "recipients");
  if (request.documents.empty())
    return fail(400, "no_document", "a broadcast needs at least one document", "file");
  // A cover: the shared part must be valid on its own, and every recipient's merged cover too.
  const bool has_cover = request.options.has_cover();
  if (has_cover) {
    Status c = ValidateCoverPage(request.options.cover());
    if (!c.ok()) return fail(400, "invalid_option", c.message(), "cover");
  }
  // Validate and normalise every number before anything is written.
  std::vector<BroadcastRecipient> recipients = request.recipients;
  std::vector<std::string> columns;
  std::set<std::string> seen_columns;
  for (size_t i = 0; i < recipients.size(); ++i) {
    auto n = NormalizeNumber(recipients[i].to, options_.default_region);
    if (!n.ok())
      return fail(
          422, "invalid_number",
          "recipient " + std::to_string(i + 1) + " ('" + recipients[i].to + "'): " + n.status().message(),
          "recipients");
    recipients[i].to = *n;
    if (has_cover) {
      Status c = ValidateCoverPage(RecipientCover(request.options.cover(), recipients[i]));
      if (!c.ok())
        return fail(422, "invalid_cover",
                    "recipient " + std::to_string(i + 1) + " ('" + recipients[i].to + "'): " + c.message(),
                    "recipients");
    }
    for (const auto& [k, v] : recipients[i].fields)
      if (seen_columns.insert(k).second) columns.push_back(k);
  }
  const int64_t now = clock_.NowMillis();
  Record rec;
  rec.id = NewId("bc", now);
  rec.tenant = request.tenant;
  rec.created_ms = now;
  rec.count = static_cast<int64_t>(recipients.size());
  rec.chunk_size = std::max(1, options_.chunk_size);
  rec.columns = columns;
  if (has_cover) {
    rec.cover = CoverJson(request.options.cover());
    rec.cover_date = CoverDate(now);
  }

  json list = json::array();
  for (const auto& r : recipients) {
    json f = json::object();
    for (const auto& [k, v] : r.fields) f[k] = v;
    list.push_back({{"to", r.to}, {"f", f}});
  }
  auto blob = blobs_.Put(list.dump());
  if (!blob.ok()) return fail(503, "blob_store_unavailable", blob.status().message(), "");
  rec.recipients_blob = *blob;

  // Chunk 0 is an ordinary submission: the one fax imaging renders.
  SubmitRequest sr;
  sr.tenant = request.tenant;
  sr.documents = request.documents;
  sr.options = request.options;
  sr.options.clear_cover();  // per recipient (Recipient.cover_blob_id), not one shared cover document
  sr.source = "broadcast";
  const size_t first = std::min<size_t>(recipients.size(), static_cast<size_t>(rec.chunk_size));
  for (size_t i = 0; i < first; ++i) sr.to.push_back(recipients[i].to);
  if (has_cover) {
    auto covers = StoreCovers(rec, recipients, 0, static_cast<int64_t>(first));
    if (!covers.ok()) return fail(503, "blob_store_unavailable", covers.status().message(), "");
    sr.cover_blob_ids = std::move(*covers);
  }
  SubmitOutcome sub = submissions_.Submit(sr);
  if (!sub.ok()) return fail(sub.http_status, sub.error_code, sub.message, sub.field);
  rec.template_submission = sub.submission.SerializeAsString();
  Chunk c0{sub.submission.fax_id(), {}};
  for (const auto& r : sub.submission.recipients()) c0.recipient_ids.push_back(r.recipient_id());
  {
    std::lock_guard lock(mu_);
    Status s = Put("c/" + rec.id + "/0", json{{"fax_id", c0.fax_id}, {"ids", c0.recipient_ids}}.dump());
    if (s.ok()) s = Save(rec);
    if (!s.ok()) return fail(503, "store_unavailable", s.message(), "");
  }
  created_.Increment();
  out.id = rec.id;
  out.template_fax_id = c0.fax_id;
  out.recipients = rec.count;
  FF_LOG_INFO(Logger("broadcast"), "{}: accepted {} recipients, rendering as {}", rec.id, rec.count,
              c0.fax_id);
  return out;
}

Status BroadcastService::FanOut(Record& rec, const v1::FaxStatus& rendered) {
  v1::Submission tmpl;
  if (!tmpl.ParseFromString(rec.template_submission))
    return Status::Fatal(Code::kCorruption, "broadcast " + rec.id + ": bad template submission");
  FF_ASSIGN_OR_RETURN(auto recipients, LoadRecipients(rec));
  const int64_t now = clock_.NowMillis();
  std::vector<bus::Message> batch;
  int64_t batched_recipients = 0;  // cover broadcasts: recipients in the batch's submissions
  auto flush = [&](int64_t next_chunk) -> Status {
    if (!batch.empty()) FF_RETURN_IF_ERROR(producer_.ProduceBatch(batch).WithContext("broadcast fan-out"));
    if (!rec.has_cover()) jobs_.Increment(static_cast<double>(batch.size()));
    batch.clear();
    batched_recipients = 0;
    rec.fanned = next_chunk;
    return Save(rec);
  };
  for (int64_t c = rec.fanned; c < rec.chunks() && !stop_; ++c) {
    const int64_t begin = c * rec.chunk_size;
    const int64_t end = std::min<int64_t>(rec.count, begin + rec.chunk_size);
    // Ids first (reused after a crash), then the status record, then the jobs.
    Chunk chunk;
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), "c/" + rec.id + "/" + std::to_string(c), &v);
    if (s.ok()) {
      auto j = json::parse(v);
      chunk.fax_id = j.at("fax_id");
      chunk.recipient_ids = j.at("ids").get<std::vector<std::string>>();
    } else if (s.IsNotFound()) {
      // Derived from the broadcast id: any node fanning this chunk out makes the same job ids.
      chunk.fax_id = ChunkId("fax", rec.id, std::to_string(c));
      for (int64_t i = begin; i < end; ++i)
        chunk.recipient_ids.push_back(ChunkId("rcp", rec.id, std::to_string(c) + "/" + std::to_string(i)));
      FF_RETURN_IF_ERROR(Put("c/" + rec.id + "/" + std::to_string(c),
                             json{{"fax_id", chunk.fax_id}, {"ids", chunk.recipient_ids}}.dump()));
    } else {
      return FromRocks(s, "get chunk");
    }
    v1::Submission sub = tmpl;
    sub.set_fax_id(chunk.fax_id);
    sub.clear_recipients();
    sub.set_source("broadcast");
    sub.clear_idempotency_key();
    for (int64_t i = begin; i < end; ++i) {
      auto* r = sub.add_recipients();
      r->set_recipient_id(chunk.recipient_ids[static_cast<size_t>(i - begin)]);
      r->set_number(recipients[static_cast<size_t>(i)].to);
    }
    if (rec.has_cover()) {
      // Imaging renders this chunk's covers and appends chunk 0's document pages (not its covers).
      FF_ASSIGN_OR_RETURN(auto covers, StoreCovers(rec, recipients, begin, end));
      for (int k = 0; k < sub.recipients_size(); ++k)
        sub.mutable_recipients(k)->set_cover_blob_id(covers[static_cast<size_t>(k)]);
      sub.clear_documents();
      sub.clear_append_page_blob_ids();
      for (const auto& p : rendered.page_blob_ids()) sub.add_append_page_blob_ids(p);
      FF_RETURN_IF_ERROR(status_.RecordSubmission(sub).WithContext("status store"));
      batch.push_back(bus::ProtoMessage(bus::topic::kSubmissions, sub.fax_id(), sub));
      batched_recipients += end - begin;
      if (batched_recipients >= options_.batch_size) FF_RETURN_IF_ERROR(flush(c + 1));
      continue;
    }
    FF_RETURN_IF_ERROR(status_.RecordSubmission(sub).WithContext("status store"));
    v1::DeliveryEvent ev;  // the chunk shares chunk 0's pages
    ev.set_event_id("rendered_" + chunk.fax_id);
    ev.set_fax_id(chunk.fax_id);
    ev.set_tenant(rec.tenant);
    ev.set_at_ms(now);
    ev.mutable_rendered()->set_page_count(rendered.page_count());
    for (const auto& p : rendered.page_blob_ids()) ev.mutable_rendered()->add_page_blob_ids(p);
    FF_RETURN_IF_ERROR(status_.Apply(ev).WithContext("status store"));
    const std::vector<std::string> pages(rendered.page_blob_ids().begin(), rendered.page_blob_ids().end());
    for (const auto& r : sub.recipients())
      batch.push_back(
          bus::ProtoMessage(bus::topic::kJobs, r.number(), OutboundJobFor(sub, r, "", pages, now)));
    if (static_cast<int>(batch.size()) >= options_.batch_size) FF_RETURN_IF_ERROR(flush(c + 1));
  }
  if (stop_) return Status::Ok();
  FF_RETURN_IF_ERROR(flush(rec.chunks()));
  if (rec.has_cover()) {
    // The jobs are queued by imaging as it renders each chunk's covers (ChunksRendered).
    FF_LOG_INFO(Logger("broadcast"), "{}: {} chunk submissions with covers produced {} ms after acceptance",
                rec.id, rec.chunks() - 1, clock_.NowMillis() - rec.created_ms);
    return Save(rec);
  }
  rec.state = "sending";
  rec.queued_ms = clock_.NowMillis();
  fanout_seconds_.Observe(static_cast<double>(rec.queued_ms - rec.created_ms) / 1000.0);
  FF_LOG_INFO(Logger("broadcast"), "{}: all {} jobs queued {} ms after acceptance", rec.id, rec.count,
              rec.queued_ms - rec.created_ms);
  return Save(rec);
}

Result<std::vector<std::string>> BroadcastService::StoreCovers(
    const Record& rec, const std::vector<BroadcastRecipient>& recipients, int64_t begin, int64_t end) {
  v1::CoverPage shared;
  try {
    shared = CoverFromJson(rec.cover);
  } catch (const std::exception& e) {
    return Status::Fatal(Code::kCorruption, "broadcast " + rec.id + ": bad cover: " + e.what());
  }
  // The cover does not print the number, so recipients with the same fields share one cover.
  std::vector<std::string> ps(static_cast<size_t>(end - begin));
  std::map<std::string, std::string> ids;  // PostScript -> blob id
  for (int64_t i = begin; i < end; ++i) {
    auto& p = ps[static_cast<size_t>(i - begin)];
    p = RenderCoverPage(RecipientCover(shared, recipients[static_cast<size_t>(i)]), {}, rec.cover_date);
    ids.emplace(p, "");
  }
  // Puts are synced: a few in parallel share the WAL syncs (RocksDB group commit).
  std::vector<std::pair<const std::string*, std::string*>> todo;
  for (auto& [content, id] : ids) todo.emplace_back(&content, &id);
  constexpr size_t kParallel = 8;
  std::vector<std::future<Status>> puts;
  for (size_t w = 0; w < std::min(kParallel, todo.size()); ++w)
    puts.push_back(std::async(std::launch::async, [&, w]() -> Status {
      for (size_t k = w; k < todo.size(); k += kParallel) {
        auto id = blobs_.Put(*todo[k].first);
        if (!id.ok()) return id.status().WithContext("storing a cover page");
        *todo[k].second = std::move(*id);
      }
      return Status::Ok();
    }));
  Status failed;
  for (auto& f : puts) {
    Status s = f.get();
    if (failed.ok() && !s.ok()) failed = s;
  }
  if (!failed.ok()) return failed;
  std::vector<std::string> out;
  out.reserve(ps.size());
  for (const auto& p : ps) out.push_back(ids.at(p));
  return out;
}

Result<bool> BroadcastService::ChunksRendered(Record& rec) {
  const int64_t before = rec.rendered_chunks;
  while (rec.rendered_chunks < std::min(rec.fanned, rec.chunks())) {
    std::string v;
    FF_RETURN_IF_ERROR(FromRocks(
        db_->Get(rocksdb::ReadOptions(), "c/" + rec.id + "/" + std::to_string(rec.rendered_chunks), &v),
        "get chunk"));
    FF_ASSIGN_OR_RETURN(auto st, status_.Get(json::parse(v).at("fax_id").get<std::string>()));
    if (!st) break;
    bool terminal = st->recipients_size() > 0;
    for (const auto& r : st->recipients()) terminal = terminal && IsTerminal(r.state());
    if (st->page_count() == 0 && st->error().empty() && !terminal) break;
    ++rec.rendered_chunks;
  }
  if (rec.rendered_chunks != before) FF_RETURN_IF_ERROR(Save(rec));
  return rec.rendered_chunks >= rec.chunks();
}

Result<std::vector<BroadcastRecipient>> BroadcastService::LoadRecipients(const Record& rec) {
  FF_ASSIGN_OR_RETURN(std::string raw, blobs_.Get(rec.recipients_blob));
  std::vector<BroadcastRecipient> out;
  try {
    auto j = json::parse(raw);
    out.reserve(j.size());
    for (const auto& e : j) {
      BroadcastRecipient r;
      r.to = e.at("to");
      for (auto it = e.at("f").begin(); it != e.at("f").end(); ++it)
        r.fields.emplace_back(it.key(), it->get<std::string>());
      out.push_back(std::move(r));
    }
  } catch (const std::exception& e) {
    return Status::Fatal(Code::kCorruption, "broadcast " + rec.id + ": bad recipient list: " + e.what());
  }
  return out;
}

Result<BroadcastProgress> BroadcastService::Compute(const Record& rec) {
  BroadcastProgress p;
  p.id = rec.id;
  p.tenant = rec.tenant;
  p.state = rec.state;
  p.recipients = rec.count;
  p.created_ms = rec.created_ms;
  p.queued_ms = rec.queued_ms;
  p.done_ms = rec.done_ms;
  p.error = rec.error;
  int64_t found = 0;
  for (int64_t c = 0; c < std::min(rec.fanned, rec.chunks()); ++c) {
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), "c/" + rec.id + "/" + std::to_string(c), &v);
    if (s.IsNotFound()) continue;
    FF_RETURN_IF_ERROR(FromRocks(s, "get chunk"));
    const std::string fax_id = json::parse(v).at("fax_id");
    if (c == 0) p.template_fax_id = fax_id;
    FF_ASSIGN_OR_RETURN(auto st, status_.Get(fax_id));
    if (!st) continue;
    for (const auto& r : st->recipients()) {
      const std::string name = StateName(r.state());
      ++p.counts[name];
      ++found;
      if (IsTerminal(r.state())) ++p.terminal;
    }
  }
  const int64_t rest = rec.count - found;
  if (rest > 0) {
    if (rec.state == "failed") {
      p.counts["failed"] += rest;
      p.terminal += rest;
    } else {
      p.counts["queued"] += rest;
    }
  }
  return p;
}

Status BroadcastService::DriveOnce() {
  std::lock_guard lock(mu_);
  std::vector<Record> active;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek("b/"); it->Valid() && it->key().starts_with("b/"); it->Next()) {
      auto r = Record::From(json::parse(it->value().ToString()));
      if (r.state != "done" && !(r.state == "failed" && r.done_ms != 0)) active.push_back(std::move(r));
    }
    FF_RETURN_IF_ERROR(FromRocks(it->status(), "scan"));
  }
  for (auto& rec : active) {
    if (stop_) break;
    if (drives_ && !drives_(rec.tenant)) continue;  // driven by the tenant's owner (broadcast_replica.h)
    if (rec.state == "rendering" || rec.state == "fanning_out") {
      std::string v;
      FF_RETURN_IF_ERROR(
          FromRocks(db_->Get(rocksdb::ReadOptions(), "c/" + rec.id + "/0", &v), "get chunk 0"));
      const std::string fax_id = json::parse(v).at("fax_id");
      FF_ASSIGN_OR_RETURN(auto st, status_.Get(fax_id));
      if (!st) continue;
      bool doc_error = !st->error().empty();
      for (const auto& r : st->recipients()) doc_error = doc_error || r.reason() == v1::REASON_DOCUMENT_ERROR;
      // With covers, a recipient whose own cover failed does not fail the broadcast: the document
      // rendered (page ids present) and the others go on.
      const bool rendered = st->page_blob_ids_size() > 0;
      if (doc_error && !(rec.has_cover() && rendered)) {
        rec.state = "failed";
        rec.error = st->error().empty() ? "document_error" : st->error();
        FF_RETURN_IF_ERROR(Save(rec));
        FF_LOG_WARN(Logger("broadcast"), "{}: rendering failed: {}", rec.id, rec.error);
      } else if (rendered) {
        rec.state = "fanning_out";
        if (!rec.has_cover() || rec.fanned < rec.chunks()) FF_RETURN_IF_ERROR(FanOut(rec, *st));
        if (rec.has_cover() && rec.state == "fanning_out" && rec.fanned >= rec.chunks()) {
          FF_ASSIGN_OR_RETURN(bool all, ChunksRendered(rec));
          if (all) {
            rec.state = "sending";
            rec.queued_ms = clock_.NowMillis();
            fanout_seconds_.Observe(static_cast<double>(rec.queued_ms - rec.created_ms) / 1000.0);
            FF_LOG_INFO(Logger("broadcast"),
                        "{}: every chunk rendered with covers, all {} jobs queued {} ms after acceptance",
                        rec.id, rec.count, rec.queued_ms - rec.created_ms);
            FF_RETURN_IF_ERROR(Save(rec));
          }
        }
      } else {
        continue;
      }
    }
    FF_ASSIGN_OR_RETURN(auto p, Compute(rec));
    const int tenth = rec.count ? static_cast<int>(p.terminal * 10 / rec.count) : 10;
    if (p.terminal == rec.count && rec.done_ms == 0) {
      rec.done_ms = clock_.NowMillis();
      if (rec.state != "failed") rec.state = "done";
      FF_RETURN_IF_ERROR(Save(rec));
      p.state = rec.state;
      p.done_ms = rec.done_ms;
      FF_LOG_INFO(Logger("broadcast"), "{}: every recipient is terminal ({})", rec.id, rec.state);
    }
    auto& last = milestones_.try_emplace(rec.id, -1).first->second;
    if (tenth != last) {
      last = tenth;
      if (sink_) sink_(p);
    }
  }
  return Status::Ok();
}

void BroadcastService::Run() {
  auto log = Logger("broadcast");
  auto beat = RegisterHeartbeat(heartbeats_, "broadcasts");
  while (!stop_) {
    beat->Beat();
    Status s = DriveOnce();
    if (!s.ok()) FF_LOG_WARN(log, "driver: {}", s.ToString());
    clock_.SleepUntil(clock_.Monotonic() + options_.poll_interval);
  }
}

Result<std::optional<BroadcastProgress>> BroadcastService::Progress(const std::string& tenant,
                                                                    const std::string& id) {
  FF_ASSIGN_OR_RETURN(auto rec, Load(id));
  if (!rec || rec->tenant != tenant) return std::optional<BroadcastProgress>();
  FF_ASSIGN_OR_RETURN(auto p, Compute(*rec));
  return std::optional<BroadcastProgress>(std::move(p));
}

Result<std::optional<std::string>> BroadcastService::ResultsCsv(const std::string& tenant,
                                                                const std::string& id) {
  FF_ASSIGN_OR_RETURN(auto rec, Load(id));
  if (!rec || rec->tenant != tenant) return std::optional<std::string>();
  FF_ASSIGN_OR_RETURN(auto recipients, LoadRecipients(*rec));
  std::string csv = "index,recipient_id,fax_id,to";
  for (const auto& c : rec->columns) csv += "," + CsvCell(c);
  csv += ",state,reason,pages_sent,pages_total,attempts,updated_at_ms\n";
  for (int64_t c = 0; c < rec->chunks(); ++c) {
    Chunk chunk;
    std::map<std::string, v1::RecipientStatus> states;
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), "c/" + rec->id + "/" + std::to_string(c), &v);
    if (s.ok()) {
      auto j = json::parse(v);
      chunk.fax_id = j.at("fax_id");
      chunk.recipient_ids = j.at("ids").get<std::vector<std::string>>();
      FF_ASSIGN_OR_RETURN(auto st, status_.Get(chunk.fax_id));
      if (st)
        for (const auto& r : st->recipients()) states[r.recipient_id()] = r;
    } else if (!s.IsNotFound()) {
      return FromRocks(s, "get chunk");
    }
    const int64_t begin = c * rec->chunk_size;
    const int64_t end = std::min<int64_t>(rec->count, begin + rec->chunk_size);
    for (int64_t i = begin; i < end; ++i) {
      const auto& r = recipients[static_cast<size_t>(i)];
      const size_t k = static_cast<size_t>(i - begin);
      const std::string rid = k < chunk.recipient_ids.size() ? chunk.recipient_ids[k] : "";
      csv += std::to_string(i + 1) + "," + rid + "," + chunk.fax_id + "," + r.to;
      for (const auto& col : rec->columns) {
        std::string val;
        for (const auto& [fk, fv] : r.fields)
          if (fk == col) val = fv;
        csv += "," + CsvCell(val);
      }
      auto it = states.find(rid);
      if (it != states.end()) {
        const auto& st = it->second;
        csv += "," + StateName(st.state()) + "," +
               (st.reason() == v1::REASON_UNSPECIFIED ? std::string() : ReasonName(st.reason())) + "," +
               std::to_string(st.pages_sent()) + "," + std::to_string(st.pages_total()) + "," +
               std::to_string(st.attempts()) + "," + std::to_string(st.updated_at_ms()) + "\n";
      } else if (rec->state == "failed") {
        csv += ",failed,document_error,0,0,0,0\n";
      } else {
        csv += ",queued,,0,0,0,0\n";
      }
    }
  }
  return std::optional<std::string>(std::move(csv));
}

namespace {

json ProgressJson(const BroadcastProgress& p) {
  json counts = json::object();
  for (const auto& [k, v] : p.counts) counts[k] = v;
  json j{{"id", p.id},
         {"state", p.state},
         {"recipients", p.recipients},
         {"terminal", p.terminal},
         {"counts", counts},
         {"fax_id", p.template_fax_id},
         {"created_ms", p.created_ms},
         {"results", "/v1/broadcasts/" + p.id + "/results.csv"}};
  if (p.queued_ms) j["queued_ms"] = p.queued_ms;
  if (p.done_ms) j["done_ms"] = p.done_ms;
  if (!p.error.empty()) j["error"] = p.error;
  return j;
}

void SendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(2) + "\n", "application/json");
}
void SendError(httplib::Response& res, int status, const std::string& code, const std::string& message,
               const std::string& field = "") {
  json e{{"code", code}, {"message", message}};
  if (!field.empty()) e["field"] = field;
  SendJson(res, status, json{{"error", e}});
}

}  // namespace

void RegisterBroadcastRoutes(httplib::Server& srv, BroadcastService& service, BroadcastTenantOf tenant_of) {
  srv.Post("/v1/broadcasts", [&service, tenant_of](const httplib::Request& req, httplib::Response& res) {
    auto tenant = tenant_of(req, res);
    if (!tenant) return;
    if (!req.is_multipart_form_data()) {
      SendError(
          res, 415, "unsupported_media_type",
          "POST /v1/broadcasts takes multipart/form-data: 'file' (documents), 'recipients' (CSV with a 'to' "
          "column, or a JSON array), optional 'options' (JSON)");
      return;
    }
    BroadcastRequest br;
    br.tenant = *tenant;
    for (const auto& [name, part] : req.files) {
      if (name == "recipients") {
        auto list = ParseRecipients(part.content);
        if (!list.ok()) {
          SendError(res, 422, "invalid_recipients", list.status().message(), "recipients");
          return;
        }
        for (auto& r : *list) br.recipients.push_back(std::move(r));
      } else if (name == "to") {
        br.recipients.push_back({Trim(part.content), {}});
      } else if (name == "options") {
        json j = json::parse(part.content, nullptr, false);
        if (j.is_discarded() || !j.is_object()) {
          SendError(res, 400, "invalid_options", "'options' must be a JSON object", "options");
          return;
        }
        try {
          auto& o = br.options;
          for (auto it = j.begin(); it != j.end(); ++it) {
            const std::string& k = it.key();
            if (k == "header_text")
              o.set_header_text(it->get<std::string>());
            else if (k == "tsi")
              o.set_tsi(it->get<std::string>());
            else if (k == "priority")
              o.set_priority(it->get<int>());
            else if (k == "resolution")
              o.set_resolution(it->get<std::string>() == "normal" ? v1::RESOLUTION_NORMAL
                                                                  : v1::RESOLUTION_FINE);
            else if (k == "max_tries")
              o.mutable_retry()->set_max_tries(it->get<int>());
            else if (k == "max_dials")
              o.mutable_retry()->set_max_dials(it->get<int>());
            else if (k == "tags")
              for (const auto& t : *it) o.add_tags(t.get<std::string>());
            else if (k == "cover") {
              // Same shape as POST /v1/faxes: {"template": "basic"|"confidential", "fields": {...}}.
              if (!it->is_object()) {
                SendError(res, 400, "invalid_option", "cover must be an object {template, fields}", "cover");
                return;
              }
              auto* c = o.mutable_cover();
              c->set_template_(it->value("template", "basic"));
              for (auto f = it->begin(); f != it->end(); ++f) {
                if (f.key() == "template") continue;
                if (f.key() != "fields" || !f->is_object()) {
                  SendError(res, 400, "unknown_field", "cover takes 'template' and 'fields'",
                            "cover." + f.key());
                  return;
                }
                for (auto g = f->begin(); g != f->end(); ++g)
                  (*c->mutable_fields())[g.key()] = g->get<std::string>();
              }
            } else {
              SendError(res, 400, "invalid_option", "unknown option '" + k + "'", "options");
              return;
            }
          }
        } catch (const json::exception& e) {
          SendError(res, 400, "invalid_option", std::string("options: wrong type: ") + e.what(), "options");
          return;
        }
      } else if (name == "file" || name == "file[]" || !part.filename.empty()) {
        br.documents.push_back({part.filename, part.content});
      } else {
        SendError(res, 400, "unknown_field", "unknown form field '" + name + "'", name);
        return;
      }
    }
    auto out = service.Create(br);
    if (!out.ok()) {
      SendError(res, out.http_status, out.error_code, out.message, out.field);
      return;
    }
    res.set_header("Location", "/v1/broadcasts/" + out.id);
    SendJson(res, 202,
             json{{"id", out.id},
                  {"state", "rendering"},
                  {"recipients", out.recipients},
                  {"fax_id", out.template_fax_id}});
  });

  srv.Get(R"(/v1/broadcasts/([A-Za-z0-9_]+))",
          [&service, tenant_of](const httplib::Request& req, httplib::Response& res) {
            auto tenant = tenant_of(req, res);
            if (!tenant) return;
            auto p = service.Progress(*tenant, req.matches[1]);
            if (!p.ok()) {
              SendError(res, 503, "store_unavailable", p.status().message());
              return;
            }
            if (!*p) {
              SendError(res, 404, "not_found", "no broadcast with id '" + std::string(req.matches[1]) + "'");
              return;
            }
            SendJson(res, 200, ProgressJson(**p));
          });

  srv.Get(R"(/v1/broadcasts/([A-Za-z0-9_]+)/results\.csv)",
          [&service, tenant_of](const httplib::Request& req, httplib::Response& res) {
            auto tenant = tenant_of(req, res);
            if (!tenant) return;
            auto csv = service.ResultsCsv(*tenant, req.matches[1]);
            if (!csv.ok()) {
              SendError(res, 503, "store_unavailable", csv.status().message());
              return;
            }
            if (!*csv) {
              SendError(res, 404, "not_found", "no broadcast with id '" + std::string(req.matches[1]) + "'");
              return;
            }
            res.set_content(**csv, "text/csv");
          });
}

}  // namespace faxflow
