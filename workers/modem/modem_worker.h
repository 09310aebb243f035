// The modem worker: consumes outbound jobs (fax.jobs), transmits them on N channels through a
// line driver, and publishes attempt events (fax.events), at-least-once with a durable dial
// ledger so that a crash never loses a fax and never sends one twice.
//
// For app/ (`faxflow modem`, `faxflow all`) and the modem tests.
//
// Per job record (see storage/dedup_store.h for the ledger):
//   - ledger terminal                      -> suppressed: not dialled, counted
//     (DedupStore::CountSuppressed, faxflow_modem_dedup_suppressed_total);
//   - attempt N begun but not finished     -> crash mid-call: attempt N is closed as interrupted,
//     attempt N+1 resumes at page pages_confirmed+1 (faxflow_modem_resumed_total);
//   - nothing recorded                     -> attempt 1 from page 1.
// BeginAttempt is written (synced) before dialling; kAlreadyExists there means another worker
// got it first: not dialled (suppressed). Each confirmed page: DedupStore::ConfirmPage, then a
// PageConfirmed event. At the end: FinishAttempt(terminal) then an AttemptResult event.
// Whether an outcome ends the job is decided by IsTerminal() (outcome.h): for now always.
//
// Offsets: per partition, the committed offset never passes the lowest offset whose job is not
// finished (contiguous watermark), so a crash redelivers every unfinished job and skips none.
// Back-pressure: one consumer thread feeds a bounded queue (capacity = channels by default);
// when it is full the partitions are paused (polling continues, returning nothing) and resumed
// when a channel frees up.
//
// Lifecycle: construct, Start() (assigns partitions, starts 1 consumer + N channel threads),
// Stop() (stops taking jobs; queued jobs not yet started are left uncommitted; calls in
// progress may finish within `stop_grace`, then are torn down and recorded as interrupted so
// that they resume after a restart; commits the watermark). The destructor calls Stop().
// Threading: Start/Stop from one owner thread; everything else runs on the worker's threads.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/config.h"
#include "common/status.h"
#include "schemas/event.pb.h"
#include "schemas/job.pb.h"
#include "storage/blob_store.h"
#include "storage/dedup_store.h"
#include "topics/bus.h"
#include "workers/modem/channel.h"
#include "workers/modem/line_driver.h"
#include "workers/modem/metrics.h"
#include "workers/modem/sim_line.h"

namespace faxflow::modem {

struct ModemOptions {
  int channels = 4;
  double call_timeout_seconds = 900;  // watchdog in line time
  double wall_timeout_seconds = 0;    // wall-clock cap of a call; 0 = call timeout + 60 s
  std::string local_ident = "faxflow";
  std::string site = "local";
  std::string work_dir;           // temporary TIFFs (required)
  std::string line_name = "sim";  // channel names are <line_name>-<i>
  std::string jobs_topic = "fax.jobs";
  std::string events_topic = "fax.events";
  std::string dead_letter_topic = "fax.dlq";
  std::string group = "faxflow-modem";
  std::vector<int32_t> partitions;  // empty: every partition of jobs_topic
  size_t queue_capacity = 0;        // 0: one per channel
  std::chrono::milliseconds poll_timeout{100};
  std::chrono::milliseconds stop_grace{10'000};  // wall time calls may take to finish at Stop()
  // sim line settings (used when the line is `sim`)
  std::string sim_behaviours;
  SimLineOptions sim;

  // channels, call timeout, local ident, site, work dir (<data_dir>/modem-work) and sim settings
  // (received dir defaults to <data_dir>/received).
  static ModemOptions FromConfig(const Config& config);
};

// Builds the sim line driver from the options (directory = built-ins + sim_behaviours).
Result<std::unique_ptr<SimLineDriver>> MakeSimLine(const ModemOptions& options, Clock& clock);
// The line driver named by options.line_name (`sim`; `t38` and `sip` are not built yet:
// kInvalidArgument naming the driver).
Result<std::unique_ptr<LineDriver>> MakeLineDriver(const ModemOptions& options, Clock& clock);

class ModemWorker {
 public:
  ModemWorker(ModemOptions options, bus::Bus& bus, BlobStore& blobs, DedupStore& dedup, LineDriver& line,
              prometheus::Registry& registry, Clock& clock);
  ~ModemWorker();
  ModemWorker(const ModemWorker&) = delete;
  ModemWorker& operator=(const ModemWorker&) = delete;

  Status Start();
  void Stop();

  // For tests and health checks.
  int64_t JobsFinished() const { return jobs_finished_.load(); }
  int BusyChannels() const { return busy_channels_.load(); }

 private:
  struct WorkItem {
    bus::TopicPartition tp;
    int64_t offset = 0;
    v1::OutboundJob job;
  };
  // Per partition: offsets seen and whether their job is finished.
  struct PartitionTrack {
    std::map<int64_t, bool> pending;  // offset -> finished
    int64_t watermark = -1;           // next offset to read: every job below it is finished
    int64_t committed = -1;           // last committed watermark
  };

  void ConsumeLoop();
  void ChannelLoop(size_t index);
  // Returns true when the job is finished (its offset may be committed).
  bool ProcessJob(Channel& channel, const v1::OutboundJob& job);
  void MarkDone(const bus::TopicPartition& tp, int64_t offset);
  void CommitWatermarks();
  void Suppress(const v1::OutboundJob& job, const std::string& why);
  // Each returns false when the record could not be produced after retries.
  bool Emit(const v1::OutboundJob& job, v1::DeliveryEvent event);
  bool EmitResult(const v1::OutboundJob& job, const AttemptOutcome& outcome, bool terminal);
  bool ProduceWithRetry(const bus::Message& msg, const std::string& what);
  bool SendToDeadLetter(const bus::Record& record, const std::string& reason);
  // Runs a store operation, retrying retryable failures with backoff until it succeeds, fails
  // permanently, or the worker stops.
  Status RetryStore(const std::function<Status()>& op);

  ModemOptions options_;
  bus::Bus& bus_;
  BlobStore& blobs_;
  DedupStore& dedup_;
  LineDriver& line_;
  Clock& clock_;
  ModemMetrics metrics_;

  std::unique_ptr<bus::Consumer> consumer_;
  std::unique_ptr<bus::Producer> producer_;
  std::vector<std::unique_ptr<Channel>> channels_;
  std::thread consumer_thread_;
  std::vector<std::thread> channel_threads_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::condition_variable idle_cv_;
  std::deque<WorkItem> queue_;
  size_t capacity_ = 1;
  bool queue_closed_ = false;

  std::mutex track_mu_;
  std::map<bus::TopicPartition, PartitionTrack> tracks_;

  std::atomic<bool> started_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> abort_calls_{false};
  std::atomic<int64_t> jobs_finished_{0};
  std::atomic<int> busy_channels_{0};
};

}  // namespace faxflow::modem
