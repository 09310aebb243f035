#include "workers/imaging/imaging_worker.h"

#include <algorithm>
#include <future>
#include <map>
#include <set>

#include "common/ids.h"
#include "common/log.h"
#include "schemas/event.pb.h"
#include "schemas/job.pb.h"
#include "schemas/outbound_job.h"
#include "schemas/submission.pb.h"
#include "topics/catalogue.h"
#include "topics/dead_letter.h"
#include "topics/proto_message.h"
#include "workers/imaging/sniff.h"

namespace faxflow::imaging {
namespace {

Status DocError(std::string message) { return Status::Permanent(Code::kDocumentError, std::move(message)); }

RenderRequest RequestFor(const v1::FaxOptions& o) {
  RenderRequest r;
  r.resolution = o.resolution() == v1::RESOLUTION_NORMAL ? FaxResolution::kNormal : FaxResolution::kFine;
  r.paper = o.paper() == v1::PAPER_LETTER ? PaperSize::kLetter : PaperSize::kA4;
  return r;
}

// Why a decodable record is still not a submission we can work on; empty if it is fine.
std::string InvalidSubmission(const v1::Submission& s) {
  if (s.fax_id().empty()) return "submission without fax_id";
  if (s.recipients().empty()) return "submission without recipients";
  if (s.documents().empty() && s.append_page_blob_ids().empty()) return "submission without documents";
  for (const auto& r : s.recipients())
    if (r.recipient_id().empty() || r.number().empty()) return "recipient without id or number";
  for (const auto& p : s.append_page_blob_ids())
    if (!IsBlobId(p)) return "append page '" + p + "' is not a blob id";
  return "";
}

// A terminal FAILED document_error event of one recipient (the document or its cover failed).
v1::DeliveryEvent DocumentErrorEvent(const v1::Submission& sub, const v1::Recipient& r,
                                     const std::string& site, int64_t now_ms, const std::string& detail) {
  v1::DeliveryEvent ev;
  ev.set_event_id(NewId("evt", now_ms));
  ev.set_fax_id(sub.fax_id());
  ev.set_recipient_id(r.recipient_id());
  ev.set_tenant(sub.tenant());
  ev.set_at_ms(now_ms);
  ev.set_site(site);
  auto* res = ev.mutable_result();
  res->set_state(v1::STATE_FAILED);
  res->set_reason(v1::REASON_DOCUMENT_ERROR);
  res->set_terminal(true);
  res->set_detail(detail);
  return ev;
}

// The fax's Rendered event: `page_ids` are the shared pages (without covers); page_count counts
// the cover too when every job carries one (cover_pages = 1).
v1::DeliveryEvent RenderedEvent(const v1::Submission& sub, const std::string& site, int64_t now_ms,
                                const std::vector<std::string>& page_ids, double seconds,
                                int32_t cover_pages) {
  v1::DeliveryEvent ev;
  ev.set_event_id(NewId("evt", now_ms));
  ev.set_fax_id(sub.fax_id());
  ev.set_tenant(sub.tenant());
  ev.set_at_ms(now_ms);
  ev.set_site(site);
  ev.mutable_rendered()->set_page_count(static_cast<int32_t>(page_ids.size()) + cover_pages);
  ev.mutable_rendered()->set_render_seconds(seconds);
  ev.mutable_rendered()->set_cover_pages(cover_pages);
  for (const auto& id : page_ids) ev.mutable_rendered()->add_page_blob_ids(id);
  return ev;
}

// Decrements a gauge on scope exit.
class InFlight {
 public:
  explicit InFlight(prometheus::Gauge& g) : g_(g) { g_.Increment(); }
  ~InFlight() { g_.Decrement(); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  prometheus::Gauge& g_;
};

}  // namespace

ImagingOptions ImagingOptions::FromConfig(const Config& config) {
  ImagingOptions o;
  if (config.imaging_workers > 0) o.threads = static_cast<int>(config.imaging_workers);
  if (config.imaging_txn_max_records > 0)
    o.txn_max_records = static_cast<int>(config.imaging_txn_max_records);
  if (config.imaging_txn_linger_ms >= 0)
    o.txn_linger = std::chrono::milliseconds(config.imaging_txn_linger_ms);
  o.renderer = RendererOptions::FromConfig(config);
  if (!config.site.empty()) o.site = config.site;
  return o;
}

struct ImagingWorker::Thread {
  int index = 0;
  std::string name;  // consumer client id and log prefix
  std::unique_ptr<bus::Consumer> consumer;
  // One transactional producer per owned input partition (id faxflow-imaging-<site>-p<N>).
  std::map<int32_t, std::unique_ptr<bus::TransactionalProducer>> producers;
  uint64_t assigned_generation = 0;
  std::thread thread;
  Heartbeat* beat = nullptr;  // of Run(), while it runs
};

std::string ImagingWorker::TransactionalId(const std::string& site, int32_t partition) {
  return "faxflow-imaging-" + site + "-p" + std::to_string(partition);
}

ImagingWorker::ImagingWorker(ImagingOptions options, bus::Bus& bus, BlobStore& blobs,
                             prometheus::Registry& registry, Clock& clock)
    : options_(std::move(options)),
      bus_(bus),
      blobs_(blobs),
      clock_(clock),
      metrics_(registry),
      renderer_(options_.renderer, clock, &registry),
      partitions_(options_.partitions) {
  if (options_.threads < 1) options_.threads = 1;
}

ImagingWorker::~ImagingWorker() { Stop(); }

Status ImagingWorker::Start() {
  if (started_) return Status::Permanent(Code::kFailedPrecondition, "imaging worker already started");
  FF_RETURN_IF_ERROR(renderer_.CheckGhostscript());
  FF_ASSIGN_OR_RETURN(partition_count_, bus_.PartitionCount(std::string(bus::topic::kSubmissions)));
  std::string prefix =
      "faxflow-imaging-" + options_.site + (options_.instance.empty() ? "" : "-" + options_.instance);
  if (!options_.worker_id.empty()) prefix = "faxflow-imaging-" + options_.worker_id;
  for (int i = 0; i < options_.threads; ++i) {
    auto t = std::make_unique<Thread>();
    t->index = i;
    t->name = prefix + "-" + std::to_string(i);
    bus::ConsumerOptions co;
    co.group = std::string(bus::group::kImaging);
    co.client_id = t->name;
    co.read_committed = true;
    FF_ASSIGN_OR_RETURN(t->consumer, bus_.NewConsumer(co));
    // Static partitions: their producers exist (and have fenced older owners) when Start returns.
    if (!options_.follow_claims) {
      t->assigned_generation = partitions_generation_.load();
      FF_RETURN_IF_ERROR(Reassign(*t));
    }
    threads_.push_back(std::move(t));
  }
  started_ = true;
  for (auto& t : threads_) {
    Thread* raw = t.get();
    t->thread = std::thread([this, raw] { Run(*raw); });
  }
  FF_LOG_INFO(Logger("imaging"), "imaging worker started: {} threads, {} partitions of {}", options_.threads,
              partition_count_, bus::topic::kSubmissions);
  return Status::Ok();
}

void ImagingWorker::Stop() {
  stop_.store(true);
  for (auto& t : threads_)
    if (t->thread.joinable()) t->thread.join();
}

void ImagingWorker::SetPartitions(std::vector<int32_t> partitions) {
  {
    std::lock_guard lock(mu_);
    partitions_ = std::move(partitions);
    partitions_set_at_ = clock_.Monotonic();
  }
  partitions_generation_.fetch_add(1);
}

Status ImagingWorker::status() const {
  std::lock_guard lock(mu_);
  return fatal_;
}

void ImagingWorker::SetFatal(const Status& s) {
  std::lock_guard lock(mu_);
  if (fatal_.ok()) fatal_ = s;
}

std::vector<bus::TopicPartition> ImagingWorker::ShareOf(int index) {
  std::vector<int32_t> owned;
  {
    std::lock_guard lock(mu_);
    owned = partitions_;
  }
  if (owned.empty() && !options_.follow_claims)
    for (int32_t p = 0; p < partition_count_; ++p) owned.push_back(p);
  std::vector<bus::TopicPartition> share;
  for (int32_t p : owned)
    if (p >= 0 && p % options_.threads == index) share.push_back({std::string(bus::topic::kSubmissions), p});
  return share;
}

void ImagingWorker::Backoff(std::chrono::milliseconds delay) {
  // Sleeps in slices so Stop() is honoured within ~100 ms.
  auto deadline = clock_.Monotonic() + delay;
  while (!stop_.load() && clock_.Monotonic() < deadline)
    clock_.SleepUntil(std::min(deadline, clock_.Monotonic() + std::chrono::milliseconds(100)));
}

Status ImagingWorker::Reassign(Thread& t) {
  const auto share = ShareOf(t.index);
  std::set<int32_t> wanted;
  for (const auto& tp : share)
    if (tp.partition < partition_count_) wanted.insert(tp.partition);
  // Release first: stop consuming, then close the producer (no transaction is open here).
  std::vector<int32_t> released;
  for (const auto& [p, producer] : t.producers)
    if (!wanted.contains(p)) released.push_back(p);
  for (int32_t p : released) DropPartition(t, p);
  // Take: the producer first (fences the previous owner, aborting its open transaction), then
  // the consumer resumes at the committed offset, which no stale owner can move any more.
  Clock::MonoTime decided;
  {
    std::lock_guard lock(mu_);
    decided = partitions_set_at_;
  }
  Status failure;
  std::vector<int32_t> taken;
  for (int32_t p : wanted) {
    if (t.producers.contains(p)) continue;
    auto producer = bus_.NewTransactionalProducer(TransactionalId(options_.site, p));
    if (!producer.ok()) {
      failure = producer.status().WithContext("taking partition " + std::to_string(p));
      break;
    }
    t.producers[p] = std::move(*producer);
    taken.push_back(p);
  }
  std::vector<bus::TopicPartition> assignment;
  for (const auto& [p, producer] : t.producers)
    assignment.push_back({std::string(bus::topic::kSubmissions), p});
  Status s = t.consumer->Assign(assignment);
  if (!s.ok()) return s;
  if (options_.follow_claims) {
    const double seconds = std::chrono::duration<double>(clock_.Monotonic() - decided).count();
    for (int32_t p : taken) {
      FF_LOG_INFO(Logger("imaging"), "{}: took partition {} of {} ({:.3f} s after the claim)", t.name, p,
                  bus::topic::kSubmissions, seconds);
      if (options_.on_partition_taken) options_.on_partition_taken(p, seconds);
    }
  }
  return failure;
}

void ImagingWorker::DropPartition(Thread& t, int32_t partition) {
  std::vector<bus::TopicPartition> keep;
  for (const auto& tp : t.consumer->Assignment())
    if (tp.partition != partition) keep.push_back(tp);
  Status s = t.consumer->Assign(keep);
  if (!s.ok())
    FF_LOG_WARN(Logger("imaging"), "{}: unassigning partition {}: {}", t.name, partition, s.ToString());
  t.producers.erase(partition);
}

void ImagingWorker::Run(Thread& t) {
  auto log = Logger("imaging");
  // One document renders for up to the Ghostscript timeout between beats.
  const auto render_limit =
      std::chrono::milliseconds(static_cast<int64_t>(options_.renderer.timeout_seconds * 1000));
  auto beat = RegisterHeartbeat(options_.heartbeats, "imaging", render_limit + std::chrono::seconds(60));
  t.beat = beat.get();
  auto backoff = options_.retry_backoff_initial;
  while (!stop_.load()) {
    beat->Beat();
    uint64_t generation = partitions_generation_.load();
    if (generation != t.assigned_generation) {
      Status s = Reassign(t);
      if (!s.ok()) {
        FF_LOG_WARN(log, "{}: assign failed: {}", t.name, s.ToString());
        if (s.fatal() && s.code() != Code::kFenced) {
          SetFatal(s);
          return;
        }
        Backoff(backoff);
        backoff = std::min(backoff * 2, options_.retry_backoff_max);
        continue;
      }
      t.assigned_generation = generation;
    }
    if (t.consumer->Assignment().empty()) {
      Backoff(options_.poll_timeout);
      continue;
    }
    // Up to txn_max_records at a time; Stop() waits for the documents of one batch at most
    // (documents already rendered are committed, the rest are redelivered to the next owner).
    auto polled = t.consumer->Poll(options_.poll_timeout, static_cast<size_t>(options_.txn_max_records));
    if (!polled.ok()) {
      FF_LOG_WARN(log, "{}: poll failed: {}", t.name, polled.status().ToString());
      if (polled.status().fatal()) {
        SetFatal(polled.status());
        return;
      }
      Backoff(backoff);
      backoff = std::min(backoff * 2, options_.retry_backoff_max);
      continue;
    }
    if (ProcessBatch(t, *polled, *beat) == Turn::kExit) return;
    backoff = options_.retry_backoff_initial;
  }
}

ImagingWorker::Turn ImagingWorker::ProcessBatch(Thread& t, const std::vector<bus::Record>& polled,
                                                Heartbeat& beat) {
  // A poll interleaves the thread's partitions; a transaction covers one partition (its own
  // transactional producer), so the records are split into one lane per partition, each in
  // offset order.
  std::map<int32_t, Lane> by_partition;
  for (const auto& r : polled) {
    Lane& lane = by_partition[r.partition];
    lane.partition = r.partition;
    lane.records.push_back(&r);
  }
  std::vector<Lane*> lanes;
  for (auto& [p, lane] : by_partition) lanes.push_back(&lane);

  // Prepare the first run of every lane, then commit those runs side by side: a transaction
  // mostly waits for the broker, so the lanes' commits overlap instead of adding up.
  for (Lane* lane : lanes) {
    if (stop_.load()) return Turn::kExit;  // nothing committed: redelivered to the next owner
    PrepareRun(t, *lane, beat);
  }
  std::vector<std::pair<Lane*, std::future<Status>>> commits;
  for (Lane* lane : lanes) {
    if (lane->run.empty()) continue;
    const bus::Record& last = *lane->records[lane->next + lane->run.size() - 1];
    const auto policy = lanes.size() > 1 ? std::launch::async : std::launch::deferred;
    commits.emplace_back(lane,
                         std::async(policy, [this, &t, lane, &last] { return Commit(t, last, lane->run); }));
  }
  std::map<Lane*, Status> committed;
  for (auto& [lane, future] : commits) committed[lane] = future.get();

  // Settle every lane, then finish its remaining records one run (one transaction) at a time.
  bool dropped = false;
  for (Lane* lane : lanes) {
    auto it = committed.find(lane);
    Turn turn = SettleRun(t, *lane, it != committed.end() ? it->second : Status::Ok(), beat);
    while (turn == Turn::kContinue && lane->next < lane->records.size()) {
      if (stop_.load()) return Turn::kExit;
      PrepareRun(t, *lane, beat);
      Status s;
      if (!lane->run.empty()) s = Commit(t, *lane->records[lane->next + lane->run.size() - 1], lane->run);
      turn = SettleRun(t, *lane, s, beat);
    }
    if (turn == Turn::kExit) return Turn::kExit;
    if (turn == Turn::kDropped) dropped = true;
  }
  if (dropped) Backoff(std::chrono::milliseconds(1000));  // let the claims settle
  return Turn::kContinue;
}

void ImagingWorker::PrepareRun(Thread& t, Lane& lane, Heartbeat& beat) {
  // The run closes at txn_max_records, after txn_linger of preparing, or at a record that fails.
  lane.run.clear();
  lane.failed = Status::Ok();
  const auto start = clock_.Monotonic();
  size_t k = lane.next;
  while (k < lane.records.size() && static_cast<int>(lane.run.size()) < options_.txn_max_records &&
         (lane.run.empty() || clock_.Monotonic() - start < options_.txn_linger) && !stop_.load()) {
    beat.Beat();
    Prepared prepared;
    lane.failed = Prepare(t, *lane.records[k], prepared);
    if (!lane.failed.ok()) break;
    lane.run.push_back(std::move(prepared));
    ++k;
  }
}

ImagingWorker::Turn ImagingWorker::SettleRun(Thread& t, Lane& lane, const Status& committed,
                                             Heartbeat& beat) {
  auto log = Logger("imaging");
  const size_t n = lane.run.size();
  if (n > 0) {
    const bus::Record& first = *lane.records[lane.next];
    if (committed.ok()) {
      for (const auto& prepared : lane.run) Account(prepared);
    } else if (committed.code() == Code::kFenced || committed.fatal()) {
      return RetryRecord(t, first, beat, &committed);  // drops the partition or stops the thread
    } else {
      // Nothing of the run became visible: redo its records one at a time.
      FF_LOG_WARN(log, "{}: transaction of {} record(s) from {}/{}/{} failed, retrying one by one: {}",
                  t.name, n, first.topic, first.partition, first.offset, committed.ToString());
      for (size_t k = lane.next; k < lane.next + n; ++k) {
        const Turn turn = RetryRecord(t, *lane.records[k], beat, nullptr);
        if (turn != Turn::kContinue) return turn;
      }
    }
    lane.next += n;
    lane.run.clear();
  }
  if (!lane.failed.ok() && lane.next < lane.records.size()) {
    if (stop_.load()) return Turn::kExit;
    // The record after the run failed to prepare: the retry loop redoes it (prepare and commit).
    const Status failed = std::move(lane.failed);
    lane.failed = Status::Ok();
    const Turn turn = RetryRecord(t, *lane.records[lane.next], beat, &failed);
    if (turn != Turn::kContinue) return turn;
    ++lane.next;
  }
  return Turn::kContinue;
}

ImagingWorker::Turn ImagingWorker::RetryRecord(Thread& t, const bus::Record& record, Heartbeat& beat,
                                               const Status* first) {
  auto log = Logger("imaging");
  auto delay = options_.retry_backoff_initial;
  Status s = first != nullptr ? *first : Status::Retryable(Code::kUnavailable, "first attempt");
  bool attempt = first == nullptr;
  while (true) {
    if (attempt) {
      beat.Beat();
      s = ProcessRecord(t, record);
      if (s.ok()) return Turn::kContinue;
    }
    attempt = true;
    if (s.code() == Code::kFenced && options_.follow_claims) {
      // A newer owner took this partition: drop it; the claims decide whether it comes back.
      FF_LOG_WARN(log, "{}: partition {} fenced by a newer owner, released ({}/{}/{} left to it): {}", t.name,
                  record.partition, record.topic, record.partition, record.offset, s.ToString());
      DropPartition(t, record.partition);
      if (options_.on_partition_fenced) options_.on_partition_fenced(record.partition);
      t.assigned_generation = 0;  // re-evaluate the share (after a pause)
      return Turn::kDropped;
    }
    if (s.fatal() || s.code() == Code::kFenced) {
      FF_LOG_ERROR(log, "{}: FATAL, thread stops: {} ({}/{}/{})", t.name, s.ToString(), record.topic,
                   record.partition, record.offset);
      SetFatal(s);
      return Turn::kExit;
    }
    metrics_.renders_retry.Increment();
    FF_LOG_WARN(log, "{}: retrying {}/{}/{} in {} ms: {}", t.name, record.topic, record.partition,
                record.offset, delay.count(), s.ToString());
    Backoff(delay);
    delay = std::min(delay * 2, options_.retry_backoff_max);
    if (stop_.load()) return Turn::kExit;  // not committed: redelivered to the next owner
  }
}

Status ImagingWorker::ProcessRecord(Thread& t, const bus::Record& record) {
  std::vector<Prepared> one(1);
  FF_RETURN_IF_ERROR(Prepare(t, record, one[0]));
  FF_RETURN_IF_ERROR(Commit(t, record, one));
  Account(one[0]);
  return Status::Ok();
}

Status ImagingWorker::Commit(Thread& t, const bus::Record& last, const std::vector<Prepared>& run) {
  auto log = Logger("imaging");
  auto producer = t.producers.find(last.partition);
  if (producer == t.producers.end())
    return Status::Retryable(Code::kUnavailable, "no transactional producer for partition " +
                                                     std::to_string(last.partition) + " yet");
  bus::TransactionalProducer& tx = *producer->second;
  const std::vector<bus::TopicPartitionOffset> next = {{last.tp(), last.offset + 1}};
  FF_RETURN_IF_ERROR(tx.Begin());
  Status s;
  for (const auto& prepared : run) {
    for (const auto& m : prepared.sends) {
      s = tx.Send(m);
      if (!s.ok()) break;
    }
    if (!s.ok()) break;
  }
  if (s.ok()) s = tx.SendOffsets(std::string(bus::group::kImaging), next);
  if (s.ok()) s = tx.Commit();
  if (s.ok()) metrics_.transaction_records.Observe(static_cast<double>(run.size()));
  if (!s.ok() && s.code() != Code::kFenced) {
    Status a = tx.Abort();
    if (!a.ok()) FF_LOG_WARN(log, "{}: abort failed: {}", tx.transactional_id(), a.ToString());
  }
  return s;
}

void ImagingWorker::Account(const Prepared& p) {
  auto log = Logger("imaging");
  switch (p.kind) {
    case Prepared::Kind::kDeadLetter:
      metrics_.dead_letters.Increment();
      FF_LOG_WARN(log, "{} moved to {}: {}", p.input, bus::topic::kDeadLetter, p.detail);
      break;
    case Prepared::Kind::kDocumentError:
      metrics_.renders_document_error.Increment();
      FF_LOG_INFO(log, "{}: document error for {} recipient(s): {}", p.fax_id, p.recipients, p.detail);
      break;
    case Prepared::Kind::kRendered:
      // Covers first: a reader that sees the render counted sees its covers counted too.
      metrics_.covers_rendered.Increment(static_cast<double>(p.covers_rendered));
      metrics_.covers_reused.Increment(static_cast<double>(p.covers_reused));
      metrics_.covers_document_error.Increment(static_cast<double>(p.covers_failed));
      metrics_.render_seconds.Observe(p.render_seconds);
      metrics_.pages.Increment(static_cast<double>(p.pages));
      metrics_.renders_ok.Increment();
      FF_LOG_INFO(log, "{}: rendered {} page(s) in {:.3f} s for {} recipient(s)", p.fax_id, p.pages,
                  p.render_seconds, p.recipients);
      if (p.covers_failed > 0)
        FF_LOG_WARN(log,
                    "{}: {} cover page(s) could not be rendered: {} recipient(s) failed with document_error",
                    p.fax_id, p.covers_failed, p.cover_failed_recipients);
      break;
  }
}

Status ImagingWorker::Prepare(Thread& t, const bus::Record& record, Prepared& out) {
  const std::string input =
      record.topic + "/" + std::to_string(record.partition) + "/" + std::to_string(record.offset);
  const std::string& worker = options_.worker_id.empty() ? options_.site : options_.worker_id;
  out = Prepared{};
  out.input = input;
  // Every output record names the submission it came from and the worker that made it.
  auto finish = [&](std::vector<bus::Message> sends) {
    for (auto& m : sends) {
      m.headers.push_back({std::string(kInputHeader), input});
      m.headers.push_back({std::string(kWorkerHeader), worker});
    }
    out.sends = std::move(sends);
    return Status::Ok();
  };

  v1::Submission sub;
  std::string invalid;
  const std::string* schema = record.header(bus::header::kSchema);
  if (schema && *schema != v1::Submission::descriptor()->full_name()) {
    invalid = "unexpected schema " + *schema;
  } else if (!sub.ParseFromString(record.value)) {
    invalid = "undecodable faxflow.v1.Submission";
  } else {
    invalid = InvalidSubmission(sub);
  }
  if (!invalid.empty()) {
    out.kind = Prepared::Kind::kDeadLetter;
    out.detail = invalid;
    return finish({bus::DeadLetterMessage(record, invalid)});
  }

  InFlight in_flight(metrics_.documents_in_flight);
  in_flight_.fetch_add(1);
  struct Done {
    std::atomic<int>& n;
    ~Done() { n.fetch_sub(1); }
  } done{in_flight_};
  auto start = clock_.Monotonic();
  RenderRequest request = RequestFor(sub.options());
  request.tenant = sub.tenant();  // pooled gs processes never serve two tenants
  std::vector<std::string> pages;
  Status failure;
  for (int i = 0; i < sub.documents_size() && failure.ok(); ++i) {
    if (t.beat != nullptr) t.beat->Beat();
    const auto& doc = sub.documents(i);
    std::string which = sub.documents_size() > 1 ? "document " + std::to_string(i + 1) + ": " : "";
    auto content = blobs_.Get(doc.blob_id());
    if (!content.ok()) {
      const Status& s = content.status();
      if (s.code() == Code::kNotFound)
        failure = DocError(which + "document content not found in the blob store");
      else if (s.code() == Code::kCorruption)
        failure = DocError(which + "stored document is corrupt: " + s.message());
      else
        return s.WithContext("blob store");
      break;
    }
    auto type = DetectDocumentType(*content);
    if (!type.ok()) {
      if (type.status().permanent())
        failure = DocError(which + type.status().message());
      else
        return type.status();
      break;
    }
    auto rendered = renderer_.Render(*content, *type, request);
    if (!rendered.ok()) {
      if (rendered.status().code() == Code::kDocumentError)
        failure = DocError(which + rendered.status().message());
      else
        return rendered.status().WithContext("render");
      break;
    }
    for (auto& p : rendered->pages) pages.push_back(std::move(p));
    if (static_cast<int>(pages.size()) > options_.renderer.max_pages)
      failure = DocError("document has more than " + std::to_string(options_.renderer.max_pages) + " pages");
  }
  // Broadcast covers / append pages (see the header): each recipient with a cover gets one page more.
  bool covers = false;
  for (const auto& r : sub.recipients()) covers = covers || !r.cover_blob_id().empty();
  const bool shared_path = covers || sub.append_page_blob_ids_size() > 0;
  if (failure.ok() && covers &&
      static_cast<int>(pages.size()) + sub.append_page_blob_ids_size() + 1 > options_.renderer.max_pages)
    failure = DocError("document has more than " + std::to_string(options_.renderer.max_pages) +
                       " pages with the cover page");
  double seconds = std::chrono::duration<double>(clock_.Monotonic() - start).count();
  const int64_t now_ms = clock_.NowMillis();

  if (!failure.ok()) {
    std::vector<bus::Message> sends;
    for (const auto& r : sub.recipients())
      sends.push_back(bus::ProtoMessage(bus::topic::kEvents, sub.fax_id(),
                                  DocumentErrorEvent(sub, r, options_.site, now_ms, failure.message())));
    out.kind = Prepared::Kind::kDocumentError;
    out.fax_id = sub.fax_id();
    out.recipients = sub.recipients_size();
    out.detail = failure.message();
    return finish(std::move(sends));
  }

  std::vector<std::string> page_ids;
  page_ids.reserve(pages.size());
  for (const auto& p : pages) {
    auto id = blobs_.Put(p);
    if (!id.ok()) return id.status().WithContext("storing page");
    page_ids.push_back(std::move(*id));
  }
  if (shared_path) {
    FF_ASSIGN_OR_RETURN(auto shared_sends,
                        PrepareShared(sub, request, std::move(page_ids), start, t.beat, out));
    return finish(std::move(shared_sends));
  }

  std::vector<bus::Message> sends;
  for (const auto& r : sub.recipients())
    sends.push_back(
        bus::ProtoMessage(bus::topic::kJobs, r.number(), OutboundJobFor(sub, r, "", page_ids, now_ms)));
  sends.push_back(
      bus::ProtoMessage(bus::topic::kEvents, sub.fax_id(),
                  RenderedEvent(sub, options_.site, now_ms, page_ids, seconds, /*cover_pages=*/0)));
  out.kind = Prepared::Kind::kRendered;
  out.fax_id = sub.fax_id();
  out.recipients = sub.recipients_size();
  out.pages = page_ids.size();
  out.render_seconds = seconds;
  return finish(std::move(sends));
}

Result<ImagingWorker::CoverOutcome> ImagingWorker::RenderCover(const std::string& cover_blob_id,
                                                               const RenderRequest& request) {
  CoverOutcome out;
  if (!IsBlobId(cover_blob_id)) {
    out.error = "cover page: '" + cover_blob_id + "' is not a blob id";
    return out;
  }
  const std::string key = cover_blob_id + "/" + std::to_string(static_cast<int>(request.resolution)) + "/" +
                          std::to_string(static_cast<int>(request.paper));
  std::string cached;
  {
    std::lock_guard lock(cover_mu_);
    auto it = cover_cache_.find(key);
    if (it != cover_cache_.end()) cached = it->second;
  }
  if (!cached.empty()) {
    auto exists = blobs_.Exists(cached);
    if (!exists.ok()) return exists.status().WithContext("blob store");
    if (*exists) {
      out.page_id = cached;
      return out;
    }
  }
  auto content = blobs_.Get(cover_blob_id);
  if (!content.ok()) {
    const Status& s = content.status();
    if (s.code() == Code::kNotFound) {
      out.error = "cover page: not found in the blob store";
      return out;
    }
    if (s.code() == Code::kCorruption) {
      out.error = "cover page: stored content is corrupt: " + s.message();
      return out;
    }
    return s.WithContext("blob store");
  }
  auto type = DetectDocumentType(*content);
  if (!type.ok()) {
    if (!type.status().permanent()) return type.status();
    out.error = "cover page: " + type.status().message();
    return out;
  }
  auto rendered = renderer_.Render(*content, *type, request);
  if (!rendered.ok()) {
    if (rendered.status().code() != Code::kDocumentError)
      return rendered.status().WithContext("render cover");
    out.error = "cover page: " + rendered.status().message();
    return out;
  }
  if (rendered->pages.size() != 1) {
    out.error =
        "cover page: renders to " + std::to_string(rendered->pages.size()) + " pages, a cover is one page";
    return out;
  }
  auto id = blobs_.Put(rendered->pages[0]);
  if (!id.ok()) return id.status().WithContext("storing cover page");
  out.page_id = *id;
  out.rendered = true;
  std::lock_guard lock(cover_mu_);
  if (cover_cache_.emplace(key, *id).second) {
    if (cover_order_.size() < kCoverCacheSize) {
      cover_order_.push_back(key);
    } else {
      cover_cache_.erase(cover_order_[cover_next_]);
      cover_order_[cover_next_] = key;
      cover_next_ = (cover_next_ + 1) % kCoverCacheSize;
    }
  }
  return out;
}

Result<std::vector<bus::Message>> ImagingWorker::PrepareShared(const v1::Submission& sub,
                                                               const RenderRequest& request,
                                                               std::vector<std::string> shared,
                                                               Clock::MonoTime start, Heartbeat* beat,
                                                               Prepared& out) {
  const size_t rendered_pages = shared.size();
  for (const auto& p : sub.append_page_blob_ids()) shared.push_back(p);
  // Each distinct cover once (identical covers have the same content-addressed blob id).
  std::map<std::string, CoverOutcome> covers;
  size_t covers_rendered = 0, covers_reused = 0, covers_failed = 0;
  for (const auto& r : sub.recipients()) {
    if (r.cover_blob_id().empty() || covers.contains(r.cover_blob_id())) continue;
    if (beat != nullptr) beat->Beat();
    FF_ASSIGN_OR_RETURN(auto c, RenderCover(r.cover_blob_id(), request));
    if (!c.error.empty())
      ++covers_failed;
    else if (c.rendered)
      ++covers_rendered;
    else
      ++covers_reused;
    covers.emplace(r.cover_blob_id(), std::move(c));
  }
  const double seconds = std::chrono::duration<double>(clock_.Monotonic() - start).count();
  const int64_t now_ms = clock_.NowMillis();
  const int32_t cover_pages = covers.empty() ? 0 : 1;

  std::vector<bus::Message> sends;
  std::vector<v1::DeliveryEvent> failures;
  for (const auto& r : sub.recipients()) {
    const CoverOutcome* cover = nullptr;
    if (!r.cover_blob_id().empty()) cover = &covers.at(r.cover_blob_id());
    if (cover != nullptr && !cover->error.empty()) {
      failures.push_back(DocumentErrorEvent(sub, r, options_.site, now_ms, cover->error));
      continue;
    }
    sends.push_back(bus::ProtoMessage(bus::topic::kJobs, r.number(),
                                OutboundJobFor(sub, r, cover ? cover->page_id : "", shared, now_ms)));
  }
  // Rendered first, so the status store sets every recipient's page total before the failures.
  v1::DeliveryEvent rendered = RenderedEvent(sub, options_.site, now_ms, shared, seconds, cover_pages);
  // Each recipient's cover page as sent, for its page preview (status store).
  auto& cover_ids = *rendered.mutable_rendered()->mutable_recipient_cover_page_ids();
  for (const auto& r : sub.recipients()) {
    if (r.cover_blob_id().empty()) continue;
    const CoverOutcome& c = covers.at(r.cover_blob_id());
    if (c.error.empty()) cover_ids[r.recipient_id()] = c.page_id;
  }
  sends.push_back(bus::ProtoMessage(bus::topic::kEvents, sub.fax_id(), rendered));
  for (const auto& f : failures) sends.push_back(bus::ProtoMessage(bus::topic::kEvents, sub.fax_id(), f));

  out.covers_rendered = covers_rendered;
  out.covers_reused = covers_reused;
  out.covers_failed = covers_failed;
  out.cover_failed_recipients = failures.size();
  out.kind = Prepared::Kind::kRendered;
  out.fax_id = sub.fax_id();
  out.recipients = sub.recipients_size();
  out.pages = rendered_pages + covers_rendered;
  out.render_seconds = seconds;
  return sends;
}

}  // namespace faxflow::imaging
