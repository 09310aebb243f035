#include "workers/modem/modem_worker.h"

#include <algorithm>
#include <set>
#include <utility>

#include "common/ids.h"
#include "common/log.h"
#include "pages/pages.h"
#include "schemas/control.pb.h"
#include "topics/catalogue.h"
#include "topics/proto_message.h"
#include "topics/dead_letter.h"
#include "workers/modem/sim_far_end.h"

namespace faxflow::modem {
namespace {

const std::shared_ptr<spdlog::logger>& Log() {
  static const auto logger = Logger("modem");
  return logger;
}

constexpr int kProduceAttempts = 5;
constexpr int64_t kBusyElsewhereRetryMs = 500;  // job in flight in another worker of this process
constexpr int64_t kLaterRetryMs = 5000;         // nothing dialled (blob store/disk trouble): retry

// Jobs in flight in this process, per dial ledger: two workers of one process sharing a ledger
// (tests, a process with several worker instances) never work on one job at the same time, so
// a live call is never mistaken for an interrupted one. Across processes each worker has its
// own ledger and Kafka partition ownership keeps a job on one worker.
class InFlight {
 public:
  static InFlight& Instance() {
    static InFlight instance;
    return instance;
  }
  bool Acquire(const void* ledger, const std::string& job_id) {
    std::lock_guard<std::mutex> lock(mu_);
    return jobs_.insert({ledger, job_id}).second;
  }
  void Release(const void* ledger, const std::string& job_id) {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.erase({ledger, job_id});
  }

 private:
  std::mutex mu_;
  std::set<std::pair<const void*, std::string>> jobs_;
};

class InFlightGuard {
 public:
  InFlightGuard(const void* ledger, std::string job_id) : ledger_(ledger), job_id_(std::move(job_id)) {
    held_ = InFlight::Instance().Acquire(ledger_, job_id_);
  }
  ~InFlightGuard() {
    if (held_) InFlight::Instance().Release(ledger_, job_id_);
  }
  InFlightGuard(const InFlightGuard&) = delete;
  InFlightGuard& operator=(const InFlightGuard&) = delete;
  bool held() const { return held_; }

 private:
  const void* ledger_;
  std::string job_id_;
  bool held_ = false;
};

int64_t MillisSince(Clock& clock, Clock::MonoTime start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock.Monotonic() - start).count();
}

}  // namespace

ModemOptions ModemOptions::FromConfig(const Config& config) {
  ModemOptions o;
  o.channels = static_cast<int>(std::max<int64_t>(1, config.modem_channels));
  o.call_timeout_seconds = config.modem_call_timeout_seconds;
  o.local_ident = config.modem_local_ident;
  o.site = config.site;
  o.line_name = config.modem_line;
  o.work_dir = config.data_dir + "/modem-work";
  o.sim_behaviours = config.sim_behaviours;
  o.sim.received_dir =
      config.sim_received_dir.empty() ? config.data_dir + "/received" : config.sim_received_dir;
  o.sim.realtime = config.sim_realtime;
  o.queue_capacity = static_cast<size_t>(std::max<int64_t>(0, config.modem_queue_capacity));
  o.max_calls_per_destination =
      static_cast<int>(std::max<int64_t>(1, config.modem_max_calls_per_destination));
  o.batch_max = static_cast<int>(std::max<int64_t>(1, config.modem_batch_max));
  o.job_ttl_seconds = std::max<int64_t>(0, config.modem_job_ttl_seconds);
  o.retry = RetryPolicy::FromConfig(config);
  o.state_dir = config.data_dir + "/modem-schedule";
  return o;
}

Result<std::unique_ptr<SimLineDriver>> MakeSimLine(const ModemOptions& options, Clock& clock) {
  FF_ASSIGN_OR_RETURN(SimDirectory directory, SimDirectory::Create(options.sim_behaviours));
  return SimLineDriver::Create(options.sim, std::move(directory), clock);
}

Result<std::unique_ptr<LineDriver>> MakeLineDriver(const ModemOptions& options, Clock& clock) {
  if (options.line_name == "sim") {
    FF_ASSIGN_OR_RETURN(auto sim, MakeSimLine(options, clock));
    return std::unique_ptr<LineDriver>(std::move(sim));
  }
  return Status::Permanent(Code::kInvalidArgument,
                           "modem.line '" + options.line_name + "' is not available (supported: sim)");
}

ModemWorker::ModemWorker(ModemOptions options, bus::Bus& bus, BlobStore& blobs, DedupStore& dedup,
                         LineDriver& line, prometheus::Registry& registry, Clock& clock)
    : options_(std::move(options)),
      bus_(bus),
      blobs_(blobs),
      dedup_(dedup),
      line_(line),
      clock_(clock),
      metrics_(registry),
      scheduler_(std::max(1, options_.max_calls_per_destination)) {}

ModemWorker::ModemWorker(ModemOptions options, bus::Bus& bus, BlobStore& blobs, DedupStore& dedup,
                         ScheduleStore& schedule, LineDriver& line, prometheus::Registry& registry,
                         Clock& clock)
    : ModemWorker(std::move(options), bus, blobs, dedup, line, registry, clock) {
  schedule_ = &schedule;
}

ModemWorker::~ModemWorker() { Stop(); }

size_t ModemWorker::Queued() {
  std::lock_guard<std::mutex> lock(queue_mu_);
  return scheduler_.Queued();
}

Status ModemWorker::Start() {
  if (started_.load()) return Status::Permanent(Code::kFailedPrecondition, "modem worker already started");
  if (options_.channels < 1) return Status::Permanent(Code::kInvalidArgument, "modem.channels must be >= 1");
  if (options_.work_dir.empty()) return Status::Permanent(Code::kInvalidArgument, "modem work_dir is empty");
  if (options_.call_timeout_seconds <= 0)
    return Status::Permanent(Code::kInvalidArgument, "modem.call_timeout_seconds must be > 0");
  if (options_.retry.max_dials < 1 || options_.retry.max_tries < 1)
    return Status::Permanent(Code::kInvalidArgument, "modem.retry.max_dials and max_tries must be >= 1");
  FF_RETURN_IF_ERROR(ValidateIdent(options_.local_ident).WithContext("modem.local_ident"));
  if (schedule_ == nullptr) {
    if (options_.state_dir.empty()) {
      owned_schedule_ = std::make_unique<MemoryScheduleStore>();
    } else {
      FF_ASSIGN_OR_RETURN(owned_schedule_, OpenRocksScheduleStore(options_.state_dir));
    }
    schedule_ = owned_schedule_.get();
  }

  std::vector<bus::TopicPartition> assignment;
  if (options_.partitions.empty()) {
    FF_ASSIGN_OR_RETURN(assignment, bus::AllPartitions(bus_, options_.jobs_topic));
  } else {
    for (int32_t p : options_.partitions) assignment.push_back({options_.jobs_topic, p});
  }
  bus::ConsumerOptions co;
  co.group = options_.group;
  co.client_id = "modem-" + options_.site;
  FF_ASSIGN_OR_RETURN(consumer_, bus_.NewConsumer(co));
  FF_RETURN_IF_ERROR(consumer_->Assign(assignment));
  FF_ASSIGN_OR_RETURN(producer_, bus_.NewProducer("modem-" + options_.site));

  if (!options_.control_topic.empty()) {
    auto parts = bus::AllPartitions(bus_, options_.control_topic);
    if (!parts.ok()) {
      FF_LOG_WARN(Log(), "no {} topic ({}): cancel commands are not applied", options_.control_topic,
                  parts.status().ToString());
    } else {
      // Never commits: every start replays the (small) control topic from its earliest offset.
      bus::ConsumerOptions cc;
      cc.group = options_.group + "-control";
      cc.client_id = "modem-control-" + options_.site;
      FF_ASSIGN_OR_RETURN(control_, bus_.NewConsumer(cc));
      FF_RETURN_IF_ERROR(control_->Assign(*parts));
      ReplayControl();
    }
  }

  capacity_ = options_.queue_capacity > 0 ? options_.queue_capacity
                                          : std::max<size_t>(64, 16 * static_cast<size_t>(options_.channels));
  for (int i = 0; i < options_.channels; ++i) {
    ChannelOptions co2;
    co2.name = options_.line_name + "-" + std::to_string(i);
    co2.work_dir = options_.work_dir;
    co2.local_ident = options_.local_ident;
    co2.call_timeout_seconds = options_.call_timeout_seconds;
    co2.wall_timeout_seconds = options_.wall_timeout_seconds;
    channels_.push_back(std::make_unique<Channel>(co2, line_, blobs_, clock_));
  }
  metrics_.channels_idle.Set(options_.channels);
  metrics_.channels_busy.Set(0);
  started_ = true;
  for (size_t i = 0; i < channels_.size(); ++i) channel_threads_.emplace_back([this, i] { ChannelLoop(i); });
  consumer_thread_ = std::thread([this] { ConsumeLoop(); });
  if (control_) control_thread_ = std::thread([this] { ControlLoop(); });
  FF_LOG_INFO(Log(),
              "modem worker started: {} channels on line {}, {} partitions of {}, scheduler capacity {}",
              options_.channels, line_.Name(), assignment.size(), options_.jobs_topic, capacity_);
  return Status::Ok();
}

void ModemWorker::Stop() {
  if (!started_.load() || stopping_.exchange(true)) return;
  if (consumer_thread_.joinable()) consumer_thread_.join();
  if (control_thread_.joinable()) control_thread_.join();
  {
    std::unique_lock<std::mutex> lock(queue_mu_);
    queue_closed_ = true;
    scheduler_.TakeAll();  // not started: left uncommitted, redelivered after a restart
    queue_cv_.notify_all();
    // Calls in progress may finish within the grace period, then they are torn down.
    const auto deadline = std::chrono::steady_clock::now() + options_.stop_grace;
    idle_cv_.wait_until(lock, deadline, [this] { return busy_channels_.load() == 0; });
  }
  abort_calls_ = true;
  for (auto& t : channel_threads_)
    if (t.joinable()) t.join();
  CommitWatermarks();
  metrics_.channels_busy.Set(0);
  FF_LOG_INFO(Log(), "modem worker stopped after {} jobs", jobs_finished_.load());
}

// ---- fax.control ------------------------------------------------------------------------------

void ModemWorker::ReplayControl() {
  std::map<int32_t, int64_t> ends;
  for (const auto& tp : control_->Assignment()) {
    auto end = control_->EndOffset(tp);
    if (end.ok() && *end > 0) ends[tp.partition] = *end;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  auto caught_up = [&] {
    for (const auto& [p, end] : ends) {
      auto it = control_next_.find(p);
      if (it == control_next_.end() || it->second < end) return false;
    }
    return true;
  };
  while (!caught_up() && std::chrono::steady_clock::now() < deadline) {
    auto records = control_->Poll(std::chrono::milliseconds(100), 1000);
    if (!records.ok()) continue;
    for (const auto& r : *records) ApplyControl(r);
  }
  if (!caught_up()) FF_LOG_WARN(Log(), "{} not fully replayed within 20 s", options_.control_topic);
}

void ModemWorker::ControlLoop() {
  auto beat = RegisterHeartbeat(options_.heartbeats, "modem_control");
  while (!stopping_.load()) {
    beat->Beat();
    auto records = control_->Poll(options_.poll_timeout, 1000);
    if (!records.ok()) {
      FF_LOG_WARN(Log(), "control poll failed: {}", records.status().ToString());
      if (records.status().fatal()) break;
      clock_.SleepUntil(clock_.Monotonic() + options_.poll_timeout);
      continue;
    }
    for (const auto& r : *records) ApplyControl(r);
  }
}

void ModemWorker::ApplyControl(const bus::Record& record) {
  control_next_[record.partition] = record.offset + 1;
  v1::ControlCommand cmd;
  if (!cmd.ParseFromString(record.value) || cmd.fax_id().empty()) {
    FF_LOG_WARN(Log(), "{}/{}@{}: undecodable ControlCommand ignored", record.topic, record.partition,
                record.offset);
    return;
  }
  if (cmd.kind() != v1::CONTROL_CANCEL) return;
  {
    std::lock_guard<std::mutex> lock(cancel_mu_);
    if (cmd.recipient_ids().empty()) {
      cancelled_faxes_.insert(cmd.tenant() + "/" + cmd.fax_id());
    } else {
      for (const auto& r : cmd.recipient_ids()) cancelled_jobs_.insert(cmd.tenant() + "/" + r);
    }
  }
  metrics_.cancel_commands.Increment();
  if (!started_.load()) return;  // replay at Start: nothing queued yet
  std::vector<SchedJob> taken;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    taken = scheduler_.TakeMatching([this](const v1::OutboundJob& j) { return IsCancelled(j); });
  }
  for (const auto& item : taken) {
    FF_LOG_INFO(Log(), "job {}: cancelled while queued ({})", item.job.job_id(), cmd.command_id());
    if (FinishUndialled(item.job, v1::STATE_CANCELLED, v1::REASON_UNSPECIFIED, "cancelled",
                        "cancelled before dialling (" + cmd.command_id() + ")")) {
      MarkDone(item.tp, item.offset);
      ++jobs_finished_;
    }
  }
  // A call in progress sees IsCancelled through should_abort and hangs up.
}

bool ModemWorker::IsCancelled(const v1::OutboundJob& job) {
  std::lock_guard<std::mutex> lock(cancel_mu_);
  if (cancelled_faxes_.empty() && cancelled_jobs_.empty()) return false;
  return cancelled_faxes_.count(job.tenant() + "/" + job.fax_id()) > 0 ||
         cancelled_jobs_.count(job.tenant() + "/" + job.job_id()) > 0;
}

// ---- fax.jobs ---------------------------------------------------------------------------------

int64_t ModemWorker::ExpiryOf(const v1::OutboundJob& job, int64_t now_ms) const {
  if (job.expires_at_ms() > 0) return job.expires_at_ms();
  if (options_.job_ttl_seconds <= 0) return 0;
  const int64_t from = job.submitted_at_ms() > 0 ? job.submitted_at_ms() : now_ms;
  return from + options_.job_ttl_seconds * 1000;
}

RetryPolicy ModemWorker::PolicyFor(const v1::OutboundJob& job) const {
  return job.has_retry() ? options_.retry.WithOverrides(job.retry()) : options_.retry;
}

void ModemWorker::ConsumeLoop() {
  auto beat = RegisterHeartbeat(options_.heartbeats, "modem_jobs");
  bool paused = false;
  while (!stopping_.load()) {
    beat->Beat();
    size_t space = 0;
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      const size_t held = scheduler_.Queued() + scheduler_.InProgress();
      space = capacity_ > held ? capacity_ - held : 0;
    }
    if (space == 0 && !paused) {
      Status st = consumer_->Pause(consumer_->Assignment());
      if (!st.ok()) FF_LOG_WARN(Log(), "pause failed: {}", st.ToString());
      paused = true;
    } else if (space > 0 && paused) {
      Status st = consumer_->Resume(consumer_->Assignment());
      if (!st.ok()) FF_LOG_WARN(Log(), "resume failed: {}", st.ToString());
      paused = false;
    }
    auto records = consumer_->Poll(options_.poll_timeout, std::max<size_t>(space, 1));
    if (!records.ok()) {
      FF_LOG_WARN(Log(), "poll failed: {}", records.status().ToString());
      if (records.status().fatal()) break;
      clock_.SleepUntil(clock_.Monotonic() + options_.poll_timeout);
      continue;
    }
    for (bus::Record& rec : *records) Admit(rec);
    SweepExpired();
    UpdateSchedulerGauges();
    CommitWatermarks();
  }
}

void ModemWorker::Admit(bus::Record& rec) {
  {
    std::lock_guard<std::mutex> lock(track_mu_);
    tracks_[rec.tp()].pending.emplace(rec.offset, false);
  }
  SchedJob item;
  item.tp = rec.tp();
  item.offset = rec.offset;
  if (!item.job.ParseFromString(rec.value) || item.job.job_id().empty()) {
    // Committed only once the dead letter is acknowledged; otherwise redelivered after a restart.
    if (SendToDeadLetter(rec, item.job.job_id().empty() ? "OutboundJob without job_id or undecodable"
                                                        : "undecodable OutboundJob")) {
      MarkDone(item.tp, item.offset);
    }
    return;
  }
  const v1::OutboundJob& job = item.job;
  bool duplicate = false;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    duplicate = scheduler_.Contains(job.job_id());
  }
  if (duplicate) {
    Suppress(job, "the same job is already queued or in progress here");
    MarkDone(item.tp, item.offset);
    ++jobs_finished_;
    return;
  }
  const int64_t now = clock_.NowMillis();
  if (IsCancelled(job)) {
    if (FinishUndialled(job, v1::STATE_CANCELLED, v1::REASON_UNSPECIFIED, "cancelled",
                        "cancelled before dialling")) {
      MarkDone(item.tp, item.offset);
      ++jobs_finished_;
    }
    return;
  }
  item.expires_at_ms = ExpiryOf(job, now);
  if (item.expires_at_ms > 0 && item.expires_at_ms <= now) {
    if (FinishUndialled(job, v1::STATE_EXPIRED, v1::REASON_UNSPECIFIED, "expired",
                        "expired before it could be dialled")) {
      MarkDone(item.tp, item.offset);
      ++jobs_finished_;
    }
    return;
  }
  item.destination = NumberDigits(job.number());
  item.not_before_ms = job.send_at_ms();
  // A retry delay recorded before a crash still holds after the redelivery.
  auto sched = schedule_->GetJob(job.job_id());
  if (sched.ok() && sched->has_value())
    item.not_before_ms = std::max(item.not_before_ms, (*sched)->next_attempt_at_ms);
  std::lock_guard<std::mutex> lock(queue_mu_);
  if (!scheduler_.Add(std::move(item))) return;  // cannot happen: only this thread adds
  queue_cv_.notify_all();
}

void ModemWorker::SweepExpired() {
  std::vector<SchedJob> expired;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    expired = scheduler_.TakeExpired(clock_.NowMillis());
  }
  for (const auto& item : expired) {
    FF_LOG_INFO(Log(), "job {}: expired while queued", item.job.job_id());
    if (FinishUndialled(item.job, v1::STATE_EXPIRED, v1::REASON_UNSPECIFIED, "expired",
                        "expired while waiting for a line or a retry")) {
      MarkDone(item.tp, item.offset);
      ++jobs_finished_;
    }
  }
}

void ModemWorker::UpdateSchedulerGauges() {
  SchedulerCounts c;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    c = scheduler_.Counts(clock_.NowMillis());
  }
  metrics_.sched_eligible.Set(static_cast<double>(c.eligible));
  metrics_.sched_delayed.Set(static_cast<double>(c.delayed));
  metrics_.sched_blocked.Set(static_cast<double>(c.blocked));
}

namespace {

// Jobs that can share one call: same tenant, resolution, TSI and page header (one T.30 session
// has one identity and one header line).
bool SameCall(const v1::OutboundJob& a, const v1::OutboundJob& b) {
  return a.tenant() == b.tenant() && a.resolution() == b.resolution() && a.tsi() == b.tsi() &&
         a.header_text() == b.header_text();
}

}  // namespace

namespace {
// The heartbeat of the channel loop running on this thread (beaten by should_abort during calls).
thread_local Heartbeat* t_channel_beat = nullptr;
}  // namespace

void ModemWorker::ChannelLoop(size_t index) {
  auto beat = RegisterHeartbeat(options_.heartbeats, "modem_channel");
  t_channel_beat = beat.get();
  struct ClearBeat {
    ~ClearBeat() { t_channel_beat = nullptr; }
  } clear_beat;
  Channel& channel = *channels_[index];
  std::string last_destination;
  int batch = 0;
  std::optional<SchedJob> next;  // taken under the lock that released the previous job
  while (true) {
    std::vector<SchedJob> jobs;  // the call's jobs: the first one holds the destination's slot
    {
      std::unique_lock<std::mutex> lock(queue_mu_);
      while (!next) {
        beat->Beat();
        if (queue_closed_ || stopping_.load()) return;
        const int64_t now = clock_.NowMillis();
        next = scheduler_.TakeNext(now, batch < options_.batch_max ? last_destination : std::string());
        if (next) break;
        // Wake for new jobs, freed destinations, or the next due time (polled: the clock may be
        // a ManualClock that moves without notifying).
        const int64_t change = scheduler_.NextChangeMs(now);
        auto wait = options_.poll_timeout;
        if (change != kNever)
          wait = std::min(wait, std::chrono::milliseconds(std::max<int64_t>(1, change - now)));
        queue_cv_.wait_for(lock, wait);
      }
      if (queue_closed_ || stopping_.load()) {
        scheduler_.Requeue(std::move(*next), 0);  // not started: left for the restart
        return;
      }
      jobs.push_back(std::move(*next));
      next.reset();
      // Several documents in one call: the number's other ready jobs ride along (up to
      // batch_max jobs in a row for this number, never ahead of a more urgent job elsewhere).
      const int used = jobs.front().destination == last_destination ? batch : 0;
      const int room = line_.SharedCalls() ? options_.batch_max - used - 1 : 0;
      if (room > 0) {
        auto companions =
            scheduler_.TakeCompanions(jobs.front(), clock_.NowMillis(), static_cast<size_t>(room), SameCall);
        for (auto& c : companions) jobs.push_back(std::move(c));
      }
      ++busy_channels_;
    }
    const int in_call = static_cast<int>(jobs.size());
    if (jobs.front().destination == last_destination) {
      batch += in_call;
    } else {
      last_destination = jobs.front().destination;
      batch = in_call;
    }
    metrics_.channels_busy.Increment();
    metrics_.channels_idle.Decrement();
    const auto started = clock_.Monotonic();
    std::vector<const SchedJob*> items;
    for (const auto& j : jobs) items.push_back(&j);
    const std::vector<Processed> results = ProcessCall(channel, items);
    metrics_.channel_busy_seconds.Increment(static_cast<double>(MillisSince(clock_, started)) / 1000.0);
    metrics_.channels_busy.Decrement();
    metrics_.channels_idle.Increment();
    std::vector<std::pair<bus::TopicPartition, int64_t>> finished;
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      for (size_t i = 0; i < jobs.size(); ++i) {
        if (results[i].disposition == Disposition::kDone) {
          finished.emplace_back(jobs[i].tp, jobs[i].offset);
          scheduler_.Done(jobs[i]);
        } else {
          scheduler_.Requeue(std::move(jobs[i]), results[i].not_before_ms);
        }
      }
      // Batching: the next job to the same number goes to this channel, back to back, unless a
      // more urgent job waits (Scheduler::TakeNext); taken before any other channel can.
      if (!queue_closed_ && !stopping_.load() && batch < options_.batch_max)
        next = scheduler_.TakeNext(clock_.NowMillis(), last_destination);
      if (next && next->destination != last_destination) {
        // Not a batch continuation: let the normal path (and other channels) take it.
        const int64_t not_before = next->not_before_ms;
        scheduler_.Requeue(std::move(*next), not_before);
        next.reset();
      }
      --busy_channels_;
      idle_cv_.notify_all();
      queue_cv_.notify_all();
    }
    for (const auto& [tp, offset] : finished) {
      MarkDone(tp, offset);
      ++jobs_finished_;
    }
  }
}

Status ModemWorker::RetryStore(const std::function<Status()>& op) {
  auto backoff = std::chrono::milliseconds(50);
  while (true) {
    Status st = op();
    if (st.ok() || !st.retryable() || stopping_.load()) return st;
    FF_LOG_WARN(Log(), "modem store: {} (retrying in {} ms)", st.ToString(), backoff.count());
    clock_.SleepUntil(clock_.Monotonic() + backoff);
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::milliseconds(5000));
  }
}

bool ModemWorker::SuppressTerminal(const v1::OutboundJob& job, const JobLedger& ledger) {
  Suppress(job, "already finished");
  // The process may have died between the ledger's terminal record and the result event:
  // re-emit the terminal result from the ledger. Consumers apply it idempotently (a terminal
  // state is final), so a duplicate is harmless and a missing one is repaired.
  v1::DeliveryEvent ev;
  auto* r = ev.mutable_result();
  r->set_attempt(ledger.attempts_finished);
  r->set_state(static_cast<v1::RecipientState>(ledger.terminal_state));
  r->set_reason(static_cast<v1::FailureReason>(ledger.terminal_reason));
  r->set_pages_sent(ledger.pages_confirmed);
  r->set_pages_total(ledger.pages_total);
  r->set_terminal(true);
  r->set_detail("terminal result re-emitted from the dial ledger after a redelivery");
  if (!Emit(job, std::move(ev))) return false;  // not produced: stays uncommitted, redelivered
  // A schedule record left means the report was not produced yet (crash after the result).
  auto sched = schedule_->GetJob(job.job_id());
  if (sched.ok() && sched->has_value())
    FinalizeReport(job, static_cast<v1::RecipientState>(ledger.terminal_state),
                   static_cast<v1::FailureReason>(ledger.terminal_reason), "", ledger.pages_confirmed);
  return true;
}

bool ModemWorker::FinishUndialled(const v1::OutboundJob& job, v1::RecipientState state,
                                  v1::FailureReason reason, const std::string& completion,
                                  const std::string& detail) {
  const std::string& id = job.job_id();
  Status st =
      RetryStore([&] { return dedup_.FinishAttempt(id, 0, true, state, reason, clock_.NowMillis()); });
  std::optional<JobLedger> ledger;
  Status got = RetryStore([&]() -> Status {
    auto r = dedup_.Get(id);
    if (!r.ok()) return r.status();
    ledger = *r;
    return Status::Ok();
  });
  if (st.code() == Code::kAlreadyExists && got.ok() && ledger && ledger->terminal) {
    // Already terminal with another outcome (delivered before the cancel arrived, ...).
    return SuppressTerminal(job, *ledger);
  }
  if (!st.ok()) {
    FF_LOG_ERROR(Log(), "job {}: cannot record {}: {}", id, completion, st.ToString());
    return false;
  }
  metrics_.CountOutcome(state, reason);
  AttemptOutcome o;
  o.attempt = ledger ? ledger->attempts_finished : 0;
  o.pages_total = job.pages_size();
  o.pages_confirmed_total = ledger ? ledger->pages_confirmed : 0;
  o.completion_name = completion;
  o.classification = Classification{state, reason, detail};
  if (!EmitResult(job, o, true)) return false;
  FinalizeReport(job, state, reason, detail, o.pages_confirmed_total);
  return true;
}

void ModemWorker::FinalizeReport(const v1::OutboundJob& job, v1::RecipientState state,
                                 v1::FailureReason reason, const std::string& detail, int32_t pages_sent) {
  auto sched = schedule_->GetJob(job.job_id());
  if (options_.reports) {
    ReportInput in;
    in.job = job;
    in.state = state;
    in.reason = reason;
    in.detail = detail;
    in.pages_sent = pages_sent;
    in.pages_total = job.pages_size();
    if (sched.ok() && sched->has_value()) {
      in.attempts = (*sched)->attempts;
      in.pages = (*sched)->pages;
    }
    in.local_ident = options_.local_ident;
    in.site = options_.site;
    in.generated_ms = clock_.NowMillis();
    if (job.pages_size() > 0) {
      auto blob = blobs_.Get(job.pages(0).blob_id());
      if (blob.ok()) {
        auto decoded = pages::DecodePages(*blob);
        if (decoded.ok() && !decoded->empty()) in.first_page = std::move(decoded->front());
      }
    }
    auto json_id = blobs_.Put(ReportJson(in));
    auto pdf_id = blobs_.Put(ReportPdf(in));
    if (json_id.ok() && pdf_id.ok()) {
      v1::DeliveryEvent ev;
      auto* r = ev.mutable_report();
      r->set_json_blob_id(*json_id);
      r->set_pdf_blob_id(*pdf_id);
      r->set_state(state);
      r->set_reason(reason);
      r->set_pages_sent(pages_sent);
      r->set_pages_total(job.pages_size());
      r->set_attempts(static_cast<int32_t>(in.attempts.size()));
      if (Emit(job, std::move(ev))) {
        metrics_.reports.Add({{"result", "ok"}}).Increment();
      } else {
        metrics_.reports.Add({{"result", "error"}}).Increment();
      }
    } else {
      metrics_.reports.Add({{"result", "error"}}).Increment();
      FF_LOG_WARN(Log(), "job {}: transmission report not stored: {}", job.job_id(),
                  (json_id.ok() ? pdf_id.status() : json_id.status()).ToString());
    }
  }
  if (sched.ok() && sched->has_value()) {
    Status st = schedule_->DeleteJob(job.job_id());
    if (!st.ok()) FF_LOG_WARN(Log(), "job {}: schedule record not deleted: {}", job.job_id(), st.ToString());
  }
}

// One job's part in a call (ProcessCall): what was read before dialling and what the call did.
struct ModemWorker::Participant {
  const SchedJob* item = nullptr;
  std::unique_ptr<InFlightGuard> in_flight;
  std::optional<JobLedger> ledger;
  JobSchedule sched;
  RetryPolicy policy;
  AttemptPlan plan;
  LinePlan line_plan;
  AttemptRecord record;
  bool begun = false;
  bool suppressed = false;
};

ModemWorker::Processed ModemWorker::ProcessJob(Channel& channel, const SchedJob& item) {
  return ProcessCall(channel, {&item}).front();
}

std::optional<ModemWorker::Processed> ModemWorker::PrepareJob(Participant& p) {
  const v1::OutboundJob& job = p.item->job;
  const std::string& id = job.job_id();
  p.in_flight = std::make_unique<InFlightGuard>(&dedup_, id);
  if (!p.in_flight->held()) return Processed{Disposition::kLater, clock_.NowMillis() + kBusyElsewhereRetryMs};

  std::optional<JobLedger>& ledger = p.ledger;
  Status st = RetryStore([&]() -> Status {
    auto r = dedup_.Get(id);
    if (!r.ok()) return r.status();
    ledger = *r;
    return Status::Ok();
  });
  if (!st.ok()) {
    FF_LOG_ERROR(Log(), "job {}: cannot read the dial ledger, trying again later: {}", id, st.ToString());
    return Processed{Disposition::kLater, clock_.NowMillis() + kLaterRetryMs};
  }
  if (ledger && ledger->terminal) {
    if (SuppressTerminal(job, *ledger)) return Processed{};
    return Processed{Disposition::kLater, clock_.NowMillis() + kLaterRetryMs};
  }
  if (IsCancelled(job)) {
    if (FinishUndialled(job, v1::STATE_CANCELLED, v1::REASON_UNSPECIFIED, "cancelled",
                        "cancelled before dialling"))
      return Processed{};
    return Processed{Disposition::kLater, clock_.NowMillis() + kLaterRetryMs};
  }
  JobSchedule& sched = p.sched;
  sched.job_id = id;
  {
    auto r = schedule_->GetJob(id);
    if (!r.ok()) {
      FF_LOG_ERROR(Log(), "job {}: cannot read its schedule, trying again later: {}", id,
                   r.status().ToString());
      return Processed{Disposition::kLater, clock_.NowMillis() + kLaterRetryMs};
    }
    if (r->has_value()) sched = **r;
  }
  const int64_t now = clock_.NowMillis();
  if (sched.next_attempt_at_ms > now) return Processed{Disposition::kRetry, sched.next_attempt_at_ms};
  p.policy = PolicyFor(job);
  const RetryPolicy& policy = p.policy;

  AttemptPlan& plan = p.plan;
  if (ledger && ledger->attempts_begun > 0) {
    if (ledger->attempts_begun > ledger->attempts_finished) {
      // A crash mid-call: close the interrupted attempt (not terminal) before resuming.
      st = RetryStore([&] {
        return dedup_.FinishAttempt(id, ledger->attempts_begun, false, v1::STATE_FAILED, v1::REASON_DROPPED,
                                    clock_.NowMillis());
      });
      if (!st.ok()) {
        FF_LOG_ERROR(Log(), "job {}: cannot close interrupted attempt {}: {}", id, ledger->attempts_begun,
                     st.ToString());
        return Processed{Disposition::kLater, clock_.NowMillis() + kLaterRetryMs};
      }
      metrics_.resumed.Increment();
    }
    plan.attempt = ledger->attempts_begun + 1;
    plan.first_page = ledger->pages_confirmed + 1;
    FF_LOG_INFO(Log(), "job {}: attempt {} resumes at page {}/{}", id, plan.attempt, plan.first_page,
                job.pages_size());
    if (job.pages_size() > 0 && plan.first_page > job.pages_size()) {
      // Every page was confirmed before the interruption: the fax is delivered.
      AttemptOutcome done;
      done.attempt = ledger->attempts_begun;
      done.pages_total = job.pages_size();
      done.pages_confirmed_total = ledger->pages_confirmed;
      done.completion_name = "resumed_complete";
      done.classification = Classification{v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED,
                                           "every page was confirmed before the call was interrupted"};
      st = RetryStore([&] {
        return dedup_.FinishAttempt(id, 0, true, v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED,
                                    clock_.NowMillis());
      });
      if (!st.ok() && st.code() != Code::kAlreadyExists)
        return Processed{Disposition::kLater, now + kLaterRetryMs};
      metrics_.CountOutcome(v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED);
      if (!EmitResult(job, done, true)) return Processed{Disposition::kLater, now + kLaterRetryMs};
      FinalizeReport(job, v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, done.classification.detail,
                     done.pages_confirmed_total);
      return Processed{};
    }
    // Pages a broken call had started but the far end never confirmed are sent again.
    if (sched.pages_reached >= plan.first_page) {
      const int64_t resent = sched.pages_reached - plan.first_page + 1;
      sched.pages_resent += resent;
      metrics_.pages_resent.Increment(static_cast<double>(resent));
    }
  }
  if (sched.dials >= policy.max_dials) {
    // Out of dials (the limit was lowered, or a crash between the decision and its record).
    const v1::RecipientState state =
        ledger && ledger->pages_confirmed > 0 ? v1::STATE_PARTIAL : v1::STATE_FAILED;
    const v1::FailureReason reason = sched.attempts.empty()
                                         ? v1::REASON_INTERNAL
                                         : static_cast<v1::FailureReason>(sched.attempts.back().reason);
    if (FinishUndialled(job, state, reason, "max_dials", "max dials reached")) return Processed{};
    return Processed{Disposition::kLater, now + kLaterRetryMs};
  }

  // Line plan: the job's own training failures, or what worked for this number before; normal
  // resolution when the job's far end refused fine, or the number is known to accept normal only.
  int remembered = 0;
  bool normal_only = false;
  if (auto profile = schedule_->GetDestination(p.item->destination); profile.ok() && profile->has_value()) {
    remembered = (*profile)->step;
    normal_only = (*profile)->normal_only;
  }
  p.line_plan = LinePlanForStep(FallbackStep(policy, sched.training_failures, remembered));
  plan.ecm = p.line_plan.ecm ? 1 : 0;
  plan.modems = p.line_plan.modems;
  plan.normal_resolution = sched.normal_resolution || normal_only;
  return std::nullopt;
}

std::vector<ModemWorker::Processed> ModemWorker::ProcessCall(Channel& channel,
                                                             const std::vector<const SchedJob*>& items) {
  std::vector<Participant> parts(items.size());
  std::vector<Processed> results(items.size());
  std::vector<size_t> live;  // jobs that go into the call, in call order
  for (size_t i = 0; i < items.size(); ++i) {
    parts[i].item = items[i];
    if (auto settled = PrepareJob(parts[i])) {
      results[i] = *settled;
    } else {
      live.push_back(i);
    }
  }
  if (live.empty()) return results;

  // One call, one line plan: the most careful fallback step of its jobs, and normal resolution
  // when any of them needs it.
  int step = 0;
  bool normal = false;
  for (size_t i : live) {
    step = std::max(step, parts[i].line_plan.step);
    normal = normal || parts[i].plan.normal_resolution;
  }
  const LinePlan line_plan = LinePlanForStep(step);
  AttemptPlan call_plan;
  call_plan.ecm = line_plan.ecm ? 1 : 0;
  call_plan.modems = line_plan.modems;
  call_plan.normal_resolution = normal;
  std::vector<CallDocument> documents;
  for (size_t i : live) {
    Participant& p = parts[i];
    p.line_plan = line_plan;
    p.plan.ecm = call_plan.ecm;
    p.plan.modems = call_plan.modems;
    p.plan.normal_resolution = normal;
    p.record.attempt = p.plan.attempt;
    p.record.first_page = p.plan.first_page;
    p.record.channel = channel.name();
    p.record.line_plan = line_plan.ToString() + (normal ? "+normal" : "");
    documents.push_back(CallDocument{&p.item->job, p.plan.attempt, p.plan.first_page});
  }
  if (live.size() > 1) {
    metrics_.multi_document_calls.Increment();
    FF_LOG_INFO(Log(), "{}: one call to {} carries {} jobs", channel.name(),
                parts[live.front()].item->job.number(), live.size());
  }

  CallHooks hooks;
  hooks.before_dial = [&]() -> Status {
    Status failed = Status::Ok();
    for (size_t i : live) {
      Participant& p = parts[i];
      const v1::OutboundJob& job = p.item->job;
      Status s = RetryStore([&] {
        return dedup_.BeginAttempt(job.job_id(), p.plan.attempt, job.pages_size(), clock_.NowMillis());
      });
      if (s.code() == Code::kAlreadyExists) p.suppressed = true;
      if (!s.ok()) {
        failed = s;
        break;
      }
      p.begun = true;
    }
    if (!failed.ok()) {
      // Nothing is dialled: close the attempts already begun for the call's other jobs (they
      // dial again later with the next attempt number).
      for (size_t i : live) {
        Participant& p = parts[i];
        if (!p.begun) continue;
        const std::string& id = p.item->job.job_id();
        Status s = RetryStore([&] {
          return dedup_.FinishAttempt(id, p.plan.attempt, false, v1::STATE_FAILED, v1::REASON_INTERNAL,
                                      clock_.NowMillis());
        });
        if (!s.ok()) FF_LOG_ERROR(Log(), "job {}: cannot close undialled attempt: {}", id, s.ToString());
        p.begun = false;
      }
      return failed;
    }
    for (size_t i : live) {
      Participant& p = parts[i];
      p.record.started_ms = clock_.NowMillis();
      metrics_.attempts.Increment();
      metrics_.line_plans.Add({{"plan", line_plan.ToString()}}).Increment();
      v1::DeliveryEvent ev;
      auto* started = ev.mutable_attempt_started();
      started->set_attempt(p.plan.attempt);
      started->set_first_page(p.plan.first_page);
      started->set_channel(channel.name());
      Emit(p.item->job, std::move(ev));
    }
    return Status::Ok();
  };
  hooks.on_connected = [&](const std::string& csid, int bit_rate, bool ecm) {
    {
      // The call starts sending the first job's pages.
      Participant& first = parts[live.front()];
      first.sched.pages_reached = std::max(first.sched.pages_reached, first.plan.first_page);
      Status s = schedule_->PutJob(first.sched);
      if (!s.ok())
        FF_LOG_WARN(Log(), "job {}: schedule not updated: {}", first.item->job.job_id(), s.ToString());
    }
    for (size_t i : live) {
      Participant& p = parts[i];
      v1::DeliveryEvent ev;
      auto* c = ev.mutable_connected();
      c->set_attempt(p.plan.attempt);
      c->set_remote_csid(csid);
      c->set_bit_rate(bit_rate);
      c->set_ecm(ecm);
      Emit(p.item->job, std::move(ev));
    }
  };
  hooks.on_page_confirmed = [&](size_t doc, int32_t page) {
    Participant& p = parts[live.at(doc)];
    const v1::OutboundJob& job = p.item->job;
    const std::string& id = job.job_id();
    Status s = RetryStore([&] { return dedup_.ConfirmPage(id, p.plan.attempt, page, clock_.NowMillis()); });
    if (!s.ok())
      FF_LOG_ERROR(Log(), "job {}: cannot record page {} as confirmed: {}", id, page, s.ToString());
    p.sched.pages.push_back(PageRecord{page, p.plan.attempt, clock_.NowMillis()});
    p.sched.pages_reached = std::max(p.sched.pages_reached, std::min(page + 1, job.pages_size()));
    s = schedule_->PutJob(p.sched);
    if (!s.ok()) FF_LOG_WARN(Log(), "job {}: schedule not updated: {}", id, s.ToString());
    metrics_.pages_sent.Increment();
    v1::DeliveryEvent ev;
    ev.mutable_page_confirmed()->set_attempt(p.plan.attempt);
    ev.mutable_page_confirmed()->set_page(page);
    Emit(job, std::move(ev));
    if (page == job.pages_size() && doc + 1 < live.size()) {
      // The call moves on to the next job's pages.
      Participant& next = parts[live[doc + 1]];
      next.sched.pages_reached = std::max(next.sched.pages_reached, next.plan.first_page);
      s = schedule_->PutJob(next.sched);
      if (!s.ok())
        FF_LOG_WARN(Log(), "job {}: schedule not updated: {}", next.item->job.job_id(), s.ToString());
    }
  };
  // A call hangs up at shutdown, or when every job it carries is cancelled.
  hooks.should_abort = [&] {
    if (t_channel_beat != nullptr) t_channel_beat->Beat();  // once a second of line time
    if (abort_calls_.load()) return true;
    for (size_t i : live)
      if (!IsCancelled(parts[i].item->job)) return false;
    return true;
  };

  auto outcomes = channel.RunCall(documents, call_plan, hooks);
  const int64_t done_ms = clock_.NowMillis();
  if (outcomes.ok()) {
    for (const auto& o : *outcomes) {
      if (!o.t38) continue;
      metrics_.CountT38Call(*o.t38);  // once per call
      break;
    }
  }
  for (size_t k = 0; k < live.size(); ++k) {
    Result<AttemptOutcome> o =
        outcomes.ok() ? Result<AttemptOutcome>((*outcomes)[k]) : Result<AttemptOutcome>(outcomes.status());
    results[live[k]] = FinishJob(parts[live[k]], std::move(o), done_ms, live.size() > 1);
  }
  return results;
}

ModemWorker::Processed ModemWorker::FinishJob(Participant& p, Result<AttemptOutcome> outcome, int64_t done_ms,
                                              bool shared_call) {
  const v1::OutboundJob& job = p.item->job;
  const std::string& id = job.job_id();
  const AttemptPlan& plan = p.plan;
  JobSchedule& sched = p.sched;
  AttemptRecord& record = p.record;
  Status st;
  if (!outcome.ok()) {
    if (p.suppressed) {
      Suppress(job, "attempt " + std::to_string(plan.attempt) + " already begun elsewhere");
      return {};
    }
    if (!p.begun) {
      // Nothing dialled (blob store or disk trouble): try again later.
      FF_LOG_ERROR(Log(), "job {}: attempt {} not started: {}", id, plan.attempt,
                   outcome.status().ToString());
      return {Disposition::kLater, clock_.NowMillis() + kLaterRetryMs};
    }
    // Begun but the call machinery failed: an internal failure of this attempt.
    AttemptOutcome failed;
    failed.attempt = plan.attempt;
    failed.first_page = plan.first_page;
    failed.pages_total = job.pages_size();
    failed.pages_confirmed_total = plan.first_page - 1;
    failed.completion_name = "internal_error";
    failed.classification = Classification{v1::STATE_FAILED, v1::REASON_INTERNAL, outcome.status().message()};
    outcome = failed;
  }
  AttemptOutcome o = *outcome;
  record.duration_ms = o.setup == CallSetup::kAnswered ? o.line_ms : o.setup_ms;
  record.pages_confirmed = o.pages_confirmed_call;
  record.completion = o.completion_name;
  record.remote_csid = o.remote_csid;
  record.bit_rate = o.bit_rate;
  record.ecm = o.ecm;
  if (o.setup == CallSetup::kAnswered) {
    metrics_.call_seconds.Observe(static_cast<double>(o.line_ms) / 1000.0);
    if (o.bit_rate > 0) metrics_.bit_rate.Observe(o.bit_rate);
  }
  // Cancelled during the call: hung up (or, in a call shared with other jobs, its pages went on
  // until the others were done); ends CANCELLED with the pages confirmed so far.
  if (IsCancelled(job) && (o.aborted || (shared_call && o.classification.state != v1::STATE_DELIVERED))) {
    o.completion_name = "cancelled";
    o.classification = Classification{
        v1::STATE_CANCELLED, v1::REASON_UNSPECIFIED,
        "cancelled during the call after " + std::to_string(o.pages_confirmed_total) + " confirmed pages"};
    o.aborted = false;
    record.state = v1::STATE_CANCELLED;
    record.completion = "cancelled";
    sched.attempts.push_back(record);
    (void)schedule_->PutJob(sched);
    st = RetryStore([&] {
      return dedup_.FinishAttempt(id, plan.attempt, true, v1::STATE_CANCELLED, v1::REASON_UNSPECIFIED,
                                  clock_.NowMillis());
    });
    if (!st.ok() && st.retryable()) return {Disposition::kLater, clock_.NowMillis() + kLaterRetryMs};
    metrics_.CountOutcome(v1::STATE_CANCELLED, v1::REASON_UNSPECIFIED);
    if (!EmitResult(job, o, true)) return {Disposition::kLater, clock_.NowMillis() + kLaterRetryMs};
    FinalizeReport(job, v1::STATE_CANCELLED, v1::REASON_UNSPECIFIED, o.classification.detail,
                   o.pages_confirmed_total);
    return {};
  }
  if (o.aborted) {
    // Shutdown tore the call down: not an outcome of the job; resume after the restart.
    st = RetryStore([&] {
      return dedup_.FinishAttempt(id, plan.attempt, false, v1::STATE_FAILED, v1::REASON_DROPPED,
                                  clock_.NowMillis());
    });
    if (!st.ok()) FF_LOG_ERROR(Log(), "job {}: cannot close aborted attempt: {}", id, st.ToString());
    EmitResult(job, o, false);
    return {Disposition::kLater, clock_.NowMillis() + kLaterRetryMs};
  }
  if (o.watchdog) metrics_.watchdog.Increment();

  // The outcome counts against the budget; then the retry policy decides.
  const bool answered = o.setup == CallSetup::kAnswered;
  ++sched.dials;
  if (answered) ++sched.tries;
  if (o.classification.reason == v1::REASON_TRAINING_FAILED) ++sched.training_failures;
  // The far end refused fine resolution before any page: the next attempt sends 204x98.
  const bool refused_fine = answered && o.completion_code == T30_ERR_NORESSUPPORT &&
                            !plan.normal_resolution && o.pages_confirmed_call == 0;
  if (refused_fine) sched.normal_resolution = true;
  record.state = o.classification.state;
  record.reason = o.classification.reason;
  sched.attempts.push_back(record);
  RetryDecision decision;
  if (o.classification.state != v1::STATE_DELIVERED)
    decision = DecideRetry(p.policy, o.classification, answered,
                           {sched.dials, sched.tries, sched.training_failures});
  if (refused_fine && !decision.retry) {
    if (sched.dials < p.policy.max_dials && sched.tries < p.policy.max_tries) {
      decision.retry = true;
      decision.delay_ms = 0;
      decision.why = "the far end accepts normal resolution only: retry now at 204x98";
      metrics_.normal_resolution_retries.Increment();
    } else {
      decision.why = "the far end accepts normal resolution only, but no call is left";
    }
  }
  const int64_t expires = p.item->expires_at_ms;
  if (decision.retry && expires > 0 && done_ms + decision.delay_ms >= expires) {
    decision.retry = false;
    decision.why = "the job expires before the next attempt";
  }

  // What worked for this number: the line plan of a call that got pages through; a number that
  // refused fine resolution gets normal resolution from the first attempt next time.
  if (o.pages_confirmed_call > 0 || o.classification.state == v1::STATE_DELIVERED || refused_fine) {
    DestinationProfile profile;
    profile.destination = p.item->destination;
    if (auto old = schedule_->GetDestination(p.item->destination); old.ok() && old->has_value())
      profile = **old;
    if (refused_fine) {
      profile.normal_only = true;
    } else {
      profile.step = p.line_plan.step;
      profile.bit_rate = o.bit_rate;
      profile.ecm = o.ecm;
      profile.normal_only = profile.normal_only || plan.normal_resolution;
      ++profile.successes;
    }
    profile.updated_ms = done_ms;
    if (Status s = schedule_->PutDestination(profile); !s.ok())
      FF_LOG_WARN(Log(), "destination memory not updated: {}", s.ToString());
  }

  if (decision.retry) {
    const int64_t retry_at = done_ms + decision.delay_ms;
    sched.next_attempt_at_ms = retry_at;
    // The delay is durable before the attempt is closed: no worker dials this job early.
    st = RetryStore([&] { return schedule_->PutJob(sched); });
    if (!st.ok()) FF_LOG_ERROR(Log(), "job {}: retry delay not recorded: {}", id, st.ToString());
    st = RetryStore([&] {
      return dedup_.FinishAttempt(id, plan.attempt, false, o.classification.state, o.classification.reason,
                                  done_ms);
    });
    if (!st.ok())
      FF_LOG_ERROR(Log(), "job {}: cannot record attempt {}: {}", id, plan.attempt, st.ToString());
    metrics_.CountOutcome(o.classification.state, o.classification.reason);
    metrics_.CountRetry(o.classification.reason);
    o.classification.detail += "; " + decision.why;
    EmitResult(job, o, false);
    v1::DeliveryEvent ev;
    auto* r = ev.mutable_retry_scheduled();
    r->set_attempt(plan.attempt);
    r->set_next_attempt(plan.attempt + 1);
    r->set_retry_at_ms(retry_at);
    r->set_reason(o.classification.reason);
    r->set_first_page(o.pages_confirmed_total + 1);
    r->set_dials(sched.dials);
    r->set_tries(sched.tries);
    Emit(job, std::move(ev));
    FF_LOG_INFO(Log(), "job {} attempt {} on {}: {} {} ({}/{} pages); {}", id, plan.attempt, record.channel,
                v1::RecipientState_Name(o.classification.state),
                v1::FailureReason_Name(o.classification.reason), o.pages_confirmed_total, o.pages_total,
                decision.why);
    return {Disposition::kRetry, retry_at};
  }

  (void)schedule_->PutJob(sched);  // the attempt history, for the report
  st = RetryStore([&] {
    return dedup_.FinishAttempt(id, plan.attempt, true, o.classification.state, o.classification.reason,
                                done_ms);
  });
  if (!st.ok()) {
    FF_LOG_ERROR(Log(), "job {}: cannot record the outcome of attempt {}: {}", id, plan.attempt,
                 st.ToString());
    if (st.retryable()) return {Disposition::kLater, clock_.NowMillis() + kLaterRetryMs};
  }
  metrics_.CountOutcome(o.classification.state, o.classification.reason);
  if (!decision.why.empty() && o.classification.state != v1::STATE_DELIVERED)
    o.classification.detail += "; " + decision.why;
  // The ledger already holds the outcome: if the event cannot be produced, the job is retried
  // later, suppressed by the ledger, and the terminal event re-emitted from it.
  const bool emitted = EmitResult(job, o, true);
  FF_LOG_INFO(Log(), "job {} attempt {} on {}: {} {} ({} {}/{} pages, {} ms line)", id, plan.attempt,
              record.channel, v1::RecipientState_Name(o.classification.state),
              v1::FailureReason_Name(o.classification.reason), o.completion_name, o.pages_confirmed_total,
              o.pages_total, o.line_ms);
  if (!emitted) return {Disposition::kLater, clock_.NowMillis() + kLaterRetryMs};
  FinalizeReport(job, o.classification.state, o.classification.reason, o.classification.detail,
                 o.pages_confirmed_total);
  return {};
}

void ModemWorker::Suppress(const v1::OutboundJob& job, const std::string& why) {
  metrics_.dedup_suppressed.Increment();
  auto count = dedup_.CountSuppressed(job.job_id());
  if (!count.ok()) {
    // No ledger yet (a copy of a job still queued here): counted in the metric only.
    FF_LOG_DEBUG(Log(), "job {}: duplicate suppressed ({})", job.job_id(), why);
    return;
  }
  // Logged at info for the first few per job, then every 100th (a storm must not flood logs).
  if (*count <= 3 || *count % 100 == 0)
    FF_LOG_INFO(Log(), "job {}: redelivery suppressed ({}); {} suppressed so far", job.job_id(), why, *count);
}

bool ModemWorker::Emit(const v1::OutboundJob& job, v1::DeliveryEvent event) {
  const int64_t now = clock_.NowMillis();
  event.set_event_id(NewId("evt", now));
  event.set_fax_id(job.fax_id());
  event.set_recipient_id(job.job_id());
  event.set_tenant(job.tenant());
  event.set_at_ms(now);
  event.set_site(options_.site);
  bus::Message msg = bus::ProtoMessage(options_.events_topic, job.fax_id(), event);
  return ProduceWithRetry(msg, "job " + job.job_id() + " event");
}

bool ModemWorker::ProduceWithRetry(const bus::Message& msg, const std::string& what) {
  auto backoff = std::chrono::milliseconds(50);
  for (int i = 0; i < kProduceAttempts; ++i) {
    auto r = producer_->Produce(msg);
    if (r.ok()) return true;
    FF_LOG_WARN(Log(), "{}: not produced to {}: {}", what, msg.topic, r.status().ToString());
    if (!r.status().retryable()) break;
    clock_.SleepUntil(clock_.Monotonic() + backoff);
    backoff *= 2;
  }
  FF_LOG_ERROR(Log(), "{}: not produced to {} after retries; its record stays uncommitted and is redelivered",
               what, msg.topic);
  return false;
}

bool ModemWorker::EmitResult(const v1::OutboundJob& job, const AttemptOutcome& o, bool terminal) {
  v1::DeliveryEvent ev;
  auto* r = ev.mutable_result();
  r->set_attempt(o.attempt);
  r->set_state(o.classification.state);
  r->set_reason(o.classification.reason);
  r->set_pages_sent(o.pages_confirmed_total);
  r->set_pages_total(o.pages_total);
  r->set_completion_code(o.completion_code);
  r->set_completion_name(o.completion_name);
  r->set_remote_csid(o.remote_csid);
  r->set_bit_rate(o.bit_rate);
  r->set_ecm(o.ecm);
  r->set_duration_ms(o.line_ms);
  r->set_terminal(terminal);
  r->set_detail(o.aborted ? "call interrupted by shutdown; resumes after restart" : o.classification.detail);
  return Emit(job, std::move(ev));
}

bool ModemWorker::SendToDeadLetter(const bus::Record& record, const std::string& reason) {
  FF_LOG_ERROR(Log(), "{}/{}@{}: {}; sent to {}", record.topic, record.partition, record.offset, reason,
               options_.dead_letter_topic);
  return ProduceWithRetry(bus::DeadLetterMessage(record, reason, options_.dead_letter_topic), "dead letter");
}

void ModemWorker::MarkDone(const bus::TopicPartition& tp, int64_t offset) {
  std::lock_guard<std::mutex> lock(track_mu_);
  auto it = tracks_.find(tp);
  if (it == tracks_.end()) return;
  auto p = it->second.pending.find(offset);
  if (p != it->second.pending.end()) p->second = true;
}

void ModemWorker::CommitWatermarks() {
  std::vector<bus::TopicPartitionOffset> commits;
  {
    std::lock_guard<std::mutex> lock(track_mu_);
    for (auto& [tp, track] : tracks_) {
      auto& pending = track.pending;
      while (!pending.empty() && pending.begin()->second) {
        track.watermark = pending.begin()->first + 1;
        pending.erase(pending.begin());
      }
      if (track.watermark > track.committed) commits.push_back({tp, track.watermark});
    }
  }
  if (commits.empty()) return;
  Status st = consumer_->Commit(commits);
  if (!st.ok()) {
    FF_LOG_WARN(Log(), "offset commit failed (retried on the next poll): {}", st.ToString());
    return;
  }
  std::lock_guard<std::mutex> lock(track_mu_);
  for (const auto& c : commits) {
    auto& track = tracks_[c.tp];
    track.committed = std::max(track.committed, c.offset);
  }
}

}  // namespace faxflow::modem
