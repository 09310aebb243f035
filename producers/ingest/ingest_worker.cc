#include "producers/ingest/ingest_worker.h"

#include <algorithm>
#include <map>

#include "common/log.h"
#include "storage/blob_store.h"
#include "topics/catalogue.h"
#include "topics/dead_letter.h"

namespace faxflow::ingest {
namespace {

// "https://host/path/invoice.pdf?x=1" -> "invoice.pdf"
std::string FilenameFromUrl(const std::string& url) {
  std::string path = url.substr(0, url.find_first_of("?#"));
  const auto scheme = path.find("://");
  if (scheme != std::string::npos) {
    const auto slash = path.find('/', scheme + 3);
    path = slash == std::string::npos ? "" : path.substr(slash);
  }
  const auto last = path.find_last_of('/');
  std::string name = last == std::string::npos ? path : path.substr(last + 1);
  return name.empty() ? "document" : name;
}

// The service names documents "file[i]" (the REST form field); ingestion calls them documents[i].
std::string IngestField(const std::string& field) {
  if (field.rfind("file", 0) == 0) return "documents" + field.substr(4);
  if (field == "header_text" || field == "tsi" || field == "priority") return "options." + field;
  return field;
}

}  // namespace

IngestOptions IngestOptions::FromConfig(const Config& config) {
  IngestOptions o;
  o.max_record_bytes = config.ingest_max_record_bytes;
  o.fetch_retries = static_cast<int>(std::max<int64_t>(0, config.ingest_fetch_retries));
  return o;
}

std::vector<std::string> SplitNetworks(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string::npos) end = list.size();
    std::string item = list.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) out.push_back(item);
    start = end + 1;
  }
  return out;
}

UrlFetcherOptions UrlFetcherOptionsFromConfig(const Config& config) {
  UrlFetcherOptions o;
  o.max_bytes = config.ingest_max_url_bytes;
  o.timeout = std::chrono::milliseconds(static_cast<int64_t>(config.ingest_url_timeout_seconds * 1000));
  o.allow_private = config.ingest_allow_private_urls;
  o.allowed_networks = SplitNetworks(config.net_allowed_private_networks);
  return o;
}

IngestWorker::IngestWorker(IngestOptions options, bus::Bus& bus, SubmissionService& submissions, BlobStore& blobs,
                           UrlFetcher& fetcher, prometheus::Registry& registry, Clock& clock)
    : options_(std::move(options)), bus_(bus), submissions_(submissions), blobs_(blobs), fetcher_(fetcher),
      clock_(clock), metrics_(registry) {}

IngestWorker::~IngestWorker() { Stop(); }

Status IngestWorker::Start() {
  FF_ASSIGN_OR_RETURN(consumer_, bus_.NewConsumer({options_.group, "ingest-" + options_.instance, true}));
  FF_ASSIGN_OR_RETURN(dlq_, bus_.NewProducer("ingest-dlq-" + options_.instance));
  std::vector<bus::TopicPartition> parts;
  if (options_.partitions.empty()) {
    FF_ASSIGN_OR_RETURN(parts, bus::AllPartitions(bus_, options_.topic));
  } else {
    for (int32_t p : options_.partitions) parts.push_back({options_.topic, p});
  }
  FF_RETURN_IF_ERROR(consumer_->Assign(parts));
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void IngestWorker::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

bool IngestWorker::Backoff(std::chrono::milliseconds delay) {
  const auto deadline = clock_.Monotonic() + delay;
  while (!stop_) {
    const auto now = clock_.Monotonic();
    if (now >= deadline) return true;
    clock_.SleepUntil(std::min(deadline, now + std::chrono::milliseconds(50)));
  }
  return false;
}

Status IngestWorker::DeadLetterRecord(const bus::Record& record, const std::string& reason) {
  FF_LOG_WARN(Logger("ingest"), "{}/{}/{} dead-lettered: {}", record.topic, record.partition, record.offset, reason);
  Status s = dlq_->Produce(bus::DeadLetterMessage(record, "ingest: " + reason)).status();
  if (!s.ok()) {
    metrics_.retry.Increment();
    return Status::Retryable(Code::kUnavailable, "dead-letter produce failed: " + s.message());
  }
  metrics_.dead_letter.Increment();
  return Status::Ok();
}

Result<FetchedDocument> IngestWorker::FetchWithRetries(const std::string& url) {
  std::chrono::milliseconds delay = options_.fetch_backoff;
  for (int attempt = 0;; ++attempt) {
    const auto start = clock_.Monotonic();
    auto fetched = fetcher_.Fetch(url);
    metrics_.fetch_seconds.Observe(std::chrono::duration<double>(clock_.Monotonic() - start).count());
    if (fetched.ok()) {
      metrics_.fetch_bytes.Increment(static_cast<double>(fetched->content.size()));
      return fetched;
    }
    if (!fetched.status().retryable() || attempt >= options_.fetch_retries) {
      if (fetched.status().retryable())
        return Status::Permanent(fetched.status().code(),
                                 fetched.status().message() + " (after " + std::to_string(attempt + 1) + " attempts)");
      return fetched.status();
    }
    metrics_.retry.Increment();
    FF_LOG_INFO(Logger("ingest"), "fetch of a document failed ({}), retry {} of {} in {} ms", fetched.status().message(),
                attempt + 1, options_.fetch_retries, delay.count());
    if (!Backoff(delay)) return Status::Retryable(Code::kCancelled, "stopping");
    delay *= 2;
  }
}

std::string IngestFaxId(std::string_view tenant, std::string_view client_ref) {
  std::string material = "ingest\n";
  material.append(tenant);
  material += '\n';
  material.append(client_ref);
  return "fax_" + Sha256Hex(material).substr(0, 20);
}

Status IngestWorker::Handle(const bus::Record& record) {
  if (static_cast<int64_t>(record.value.size()) > options_.max_record_bytes)
    return DeadLetterRecord(record, "record too large: " + std::to_string(record.value.size()) + " bytes (limit " +
                                        std::to_string(options_.max_record_bytes) + ", ingest.max_record_bytes)");
  auto decoded = DecodeIngestRecord(record);
  if (!decoded.ok()) return DeadLetterRecord(record, decoded.status().message());
  IngestRequest& in = *decoded;

  SubmitRequest req;
  req.tenant = in.tenant;
  req.to = in.to;
  req.options = in.options;
  req.source = "ingest";
  // A record carrying the client's `id` gets a fax id derived from (tenant, id): a record
  // handled again after a crash between produce and commit, or a client re-sending the same
  // id, yields the same fax and recipient ids, so the modem stage's dial ledger suppresses the
  // second copy (exactly one call per recipient). Records without an id get a fresh fax id.
  if (!in.client_ref.empty()) req.fax_id = IngestFaxId(in.tenant, in.client_ref);

  // Cheap checks before any URL is fetched, so a record that is going to fail anyway (or names
  // thousands of URLs) costs no fetches. The SubmissionService re-checks everything.
  const int64_t max_documents = submissions_.limits().max_documents;
  if (static_cast<int64_t>(in.documents.size()) > max_documents)
    return DeadLetterRecord(record, "too_many_documents: at most " + std::to_string(max_documents) +
                                        " documents (field documents)");
  if (in.to.empty())
    return DeadLetterRecord(record, "missing_recipient: at least one recipient ('to') is required (field to)");
  // Blob references next: a missing blob fails the record before any fetch.
  for (size_t i = 0; i < in.documents.size(); ++i) {
    const auto& d = in.documents[i];
    if (d.kind != IngestDocument::Kind::kBlob) continue;
    const std::string field = "documents[" + std::to_string(i) + "].blob_id";
    if (!IsBlobId(d.blob_id))
      return DeadLetterRecord(record, field + ": '" + d.blob_id + "' is not a blob id (lowercase hex SHA-256)");
    auto exists = blobs_.Exists(d.blob_id);
    if (!exists.ok()) {
      metrics_.retry.Increment();
      return Status::Retryable(Code::kUnavailable, "blob store: " + exists.status().message());
    }
    if (!*exists) return DeadLetterRecord(record, field + ": unknown blob '" + d.blob_id + "' (not in the blob store)");
  }
  for (size_t i = 0; i < in.documents.size(); ++i) {
    auto& d = in.documents[i];
    UploadedDocument up;
    up.filename = d.filename;
    switch (d.kind) {
      case IngestDocument::Kind::kBlob:
        up.blob_id = d.blob_id;
        break;
      case IngestDocument::Kind::kContent:
        up.content = std::move(d.content);
        break;
      case IngestDocument::Kind::kUrl: {
        auto fetched = FetchWithRetries(d.url);
        if (!fetched.ok()) {
          if (fetched.status().code() == Code::kCancelled) return fetched.status();
          return DeadLetterRecord(record, "documents[" + std::to_string(i) + "].url: " + fetched.status().message());
        }
        up.content = std::move(fetched->content);
        if (up.filename.empty()) up.filename = FilenameFromUrl(fetched->final_url);
        break;
      }
    }
    req.documents.push_back(std::move(up));
  }

  SubmitOutcome out = submissions_.Submit(req);
  if (out.ok()) {
    metrics_.accepted.Increment();
    FF_LOG_INFO(Logger("ingest"), "{}/{}/{} accepted as {} ({}{}{})", record.topic, record.partition, record.offset,
                out.submission.fax_id(), in.format, in.client_ref.empty() ? "" : ", id ", in.client_ref);
    return Status::Ok();
  }
  if (out.http_status == 503) {  // bus or blob store outage: not the record's fault
    metrics_.retry.Increment();
    return Status::Retryable(Code::kUnavailable, out.error_code + ": " + out.message);
  }
  std::string reason = out.error_code + ": " + out.message;
  if (!out.field.empty()) reason += " (field " + IngestField(out.field) + ")";
  return DeadLetterRecord(record, reason);
}

void IngestWorker::Run() {
  auto log = Logger("ingest");
  auto beat = RegisterHeartbeat(heartbeats_, "ingest");
  while (!stop_) {
    beat->Beat();
    auto polled = consumer_->Poll(options_.poll_timeout, 50);
    if (!polled.ok()) {
      FF_LOG_WARN(log, "poll failed: {}", polled.status().ToString());
      Backoff(options_.outage_backoff);
      continue;
    }
    const auto& records = *polled;
    for (size_t i = 0; i < records.size() && !stop_; ++i) {
      const auto& record = records[i];
      Status s = Handle(record);
      if (s.ok()) {
        Status c = consumer_->Commit({{record.tp(), record.offset + 1}});
        if (!c.ok()) FF_LOG_WARN(log, "commit of {}/{}/{} failed (it will be ingested again after a restart): {}",
                                 record.topic, record.partition, record.offset, c.ToString());
        continue;
      }
      // Neither accepted nor dead-lettered: rewind every partition of the rest of the batch to its
      // first unhandled record and try again after a pause.
      if (s.code() != Code::kCancelled)
        FF_LOG_WARN(log, "{}/{}/{} not handled, will retry: {}", record.topic, record.partition, record.offset, s.ToString());
      std::map<bus::TopicPartition, int64_t> rewind;
      for (size_t j = i; j < records.size(); ++j) rewind.emplace(records[j].tp(), records[j].offset);
      for (const auto& [tp, offset] : rewind) {
        Status r = consumer_->Seek(tp, offset);
        if (!r.ok()) FF_LOG_ERROR(log, "seek {}/{} to {} failed: {}", tp.topic, tp.partition, offset, r.ToString());
      }
      Backoff(options_.outage_backoff);
      break;
    }
  }
}

}  // namespace faxflow::ingest
