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
//   - retryable error (blob store, bus): the transaction is aborted, the thread backs off
//     (Clock) and redoes the same record.
//   - fatal (fenced producer, missing gs, corrupt store): that thread stops and logs at error
//     level; status() returns the error so the process can exit and be restarted.
//
// Lifecycle: construct, Start() once, Stop() (or destroy). Threading: `threads` worker threads,
// each with its own Consumer (group faxflow-imaging, read_committed) and TransactionalProducer
// (id faxflow-imaging-<site>[-<instance>]-<i>). Thread i owns the partitions p of the
// worker's set with p % threads == i, so a partition always stays on the same thread.
// SetPartitions() and status() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/config.h"
#include "common/metrics.h"
#include "common/status.h"
#include "storage/blob_store.h"
#include "topics/bus.h"
#include "workers/imaging/metrics.h"
#include "workers/imaging/renderer.h"

namespace faxflow::imaging {

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
  std::chrono::milliseconds retry_backoff_initial{250};
  std::chrono::milliseconds retry_backoff_max{30'000};

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

  // Replaces the owned partitions (empty = all); threads re-assign before their next poll.
  void SetPartitions(std::vector<int32_t> partitions);

  // OK while every thread runs; the first fatal error otherwise.
  Status status() const;

 private:
  struct Thread;
  void Run(Thread& t);
  std::vector<bus::TopicPartition> ShareOf(int index);
  Status ProcessRecord(Thread& t, const bus::Record& record);
  void SetFatal(const Status& s);
  void Backoff(std::chrono::milliseconds delay);

  ImagingOptions options_;
  bus::Bus& bus_;
  BlobStore& blobs_;
  Clock& clock_;
  ImagingMetrics metrics_;
  Renderer renderer_;

  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> partitions_generation_{1};
  mutable std::mutex mu_;
  std::vector<int32_t> partitions_;  // guarded by mu_
  int32_t partition_count_ = 0;
  Status fatal_;  // guarded by mu_
  std::vector<std::unique_ptr<Thread>> threads_;
  bool started_ = false;
};

}  // namespace faxflow::imaging
