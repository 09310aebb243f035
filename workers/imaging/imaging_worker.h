// The imaging worker: consumes fax.submissions, renders every document of a submission into fax
// pages (renderer.h), stores the pages in the blob store and, in ONE bus transaction together
// with the consumed offset, produces one OutboundJob per recipient to fax.jobs and a Rendered
// event to fax.events. Consume-render-produce is therefore exactly once on the bus: a crash
// before the commit redoes the render (pages are content-addressed, so storing them again is
// idempotent), a crash after it never repeats a job.
//
// Per record outcomes:
//   - undecodable or invalid Submission: the original bytes go to fax.dlq (headers
//     faxflow-dlq-reason, faxflow-dlq-origin = "fax.submissions/<partition>/<offset>") with the
//     offset, in one transaction; the worker continues.
//   - document error (corrupt/hostile/unsupported/too many pages): one terminal FAILED
//     DeliveryEvent per recipient (REASON_DOCUMENT_ERROR, detail = the message) + offset.
//   - broadcast covers (docs/broadcast.md): recipients with a cover_blob_id get their own cover
//     page first (each distinct cover rendered once, one page at most; a worker-local cache
//     reuses covers rendered for earlier chunks), then the shared pages (the rendered documents,
//     then append_page_blob_ids, which are not rendered again). A cover that cannot be rendered
//     fails only its recipient(s) with REASON_DOCUMENT_ERROR; the others get their jobs. The
//     Rendered event then lists the shared pages and cover_pages = 1. Submissions without
//     covers and append pages take the unchanged path.
//   - retryable error (blob store, bus): the transaction is aborted, the thread backs off
//     (Clock) and redoes the same record.
//   - fatal (fenced producer, missing gs, corrupt store): that thread stops and logs at error
//     level; status() returns the error so the process can exit and be restarted.
//
// Exactly once across owners: every INPUT PARTITION N has its own TransactionalProducer with the
// id faxflow-imaging-<site>-p<N>. Taking a partition creates that producer first
// (init_transactions fences the previous owner of N and aborts its open transaction) and only
// then assigns the partition (resuming at the committed offset). A stale owner (paused, cut
// off, slow) therefore fails its next commit with kFenced and its output never becomes visible
// to read_committed consumers. Released partitions are unassigned and their producer closed.
// Every produced record carries the headers faxflow-imaging-input (= "<topic>/<partition>/
// <offset>" of the submission) and faxflow-imaging-worker (options.worker_id, else the site).
//
// Lifecycle: construct, Start() once, Stop() (or destroy). Threading: `threads` worker threads,
// each with its own Consumer (group faxflow-imaging, read_committed) and the producers of its
// partitions. Thread i owns the partitions p of the worker's set with p % threads == i, so a
// partition always stays on the same thread. With follow_claims (topics/claims), the set starts
// empty and follows SetPartitions(); a fenced partition is dropped and re-taken only if the
// claims still give it to this worker. Without it, a fenced producer is fatal (two processes
// were configured with overlapping static partitions).
// SetPartitions(), RendersInFlight() and status() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/config.h"
#include "common/heartbeat.h"
#include "common/metrics.h"
#include "common/status.h"
#include "storage/blob_store.h"
#include "topics/bus.h"
#include "workers/imaging/metrics.h"
#include "workers/imaging/renderer.h"

namespace faxflow::v1 {
class Submission;
}

namespace faxflow::imaging {

// Headers on every record the imaging worker produces (see the file comment).
inline constexpr std::string_view kInputHeader = "faxflow-imaging-input";
inline constexpr std::string_view kWorkerHeader = "faxflow-imaging-worker";

struct ImagingOptions {
  int threads = 2;
  RendererOptions renderer;
  std::string site = "local";
  // Distinguishes worker processes of one site in transactional ids; must be unique and stable
  // per process slot (e.g. the pod ordinal). Empty: one imaging process per site.
  std::string instance;
  // Partitions of fax.submissions this worker owns; empty = all (a claims module replaces this
  // at run time through SetPartitions()).
  std::vector<int32_t> partitions;
  std::chrono::milliseconds poll_timeout{200};
  // Records of one input partition committed in one transaction (at most this many, and only
  // what was prepared within txn_linger of the first), so a busy partition pays one bus
  // transaction per batch instead of one per submission. 1 = a transaction per submission.
  int txn_max_records = 32;
  std::chrono::milliseconds txn_linger{100};
  std::chrono::milliseconds retry_backoff_initial{250};
  std::chrono::milliseconds retry_backoff_max{30'000};
  // Claims mode (topics/claims): an empty partition set means none (not all), the worker starts
  // with none, and fencing drops the partition instead of stopping the thread.
  bool follow_claims = false;
  // Member id written into the faxflow-imaging-worker header (claims worker id).
  std::string worker_id;
  // Called on the owning thread when a newly owned partition is served (producer initialised,
  // consumer assigned), with the seconds since SetPartitions() gave it; and when a partition's
  // transaction was fenced by a newer owner.
  std::function<void(int32_t partition, double seconds)> on_partition_taken;
  std::function<void(int32_t partition)> on_partition_fenced;
  // Liveness of the render threads (component "imaging", one loop per thread; beats every turn
  // and every document); null: none. Must outlive the worker's threads.
  Heartbeats* heartbeats = nullptr;

  static ImagingOptions FromConfig(const Config& config);
};

// See the file comment.
class ImagingWorker {
 public:
  ImagingWorker(ImagingOptions options, bus::Bus& bus, BlobStore& blobs, prometheus::Registry& registry,
                Clock& clock);
  ~ImagingWorker();
  ImagingWorker(const ImagingWorker&) = delete;
  ImagingWorker& operator=(const ImagingWorker&) = delete;

  // Checks gs, creates every thread's consumer and transactional producer (fencing older
  // producers with the same ids), then starts the threads.
  Status Start();
  // Graceful: every thread finishes the record it is working on (or aborts its transaction)
  // and exits; uncommitted records are redelivered to the next owner. Idempotent.
  void Stop();

  // Replaces the owned partitions (empty = all, or none with follow_claims); threads re-assign
  // before their next poll.
  void SetPartitions(std::vector<int32_t> partitions);

  // Submissions being rendered right now (for the load score).
  int RendersInFlight() const { return in_flight_.load(); }
  int threads() const { return options_.threads; }

  // Transactional id of input partition `partition` at `site`.
  static std::string TransactionalId(const std::string& site, int32_t partition);

  // OK while every thread runs; the first fatal error otherwise.
  Status status() const;

 private:
  struct Thread;
  // One submission's output, built before its transaction (Prepare) and accounted after it.
  struct Prepared {
    enum class Kind { kDeadLetter, kDocumentError, kRendered };
    Kind kind = Kind::kRendered;
    std::vector<bus::Message> sends;  // with the input/worker headers
    std::string input;                // "<topic>/<partition>/<offset>"
    std::string fax_id;
    std::string detail;  // dead-letter reason or document error
    int recipients = 0;
    size_t pages = 0;
    double render_seconds = 0;
    size_t covers_rendered = 0, covers_reused = 0, covers_failed = 0, cover_failed_recipients = 0;
  };
  enum class Turn { kContinue, kDropped, kExit };
  // The polled records of one input partition and the run being committed from them.
  struct Lane {
    int32_t partition = 0;
    std::vector<const bus::Record*> records;  // offset order
    size_t next = 0;                          // first record not yet committed
    std::vector<Prepared> run;                // prepared records[next, next + run.size())
    Status failed;                            // why records[next + run.size()] did not prepare
  };
  void PrepareRun(Thread& t, Lane& lane, Heartbeat& beat);
  // Accounts a committed run (or redoes it record by record), then retries a record that
  // failed to prepare; advances lane.next.
  Turn SettleRun(Thread& t, Lane& lane, const Status& committed, Heartbeat& beat);
  void Run(Thread& t);
  Turn ProcessBatch(Thread& t, const std::vector<bus::Record>& polled, Heartbeat& beat);
  // The one-record retry loop (prepare and commit until done); `first` is a failure already seen.
  Turn RetryRecord(Thread& t, const bus::Record& record, Heartbeat& beat, const Status* first);
  Status Prepare(Thread& t, const bus::Record& record, Prepared& out);
  Status Commit(Thread& t, const bus::Record& last, const std::vector<Prepared>& run);
  void Account(const Prepared& prepared);
  std::vector<bus::TopicPartition> ShareOf(int index);
  Status Reassign(Thread& t);
  void DropPartition(Thread& t, int32_t partition);
  Status ProcessRecord(Thread& t, const bus::Record& record);
  void SetFatal(const Status& s);
  void Backoff(std::chrono::milliseconds delay);
  // One recipient cover: the page blob id, or `error` (a document error of that cover only).
  // A non-OK Result is a retryable/fatal failure of the whole record.
  struct CoverOutcome {
    std::string page_id;
    std::string error;
    bool rendered = false;  // false: reused from the cover cache
  };
  Result<CoverOutcome> RenderCover(const std::string& cover_blob_id, const RenderRequest& request);
  // The covers / append-pages path of Prepare: `shared` = the rendered document pages.
  Result<std::vector<bus::Message>> PrepareShared(const v1::Submission& sub, const RenderRequest& request,
                                                  std::vector<std::string> shared, Clock::MonoTime start,
                                                  Heartbeat* beat, Prepared& out);

  ImagingOptions options_;
  bus::Bus& bus_;
  BlobStore& blobs_;
  Clock& clock_;
  ImagingMetrics metrics_;
  Renderer renderer_;

  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> partitions_generation_{1};
  std::atomic<int> in_flight_{0};
  Clock::MonoTime partitions_set_at_{};  // guarded by mu_
  mutable std::mutex mu_;
  std::vector<int32_t> partitions_;  // guarded by mu_
  int32_t partition_count_ = 0;
  Status fatal_;  // guarded by mu_
  std::vector<std::unique_ptr<Thread>> threads_;
  bool started_ = false;
  // Cover cache: "<cover blob id>/<resolution>/<paper>" -> page blob id, at most kCoverCacheSize
  // entries (oldest evicted first); a hit is used only while the page is still in the blob store.
  static constexpr size_t kCoverCacheSize = 4096;
  std::mutex cover_mu_;
  std::map<std::string, std::string> cover_cache_;  // guarded by cover_mu_
  std::vector<std::string> cover_order_;            // guarded by cover_mu_ (ring, insertion order)
  size_t cover_next_ = 0;                           // guarded by cover_mu_
};

}  // namespace faxflow::imaging
