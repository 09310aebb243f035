#include "workers/modem/modem_worker.h"

#include <algorithm>

#include "common/ids.h"
#include "common/log.h"
#include "topics/catalogue.h"
#include "topics/dead_letter.h"

namespace faxflow::modem {
namespace {

const std::shared_ptr<spdlog::logger>& Log() {
  static const auto logger = Logger("modem");
  return logger;
}

constexpr int kProduceAttempts = 5;

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
      metrics_(registry) {}

ModemWorker::~ModemWorker() { Stop(); }

Status ModemWorker::Start() {
  if (started_.load()) return Status::Permanent(Code::kFailedPrecondition, "modem worker already started");
  if (options_.channels < 1) return Status::Permanent(Code::kInvalidArgument, "modem.channels must be >= 1");
  if (options_.work_dir.empty()) return Status::Permanent(Code::kInvalidArgument, "modem work_dir is empty");
  if (options_.call_timeout_seconds <= 0)
    return Status::Permanent(Code::kInvalidArgument, "modem.call_timeout_seconds must be > 0");
  FF_RETURN_IF_ERROR(ValidateIdent(options_.local_ident).WithContext("modem.local_ident"));

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

  capacity_ = options_.queue_capacity > 0 ? options_.queue_capacity : static_cast<size_t>(options_.channels);
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
  FF_LOG_INFO(Log(), "modem worker started: {} channels on line {}, {} partitions of {}", options_.channels,
              line_.Name(), assignment.size(), options_.jobs_topic);
  return Status::Ok();
}

void ModemWorker::Stop() {
  if (!started_.load() || stopping_.exchange(true)) return;
  if (consumer_thread_.joinable()) consumer_thread_.join();
  {
    std::unique_lock<std::mutex> lock(queue_mu_);
    queue_closed_ = true;
    queue_.clear();  // not started: left uncommitted, redelivered after a restart
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

void ModemWorker::ConsumeLoop() {
  bool paused = false;
  while (!stopping_.load()) {
    size_t space = 0;
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      space = capacity_ > queue_.size() ? capacity_ - queue_.size() : 0;
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
    for (bus::Record& rec : *records) {
      {
        std::lock_guard<std::mutex> lock(track_mu_);
        tracks_[rec.tp()].pending.emplace(rec.offset, false);
      }
      WorkItem item;
      item.tp = rec.tp();
      item.offset = rec.offset;
      if (!item.job.ParseFromString(rec.value) || item.job.job_id().empty()) {
        // Committed only once the dead letter is acknowledged; otherwise redelivered after a restart.
        if (SendToDeadLetter(rec, item.job.job_id().empty() ? "OutboundJob without job_id or undecodable"
                                                            : "undecodable OutboundJob")) {
          MarkDone(item.tp, item.offset);
        }
        continue;
      }
      std::lock_guard<std::mutex> lock(queue_mu_);
      queue_.push_back(std::move(item));
      queue_cv_.notify_one();
    }
    CommitWatermarks();
  }
}

void ModemWorker::ChannelLoop(size_t index) {
  Channel& channel = *channels_[index];
  while (true) {
    WorkItem item;
    {
      std::unique_lock<std::mutex> lock(queue_mu_);
      queue_cv_.wait(lock, [this] { return queue_closed_ || !queue_.empty(); });
      if (queue_closed_) return;
      item = std::move(queue_.front());
      queue_.pop_front();
      ++busy_channels_;
    }
    metrics_.channels_busy.Increment();
    metrics_.channels_idle.Decrement();
    const bool finished = ProcessJob(channel, item.job);
    metrics_.channels_busy.Decrement();
    metrics_.channels_idle.Increment();
    if (finished) {
      MarkDone(item.tp, item.offset);
      ++jobs_finished_;
    }
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      --busy_channels_;
      idle_cv_.notify_all();
    }
  }
}

Status ModemWorker::RetryStore(const std::function<Status()>& op) {
  auto backoff = std::chrono::milliseconds(50);
  while (true) {
    Status st = op();
    if (st.ok() || !st.retryable() || stopping_.load()) return st;
    FF_LOG_WARN(Log(), "dial ledger: {} (retrying in {} ms)", st.ToString(), backoff.count());
    clock_.SleepUntil(clock_.Monotonic() + backoff);
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::milliseconds(5000));
  }
}

bool ModemWorker::ProcessJob(Channel& channel, const v1::OutboundJob& job) {
  const std::string& id = job.job_id();
  std::optional<JobLedger> ledger;
  Status st = RetryStore([&]() -> Status {
    auto r = dedup_.Get(id);
    if (!r.ok()) return r.status();
    ledger = *r;
    return Status::Ok();
  });
  if (!st.ok()) {
    FF_LOG_ERROR(Log(), "job {}: cannot read the dial ledger, leaving it for redelivery: {}", id,
                 st.ToString());
    return false;
  }
  if (ledger && ledger->terminal) {
    Suppress(job, "already finished");
    // The process may have died between the ledger's terminal record and the result event:
    // re-emit the terminal result from the ledger. Consumers apply it idempotently (a terminal
    // state is final), so a duplicate is harmless and a missing one is repaired.
    v1::DeliveryEvent ev;
    auto* r = ev.mutable_result();
    r->set_attempt(ledger->attempts_finished);
    r->set_state(static_cast<v1::RecipientState>(ledger->terminal_state));
    r->set_reason(static_cast<v1::FailureReason>(ledger->terminal_reason));
    r->set_pages_sent(ledger->pages_confirmed);
    r->set_pages_total(ledger->pages_total);
    r->set_terminal(true);
    r->set_detail("terminal result re-emitted from the dial ledger after a redelivery");
    return Emit(job, std::move(ev));  // not produced: stays uncommitted, redelivered, re-emitted
  }
  AttemptPlan plan;
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
        return false;
      }
    }
    metrics_.resumed.Increment();
    plan.attempt = ledger->attempts_begun + 1;
    plan.first_page = ledger->pages_confirmed + 1;
    FF_LOG_INFO(Log(), "job {}: resuming as attempt {} at page {}/{}", id, plan.attempt, plan.first_page,
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
      if (!st.ok() && st.code() != Code::kAlreadyExists) return false;
      metrics_.CountOutcome(v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED);
      return EmitResult(job, done, true);
    }
  }

  bool begun = false;
  bool suppressed = false;
  AttemptHooks hooks;
  hooks.before_dial = [&]() -> Status {
    Status s = RetryStore(
        [&] { return dedup_.BeginAttempt(id, plan.attempt, job.pages_size(), clock_.NowMillis()); });
    if (s.code() == Code::kAlreadyExists) suppressed = true;
    if (!s.ok()) return s;
    begun = true;
    metrics_.attempts.Increment();
    v1::DeliveryEvent ev;
    auto* started = ev.mutable_attempt_started();
    started->set_attempt(plan.attempt);
    started->set_first_page(plan.first_page);
    started->set_channel(channel.name());
    Emit(job, std::move(ev));
    return Status::Ok();
  };
  hooks.on_page_confirmed = [&](int32_t page) {
    Status s = RetryStore([&] { return dedup_.ConfirmPage(id, plan.attempt, page, clock_.NowMillis()); });
    if (!s.ok())
      FF_LOG_ERROR(Log(), "job {}: cannot record page {} as confirmed: {}", id, page, s.ToString());
    metrics_.pages_sent.Increment();
    v1::DeliveryEvent ev;
    ev.mutable_page_confirmed()->set_attempt(plan.attempt);
    ev.mutable_page_confirmed()->set_page(page);
    Emit(job, std::move(ev));
  };
  hooks.should_abort = [this] { return abort_calls_.load(); };

  auto outcome = channel.RunAttempt(job, plan, hooks);
  if (!outcome.ok()) {
    if (suppressed) {
      Suppress(job, "attempt " + std::to_string(plan.attempt) + " already begun elsewhere");
      return true;
    }
    if (!begun) {
      // Nothing dialled (blob store or disk trouble): leave the job for redelivery.
      FF_LOG_ERROR(Log(), "job {}: attempt {} not started: {}", id, plan.attempt,
                   outcome.status().ToString());
      return false;
    }
    // Begun but the call machinery failed: end the job as an internal failure.
    AttemptOutcome failed;
    failed.attempt = plan.attempt;
    failed.first_page = plan.first_page;
    failed.pages_total = job.pages_size();
    failed.completion_name = "internal_error";
    failed.classification = Classification{v1::STATE_FAILED, v1::REASON_INTERNAL, outcome.status().message()};
    outcome = failed;
  }
  const AttemptOutcome& o = *outcome;
  if (o.aborted) {
    // Shutdown tore the call down: not an outcome of the job; resume after the restart.
    st = RetryStore([&] {
      return dedup_.FinishAttempt(id, plan.attempt, false, v1::STATE_FAILED, v1::REASON_DROPPED,
                                  clock_.NowMillis());
    });
    if (!st.ok()) FF_LOG_ERROR(Log(), "job {}: cannot close aborted attempt: {}", id, st.ToString());
    EmitResult(job, o, false);
    return false;
  }
  const bool terminal = IsTerminal(o.classification, plan.attempt);
  st = RetryStore([&] {
    return dedup_.FinishAttempt(id, plan.attempt, terminal, o.classification.state, o.classification.reason,
                                clock_.NowMillis());
  });
  if (!st.ok()) {
    FF_LOG_ERROR(Log(), "job {}: cannot record the outcome of attempt {}: {}", id, plan.attempt,
                 st.ToString());
    if (st.retryable()) return false;
  }
  metrics_.CountOutcome(o.classification.state, o.classification.reason);
  if (o.setup == CallSetup::kAnswered) {
    metrics_.call_seconds.Observe(static_cast<double>(o.line_ms) / 1000.0);
    if (o.bit_rate > 0) metrics_.bit_rate.Observe(o.bit_rate);
  }
  if (o.watchdog) metrics_.watchdog.Increment();
  // The ledger already holds the outcome: if the event cannot be produced, the job stays
  // uncommitted, and its redelivery is suppressed and re-emits the terminal event.
  const bool emitted = EmitResult(job, o, terminal);
  FF_LOG_INFO(Log(), "job {} attempt {} on {}: {} {} ({} {}/{} pages, {} ms line)", id, plan.attempt,
              channel.name(), v1::RecipientState_Name(o.classification.state),
              v1::FailureReason_Name(o.classification.reason), o.completion_name, o.pages_confirmed_total,
              o.pages_total, o.line_ms);
  return emitted || !terminal;
}

void ModemWorker::Suppress(const v1::OutboundJob& job, const std::string& why) {
  auto count = dedup_.CountSuppressed(job.job_id());
  metrics_.dedup_suppressed.Increment();
  FF_LOG_INFO(Log(), "job {}: redelivery suppressed ({}); {} suppressed so far", job.job_id(), why,
              count.ok() ? std::to_string(*count) : count.status().ToString());
}

bool ModemWorker::Emit(const v1::OutboundJob& job, v1::DeliveryEvent event) {
  const int64_t now = clock_.NowMillis();
  event.set_event_id(NewId("evt", now));
  event.set_fax_id(job.fax_id());
  event.set_recipient_id(job.job_id());
  event.set_tenant(job.tenant());
  event.set_at_ms(now);
  event.set_site(options_.site);
  bus::Message msg;
  msg.topic = options_.events_topic;
  msg.key = job.fax_id();
  msg.value = event.SerializeAsString();
  msg.headers.push_back({std::string(bus::header::kSchema), "faxflow.v1.DeliveryEvent"});
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
