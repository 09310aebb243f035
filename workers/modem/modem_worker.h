// The modem worker: consumes outbound jobs (fax.jobs) into a priority scheduler, dials them on N
// channels through a line driver, retries failed attempts per cause, and publishes attempt
// events and transmission reports (fax.events), at-least-once with a durable dial ledger so
// that a crash never loses a fax and never sends one twice. docs/modem.md is the manual.
//
// For app/ (`faxflow modem`, `faxflow all`) and the modem tests.
//
// Scheduling (scheduler.h): consumed jobs wait in a bounded in-memory scheduler (when it holds
// queue_capacity jobs the fax.jobs partitions are paused, and resumed when room frees up).
// A free channel takes the highest-priority eligible job (send_at / retry delay reached, inside
// its time-of-day window, its number below max_calls_per_destination), preferring the number it
// just called while no higher-priority job waits (back-to-back, at most batch_max in a row).
// Several documents in one call: the number's other ready, compatible jobs (same tenant,
// resolution, TSI, header) ride in the same call (Scheduler::TakeCompanions: never one that a
// strictly higher-priority job elsewhere outranks), up to batch_max jobs; each job keeps its own
// ledger attempt, events, retry and terminal state (ProcessCall; docs/modem.md).
// Normal resolution: a far end that refuses fine (T30_ERR_NORESSUPPORT) gets an immediate retry
// at 204x98 (pages::ToNormalResolution), remembered for the number.
// Expired jobs (expires_at_ms, or submitted_at + job_ttl_seconds) end EXPIRED without dialling.
// Cancel commands (fax.control, every partition, replayed from the start at Start()) end queued
// jobs CANCELLED without dialling and hang up a call in progress (within 1 s of line time).
//
// Per job, at dial time (ledger = storage/dedup_store.h, schedule = schedule_store.h):
//   - ledger terminal                      -> suppressed: not dialled, counted
//     (faxflow_modem_dedup_suppressed_total), the terminal result re-emitted;
//   - same job_id already queued/in progress in this worker -> the copy is suppressed at once;
//     in progress in another worker of this process sharing the ledger -> waits for it;
//   - attempt N begun but not finished     -> crash mid-call: attempt N is closed as
//     interrupted, attempt N+1 resumes at page pages_confirmed+1 (faxflow_modem_resumed_total);
//   - schedule.next_attempt_at_ms ahead    -> a retry delay (also after a crash): waits;
//   - otherwise attempt N+1 from the first unconfirmed page, on the line plan (rate/ECM
//     fallback) from the job's training failures and the destination's memory.
// BeginAttempt is written (synced) before dialling; kAlreadyExists there means another worker
// got it first: not dialled (suppressed). Each confirmed page: DedupStore::ConfirmPage, then a
// PageConfirmed event. After the call, RetryPolicy (retry_policy.h) decides: a retry writes
// next_attempt_at_ms (synced) before FinishAttempt(non-terminal) and the job goes back into the
// scheduler (its offset stays uncommitted; later jobs of the partition proceed); a terminal
// outcome is FinishAttempt(terminal) then the AttemptResult event, then the transmission report
// (report.h: JSON + PDF in the blob store, DeliveryEvent.report).
//
// Offsets: per partition, the committed offset never passes the lowest offset whose job is not
// finished (contiguous watermark), so a crash redelivers every unfinished job and skips none.
//
// Lifecycle: construct, Start() (replays fax.control, assigns partitions, starts the jobs
// consumer, the control consumer and N channel threads), Stop() (stops taking jobs; queued jobs
// are left uncommitted; calls in progress may finish within `stop_grace`, then are torn down
// and recorded as interrupted so that they resume after a restart; commits the watermark). The
// destructor calls Stop(). Threading: Start/Stop from one owner thread; everything else runs on
// the worker's threads; the scheduler and offset tracking are guarded by mutexes.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/config.h"
#include "common/heartbeat.h"
#include "common/status.h"
#include "schemas/event.pb.h"
#include "schemas/job.pb.h"
#include "storage/blob_store.h"
#include "storage/dedup_store.h"
#include "topics/bus.h"
#include "workers/modem/channel.h"
#include "workers/modem/line_driver.h"
#include "workers/modem/metrics.h"
#include "workers/modem/report.h"
#include "workers/modem/retry_policy.h"
#include "workers/modem/schedule_store.h"
#include "workers/modem/scheduler.h"
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
  std::vector<int32_t> partitions;            // empty: every partition of jobs_topic
  size_t queue_capacity = 0;                  // scheduler capacity; 0: max(64, 16 x channels)
  std::string control_topic = "fax.control";  // cancel commands; empty: none
  int max_calls_per_destination = 1;
  int batch_max = 8;  // jobs to one number in one call (several documents), and in a row on a channel
  int64_t job_ttl_seconds = 0;  // default expiry from submission when a job has none; 0: never
  RetryPolicy retry;            // HylaFAX defaults; per-job overrides on OutboundJob.retry
  bool reports = true;          // transmission reports (JSON + PDF) for terminal recipients
  std::string state_dir;        // schedule store (RocksDB); empty: in memory (tests)
  std::chrono::milliseconds poll_timeout{100};
  std::chrono::milliseconds stop_grace{10'000};  // wall time calls may take to finish at Stop()
  // sim line settings (used when the line is `sim`)
  std::string sim_behaviours;
  SimLineOptions sim;
  // Liveness of the worker's loops (components "modem_jobs", "modem_control" and "modem_channel",
  // one loop per channel, beating once a second during a call); null: none. Outlives the worker.
  Heartbeats* heartbeats = nullptr;

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
  // With a schedule store owned by the caller (several workers of one process share it).
  ModemWorker(ModemOptions options, bus::Bus& bus, BlobStore& blobs, DedupStore& dedup,
              ScheduleStore& schedule, LineDriver& line, prometheus::Registry& registry, Clock& clock);
  ~ModemWorker();
  ModemWorker(const ModemWorker&) = delete;
  ModemWorker& operator=(const ModemWorker&) = delete;

  Status Start();
  void Stop();

  // For tests and health checks.
  int64_t JobsFinished() const { return jobs_finished_.load(); }
  int BusyChannels() const { return busy_channels_.load(); }
  size_t Queued();  // jobs held by the scheduler (not in progress)

 private:
  // Per partition: offsets seen and whether their job is finished.
  struct PartitionTrack {
    std::map<int64_t, bool> pending;  // offset -> finished
    int64_t watermark = -1;           // next offset to read: every job below it is finished
    int64_t committed = -1;           // last committed watermark
  };
  enum class Disposition { kDone, kRetry, kLater };
  struct Processed {
    Disposition disposition = Disposition::kDone;
    int64_t not_before_ms = 0;
  };

  void ConsumeLoop();
  void ControlLoop();
  // Reads fax.control up to its end (bounded wait) so that no cancelled job dials after a restart.
  void ReplayControl();
  void ApplyControl(const bus::Record& record);
  void ChannelLoop(size_t index);
  void Admit(bus::Record& record);
  void SweepExpired();
  void UpdateSchedulerGauges();
  struct Participant;  // one job's part in a call (modem_worker.cc)
  Processed ProcessJob(Channel& channel, const SchedJob& item);
  // One call carrying the jobs `items` (same number, compatible): each job is checked against
  // the ledger first (suppressed, cancelled, resumed, ...); the others share one call and each
  // ends with its own outcome. Results in the order of `items`.
  std::vector<Processed> ProcessCall(Channel& channel, const std::vector<const SchedJob*>& items);
  // Before dialling: settles the job without a call (returns its disposition) or fills its
  // attempt plan (returns nullopt).
  std::optional<Processed> PrepareJob(Participant& p);
  // After the call: ledger, events, retry decision, destination memory, report.
  Processed FinishJob(Participant& p, Result<AttemptOutcome> outcome, int64_t done_ms, bool shared_call);
  // Ends a job that was not (or no longer) dialled: cancelled, expired, out of retries.
  // Returns true when the job is finished (terminal recorded or already terminal).
  bool FinishUndialled(const v1::OutboundJob& job, v1::RecipientState state, v1::FailureReason reason,
                       const std::string& completion, const std::string& detail);
  bool IsCancelled(const v1::OutboundJob& job);
  int64_t ExpiryOf(const v1::OutboundJob& job, int64_t now_ms) const;
  RetryPolicy PolicyFor(const v1::OutboundJob& job) const;
  // Terminal job: emits the report (if enabled) and forgets the schedule record.
  void FinalizeReport(const v1::OutboundJob& job, v1::RecipientState state, v1::FailureReason reason,
                      const std::string& detail, int32_t pages_sent);
  void MarkDone(const bus::TopicPartition& tp, int64_t offset);
  void CommitWatermarks();
  void Suppress(const v1::OutboundJob& job, const std::string& why);
  bool SuppressTerminal(const v1::OutboundJob& job, const JobLedger& ledger);
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
  std::unique_ptr<ScheduleStore> owned_schedule_;
  ScheduleStore* schedule_ = nullptr;
  LineDriver& line_;
  Clock& clock_;
  ModemMetrics metrics_;

  std::unique_ptr<bus::Consumer> consumer_;
  std::unique_ptr<bus::Consumer> control_;
  std::unique_ptr<bus::Producer> producer_;
  std::vector<std::unique_ptr<Channel>> channels_;
  std::thread consumer_thread_;
  std::thread control_thread_;
  std::vector<std::thread> channel_threads_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::condition_variable idle_cv_;
  Scheduler scheduler_;
  size_t capacity_ = 1;
  bool queue_closed_ = false;

  std::mutex track_mu_;
  std::map<bus::TopicPartition, PartitionTrack> tracks_;

  std::mutex cancel_mu_;
  std::set<std::string> cancelled_faxes_;    // "tenant/fax_id"
  std::set<std::string> cancelled_jobs_;     // "tenant/job_id"
  std::map<int32_t, int64_t> control_next_;  // partition -> next offset read

  std::atomic<bool> started_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> abort_calls_{false};
  std::atomic<int64_t> jobs_finished_{0};
  std::atomic<int> busy_channels_{0};
};

}  // namespace faxflow::modem
