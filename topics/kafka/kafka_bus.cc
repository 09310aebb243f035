#include "topics/kafka/kafka_bus.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <span>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "common/log.h"
#include "topics/catalogue.h"
#include "topics/kafka/consumer_stats.h"
#include "topics/kafka/metrics.h"
#include "topics/kafka/rdkafka_handles.h"

namespace faxflow::bus {
namespace {

using namespace kafka_internal;  // NOLINT: internal helpers of this backend
using SteadyClock = std::chrono::steady_clock;

// Record batches up to 24 MiB: 16 MB records plus overhead (matches scripts/kafka's broker).
constexpr int kMaxMessageBytes = 25165824;

int ToMs(std::chrono::milliseconds d) {
  return static_cast<int>(std::clamp<int64_t>(d.count(), 0, 24LL * 3600 * 1000));
}

int RemainingMs(SteadyClock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
  return ToMs(left);
}

constexpr std::string_view kUnreachable = "no Kafka broker reachable at ";

const Status& StatusOfAny(const Status& s) { return s; }
template <typename T>
const Status& StatusOfAny(const Result<T>& r) {
  return r.status();
}

// Runs `f` again while it fails with a transient error (leader moving, coordinator loading,
// metadata of a new topic still propagating) and `budget` lasts. "No broker reachable" is not
// retried here: it already waited connect_timeout.
// With `not_found_too`, kNotFound is retried as well: for topics known to exist (just created
// or already checked), whose metadata has not reached every broker of a cluster yet.
template <typename F>
auto RetryTransient(std::chrono::milliseconds budget, F f, bool not_found_too = false) -> decltype(f()) {
  const auto deadline = SteadyClock::now() + budget;
  while (true) {
    auto r = f();
    const Status& s = StatusOfAny(r);
    const bool transient = (s.retryable() && s.message().find(kUnreachable) == std::string::npos) ||
                           (not_found_too && s.code() == Code::kNotFound);
    if (s.ok() || !transient || SteadyClock::now() >= deadline) return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

std::string TpName(const std::string& topic, int32_t partition) {
  return topic + "[" + std::to_string(partition) + "]";
}

// Callback state of one librdkafka handle (its opaque). Owned next to the handle and destroyed
// after it. Callbacks run on librdkafka's threads or the polling thread: members are atomic or
// guarded by `mu`.
struct ClientContext {
  std::string client_id;
  std::shared_ptr<spdlog::logger> log;
  KafkaBusMetrics* metrics = nullptr;
  std::atomic<bool> fatal{false};
  mutable std::mutex mu;
  std::string last_error;  // latest error callback text, quoted in "unreachable" messages
  // Statistics JSON of the handle (consumers set it; served on the thread that polls the handle).
  std::function<void(std::string_view json)> on_statistics;

  std::string LastError() const {
    std::lock_guard<std::mutex> lock(mu);
    return last_error;
  }
};

void LogCallback(const rd_kafka_t* rk, int level, const char* facility, const char* buf) {
  auto* ctx = rk != nullptr ? static_cast<ClientContext*>(rd_kafka_opaque(rk)) : nullptr;
  std::shared_ptr<spdlog::logger> log = ctx != nullptr ? ctx->log : Logger("kafka");
  const char* name = ctx != nullptr ? ctx->client_id.c_str() : "?";
  if (level <= 3) {
    FF_LOG_WARN(log, "librdkafka {} {}: {}", name, facility, buf);
  } else if (level <= 5) {
    FF_LOG_INFO(log, "librdkafka {} {}: {}", name, facility, buf);
  } else {
    FF_LOG_DEBUG(log, "librdkafka {} {}: {}", name, facility, buf);
  }
}

void ErrorCallback(rd_kafka_t* rk, int err_int, const char* reason, void* opaque) {
  auto* ctx = static_cast<ClientContext*>(opaque);
  if (ctx == nullptr) return;
  const auto err = static_cast<rd_kafka_resp_err_t>(err_int);
  {
    std::lock_guard<std::mutex> lock(ctx->mu);
    ctx->last_error = reason;
  }
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char buf[512];
    const rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof buf);
    ctx->fatal = true;
    if (ctx->metrics != nullptr) ctx->metrics->client_errors_fatal.Increment();
    FF_LOG_ERROR(ctx->log, "kafka client {} has a fatal error and must be recreated: {} ({})", ctx->client_id,
                 buf, rd_kafka_err2name(orig));
    return;
  }
  const Status s = StatusFromErr(err, "kafka client " + ctx->client_id, reason);
  if (ctx->metrics != nullptr) {
    (s.retryable() ? ctx->metrics->client_errors_retryable : ctx->metrics->client_errors_other).Increment();
  }
  // Connectivity errors are also logged by librdkafka's log callback; keep these at debug.
  if (s.retryable()) {
    FF_LOG_DEBUG(ctx->log, "{}", s.ToString());
  } else {
    FF_LOG_WARN(ctx->log, "{}", s.ToString());
  }
}

// librdkafka statistics (statistics.interval.ms): handed to the client's on_statistics.
int StatsCallback(rd_kafka_t* /*rk*/, char* json, size_t json_len, void* opaque) {
  auto* ctx = static_cast<ClientContext*>(opaque);
  if (ctx != nullptr && ctx->on_statistics) ctx->on_statistics(std::string_view(json, json_len));
  return 0;  // librdkafka frees `json`
}

// Serves callbacks (delivery reports, errors) of a handle on a background thread until
// destroyed. Declare it after the handle so that it stops before the handle is destroyed.
class Poller {
 public:
  // `busy`, when given, is the number of threads currently serving the handle's queue
  // themselves (producers waiting for their delivery reports); the poller stays off the queue
  // while it is non-zero so that reports reach their waiting thread directly.
  explicit Poller(rd_kafka_t* rk, const std::atomic<int>* busy = nullptr)
      : rk_(rk), busy_(busy), thread_([this] { Run(); }) {}
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;
  ~Poller() {
    stop_ = true;
    thread_.join();
  }

 private:
  void Run() {
    while (!stop_) {
      if (busy_ != nullptr && busy_->load(std::memory_order_relaxed) > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      rd_kafka_poll(rk_, busy_ != nullptr ? 10 : 100);
    }
  }
  rd_kafka_t* rk_;
  const std::atomic<int>* busy_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

Status FirstPartitionError(const rd_kafka_topic_partition_list_t* list, std::string_view what) {
  for (int i = 0; i < list->cnt; ++i) {
    const auto& e = list->elems[i];
    if (e.err != RD_KAFKA_RESP_ERR_NO_ERROR)
      return StatusFromErr(e.err, std::string(what) + " " + TpName(e.topic, e.partition));
  }
  return Status::Ok();
}

using Props = std::vector<std::pair<std::string, std::string>>;

Status FatalStatusOf(rd_kafka_t* rk, const std::string& what) {
  char buf[512];
  const rd_kafka_resp_err_t err = rd_kafka_fatal_error(rk, buf, sizeof buf);
  const std::string msg = what + ": client has a fatal error and must be recreated: " + buf;
  return Status::Fatal(IsFencedErr(err) ? Code::kFenced : Code::kInternal, msg);
}

// Enqueues one message on a producer handle. `opaque` comes back in the delivery report.
// Waits (serving callbacks) while the local queue is full, up to `deadline`.
Status Enqueue(rd_kafka_t* rk, const Message& m, int32_t partition, void* opaque,
               SteadyClock::time_point deadline) {
  // An empty key is a null key (Kafka's "no key"); values are always non-null.
  static char empty_value = 0;
  thread_local std::vector<rd_kafka_vu_t> vus;  // reused: no allocation per record
  vus.clear();
  rd_kafka_vu_t vu{};
  vu.vtype = RD_KAFKA_VTYPE_TOPIC;
  vu.u.cstr = m.topic.c_str();
  vus.push_back(vu);
  vu = {};
  vu.vtype = RD_KAFKA_VTYPE_PARTITION;
  vu.u.i32 = partition;
  vus.push_back(vu);
  vu = {};
  vu.vtype = RD_KAFKA_VTYPE_MSGFLAGS;
  vu.u.i = RD_KAFKA_MSG_F_COPY;
  vus.push_back(vu);
  if (!m.key.empty()) {
    vu = {};
    vu.vtype = RD_KAFKA_VTYPE_KEY;
    vu.u.mem.ptr = const_cast<char*>(m.key.data());
    vu.u.mem.size = m.key.size();
    vus.push_back(vu);
  }
  vu = {};
  vu.vtype = RD_KAFKA_VTYPE_VALUE;
  vu.u.mem.ptr = m.value.empty() ? &empty_value : const_cast<char*>(m.value.data());
  vu.u.mem.size = m.value.size();
  vus.push_back(vu);
  vu = {};
  vu.vtype = RD_KAFKA_VTYPE_OPAQUE;
  vu.u.ptr = opaque;
  vus.push_back(vu);
  for (const auto& h : m.headers) {  // copied by librdkafka
    vu = {};
    vu.vtype = RD_KAFKA_VTYPE_HEADER;
    vu.u.header.name = h.key.c_str();
    vu.u.header.val = h.value.data();
    vu.u.header.size = static_cast<ssize_t>(h.value.size());
    vus.push_back(vu);
  }
  while (true) {
    ErrorPtr e(rd_kafka_produceva(rk, vus.data(), vus.size()));
    if (!e) return Status::Ok();
    const rd_kafka_resp_err_t err = rd_kafka_error_code(e.get());
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && SteadyClock::now() < deadline) {
      rd_kafka_poll(rk, 50);
      continue;
    }
    if (err == RD_KAFKA_RESP_ERR__FATAL || rd_kafka_error_is_fatal(e.get()))
      return FatalStatusOf(rk, "produce to " + m.topic);
    return StatusFromError(e.get(), "produce to " + TpName(m.topic, partition));
  }
}

// librdkafka learns about a topic a handle has not produced to before only on its one-second
// topic scan, so the first record to each topic waits up to a second for metadata (seen as a
// ~0.9 s first Produce in bus_bench). Asking for that topic's metadata on the producer's own
// handle fills its cache at once. Thread-safe; a failed warm-up is not an error (librdkafka's
// own scan still finds the topic), it is simply tried again on the next record.
class TopicWarmer {
 public:
  // Returns once the handle knows the topic with a leader for every partition (or the timeout
  // passed). One warm-up at a time per handle: concurrent first records of one topic wait for
  // the same metadata instead of each triggering a leader update while the others' records are
  // in flight.
  void Warm(rd_kafka_t* rk, const std::string& topic, std::chrono::milliseconds timeout) {
    std::lock_guard<std::mutex> lock(mu_);
    if (known_.contains(topic)) return;
    TopicPtr rkt(rd_kafka_topic_new(rk, topic.c_str(), nullptr));
    if (!rkt) return;
    const auto deadline = SteadyClock::now() + timeout;
    while (true) {
      const rd_kafka_metadata_t* md = nullptr;
      const rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt.get(), &md, ToMs(timeout));
      MetadataPtr hold(md);
      bool ready = err == RD_KAFKA_RESP_ERR_NO_ERROR && md != nullptr && md->topic_cnt == 1 &&
                   md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topics[0].partition_cnt > 0;
      for (int p = 0; ready && p < md->topics[0].partition_cnt; ++p)
        ready = md->topics[0].partitions[p].leader >= 0 &&
                md->topics[0].partitions[p].err == RD_KAFKA_RESP_ERR_NO_ERROR;
      if (ready) break;
      if (SteadyClock::now() + std::chrono::milliseconds(50) >= deadline) return;  // tried again next record
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    known_.insert(topic);
    held_.push_back(std::move(rkt));  // keeps librdkafka's topic object (and its metadata) alive
  }

 private:
  std::mutex mu_;
  std::set<std::string> known_;  // guarded by mu_
  std::vector<TopicPtr> held_;   // guarded by mu_
};

class KafkaBus;

// ------------------------------------------------------------------------------------------
// Producer
// ------------------------------------------------------------------------------------------

// Outcome slots of one Produce/ProduceBatch call; each message's opaque points at its slot.
// Each report writes only its own slot and decrements `pending` (no lock); the last one sets
// `done` under the mutex, so the waiting caller cannot free the batch while a report still
// touches it.
struct DeliveryBatch {
  std::mutex mu;
  std::atomic<size_t> pending{0};
  bool done = false;  // guarded by mu
  std::vector<Status> statuses;
  std::vector<Position> positions;
  std::vector<uint8_t> no_offset;  // 1: acknowledged without an offset (see DeliveryCallback)

  // Accounts for `n` reports (delivered or never enqueued); the last one marks the batch done.
  void Settle(size_t n) {
    if (n == 0) return;
    if (pending.fetch_sub(n, std::memory_order_acq_rel) == n) {
      std::lock_guard<std::mutex> lock(mu);
      done = true;
    }
  }
};
struct DeliverySlot {
  DeliveryBatch* batch = nullptr;
  size_t index = 0;
};

void DeliveryCallback(rd_kafka_t* rk, const rd_kafka_message_t* m, void* /*opaque*/) {
  auto* slot = static_cast<DeliverySlot*>(m->_private);
  if (slot == nullptr) return;
  Status status;
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    const std::string what = "deliver to " + TpName(rd_kafka_topic_name(m->rkt), m->partition);
    if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
      status = FatalStatusOf(rk, what);
    } else {
      std::string detail = rd_kafka_err2str(m->err);
      if (rd_kafka_message_status(m) == RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED)
        detail += "; the record may have been written";
      status = StatusFromErr(m->err, what, detail);
    }
  } else if (m->offset < 0) {
    // acks=all always reports the offset of a written record. librdkafka 2.0.2 has been seen to
    // report "persisted" without an offset for a record that never reached the log (the first
    // record of some producer threads when several start on a fresh topic at once; see
    // KafkaBusTest.ConcurrentProducersLoseNothing). Send() sends such records again: a duplicate
    // is harmless downstream (every consumer dedups by id), a loss is not.
    status = Status::Retryable(Code::kUnavailable,
                               "deliver to " + TpName(rd_kafka_topic_name(m->rkt), m->partition) +
                                   ": acknowledged without an offset; the record may not have been written");
    slot->batch->no_offset[slot->index] = 1;
  }
  DeliveryBatch* batch = slot->batch;
  batch->statuses[slot->index] = std::move(status);
  batch->positions[slot->index] = Position{m->partition, m->offset};
  batch->Settle(1);
}

// Idempotent producer (acks=all). Produce blocks until the delivery report of its records;
// a background thread serves delivery reports. Thread-safe; must not outlive its KafkaBus.
class KafkaProducer final : public Producer {
 public:
  KafkaProducer(KafkaBus* bus, std::unique_ptr<ClientContext> ctx, HandlePtr handle,
                std::chrono::milliseconds timeout)
      : bus_(bus),
        ctx_(std::move(ctx)),
        handle_(std::move(handle)),
        poller_(handle_.get(), &waiting_),
        timeout_(timeout) {}

  ~KafkaProducer() override {
    // Every Produce waited for its reports, so this only covers callers racing destruction.
    const rd_kafka_resp_err_t err = rd_kafka_flush(handle_.get(), 10000);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      FF_LOG_WARN(ctx_->log, "producer {}: {} records not delivered at close ({})", ctx_->client_id,
                  rd_kafka_outq_len(handle_.get()), rd_kafka_err2name(err));
    }
  }

  Result<Position> Produce(const Message& message) override {
    DeliveryBatch batch;
    FF_RETURN_IF_ERROR(Send({&message, 1}, batch));
    if (!batch.statuses[0].ok()) return batch.statuses[0];
    return batch.positions[0];
  }

  Status ProduceBatch(const std::vector<Message>& messages) override {
    if (messages.empty()) return Status::Ok();
    DeliveryBatch batch;
    FF_RETURN_IF_ERROR(Send({messages.data(), messages.size()}, batch));
    for (auto& s : batch.statuses) {
      if (!s.ok()) return s;
    }
    return Status::Ok();
  }

 private:
  // Enqueues every message and waits for all their delivery reports (also after an enqueue
  // error: the slots must outlive the reports). Returns an enqueue error, if any; delivery
  // outcomes are in batch.statuses.
  Status Send(std::span<const Message> messages, DeliveryBatch& batch);
  Status SendOnce(std::span<const Message> messages, DeliveryBatch& batch);

  KafkaBus* bus_;
  std::unique_ptr<ClientContext> ctx_;
  HandlePtr handle_;
  TopicWarmer warmer_;
  std::atomic<int> waiting_{0};  // threads inside Send serving their own delivery reports
  Poller poller_;                // serves callbacks (errors, statistics) while nobody waits
  std::chrono::milliseconds timeout_;
};

// ------------------------------------------------------------------------------------------
// Consumer
// ------------------------------------------------------------------------------------------

// Manually assigned consumer; the group only stores offsets. One thread at a time.
class KafkaConsumer final : public Consumer {
 public:
  KafkaConsumer(KafkaBus* bus, ConsumerOptions options, std::unique_ptr<ClientContext> ctx, HandlePtr handle,
                std::chrono::milliseconds timeout)
      : bus_(bus),
        options_(std::move(options)),
        ctx_(std::move(ctx)),
        handle_(std::move(handle)),
        timeout_(timeout) {
    // Served by rd_kafka_consumer_poll, i.e. on the thread that uses this consumer.
    ctx_->on_statistics = [this](std::string_view json) { OnStatistics(json); };
  }

  ~KafkaConsumer() override {
    const rd_kafka_resp_err_t err = rd_kafka_consumer_close(handle_.get());
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      FF_LOG_WARN(ctx_->log, "consumer {}: close: {}", ctx_->client_id, rd_kafka_err2str(err));
    }
    ctx_->on_statistics = nullptr;
    ForgetStatistics();
  }

  Status Assign(const std::vector<TopicPartition>& partitions) override;
  std::vector<TopicPartition> Assignment() const override { return {assignment_.begin(), assignment_.end()}; }
  Result<std::vector<Record>> Poll(std::chrono::milliseconds timeout, size_t max_records) override;
  Status Commit(const std::vector<TopicPartitionOffset>& offsets) override;
  Result<std::optional<int64_t>> Committed(const TopicPartition& tp) override;
  Status Seek(const TopicPartition& tp, int64_t offset) override;
  Status Pause(const std::vector<TopicPartition>& partitions) override;
  Status Resume(const std::vector<TopicPartition>& partitions) override;
  Result<int64_t> EndOffset(const TopicPartition& tp) override;

 private:
  Status CheckAssigned(const std::vector<TopicPartition>& partitions, std::string_view what) const;
  Status CheckFatal(std::string_view what) const {
    if (ctx_->fatal) return FatalStatusOf(handle_.get(), std::string(what));
    return Status::Ok();
  }

  // librdkafka statistics of this consumer: its assigned partitions' lag, to the bus's board.
  void OnStatistics(std::string_view json);
  void ForgetStatistics();

  KafkaBus* bus_;
  ConsumerOptions options_;
  std::unique_ptr<ClientContext> ctx_;
  HandlePtr handle_;
  std::chrono::milliseconds timeout_;
  std::set<TopicPartition> assignment_;
  std::optional<Status> pending_error_;  // error seen after records were collected by Poll
  // This consumer committed offsets itself. Until then its statistics say nothing about the
  // group's progress (librdkafka learns committed offsets only from its own commits and the
  // fetch at assignment, not from transactions that commit for the group).
  bool committed_here_ = false;

  // After a failed committed-offset fetch (coordinator not ready on a fresh broker), librdkafka
  // leaves the partitions without a fetch position and never asks again: assign those again.
  void RefetchUnpositioned();
};

// ------------------------------------------------------------------------------------------
// Transactional producer
// ------------------------------------------------------------------------------------------

// One transactional.id. Created after init_transactions succeeded (which fenced older
// instances). A fatal error (fenced or other) poisons the instance: every later call returns
// it; destroy it and create a new one. One thread at a time.
class KafkaTransactionalProducer final : public TransactionalProducer {
 public:
  KafkaTransactionalProducer(KafkaBus* bus, std::string transactional_id, std::unique_ptr<ClientContext> ctx,
                             HandlePtr handle, std::chrono::milliseconds timeout)
      : bus_(bus),
        id_(std::move(transactional_id)),
        ctx_(std::move(ctx)),
        handle_(std::move(handle)),
        timeout_(timeout) {}

  ~KafkaTransactionalProducer() override {
    if (in_transaction_ && !dead_) {
      // Abort now rather than leaving the coordinator to time it out (which would hold back
      // read_committed consumers of the partitions for transaction.timeout.ms).
      ErrorPtr e(rd_kafka_abort_transaction(handle_.get(), 5000));
      if (e) {
        FF_LOG_WARN(ctx_->log, "transactional producer {}: abort at close: {}", id_,
                    rd_kafka_error_string(e.get()));
      }
    }
  }

  // Runs init_transactions, retrying retriable errors until the deadline.
  Status Init();

  Status Begin() override;
  Status Send(const Message& message) override;
  Status SendOffsets(const std::string& group, const std::vector<TopicPartitionOffset>& offsets) override;
  Status Commit() override;
  Status Abort() override;
  const std::string& transactional_id() const override { return id_; }

 private:
  // Runs `call` (returning rd_kafka_error_t*) until success, a non-retriable error or the
  // deadline. A fatal error poisons the producer.
  template <typename Call>
  Status Run(std::string_view what, Call call);
  Status Poisoned(Status s) {
    if (s.fatal()) dead_ = s;
    return s;
  }

  KafkaBus* bus_;
  std::string id_;
  std::unique_ptr<ClientContext> ctx_;
  HandlePtr handle_;
  std::chrono::milliseconds timeout_;
  TopicWarmer warmer_;
  bool in_transaction_ = false;
  std::optional<Status> dead_;
};

// ------------------------------------------------------------------------------------------
// The bus
// ------------------------------------------------------------------------------------------

// The Bus: owns the admin/metadata client (with its callback thread), the partition-count
// cache and the metrics; creates clients that each own their librdkafka handle and point back
// here for partition counts and metrics (so they must be destroyed first). Thread-safe.
class KafkaBus final : public Bus {
 public:
  explicit KafkaBus(const KafkaBusOptions& options) : options_(options) {
    MetricsRegistry* registry = options.metrics;
    if (registry == nullptr) {
      own_registry_ = std::make_unique<MetricsRegistry>();
      registry = own_registry_.get();
    }
    metrics_ = std::make_unique<KafkaBusMetrics>(*registry);
  }

  // Creates the admin/metadata client and waits for a broker.
  Status Start() {
    admin_ctx_ = MakeContext("admin");
    FF_ASSIGN_OR_RETURN(admin_, NewHandle(RD_KAFKA_PRODUCER, admin_ctx_.get(), {}, {}));
    admin_poller_ = std::make_unique<Poller>(admin_.get());
    return Ping();
  }

  ~KafkaBus() override {
    admin_poller_.reset();
    admin_.reset();
  }

  std::string_view Name() const override { return "kafka"; }

  Result<std::unique_ptr<Producer>> NewProducer(const std::string& client_id) override {
    auto ctx = MakeContext(client_id.empty() ? "producer" : client_id);
    const Props defaults = {
        {"message.timeout.ms", std::to_string(options_.operation_timeout.count())},
        {"message.max.bytes", std::to_string(kMaxMessageBytes)},
        // Produce blocks until the record is acknowledged, so waiting to fill a batch only adds
        // latency: records enqueued together (ProduceBatch, concurrent callers) still batch.
        // Overridable with kafka.linger.ms.
        {"linger.ms", "0"},
    };
    const Props forced = {{"enable.idempotence", "true"}, {"acks", "all"}};
    FF_ASSIGN_OR_RETURN(HandlePtr h, NewHandle(RD_KAFKA_PRODUCER, ctx.get(), defaults, forced,
                                               /*delivery_reports=*/true));
    return std::unique_ptr<Producer>(
        new KafkaProducer(this, std::move(ctx), std::move(h), options_.operation_timeout));
  }

  Result<std::unique_ptr<Consumer>> NewConsumer(const ConsumerOptions& options) override {
    if (options.group.empty())
      return Status::Permanent(Code::kInvalidArgument, "kafka consumer: ConsumerOptions.group is empty");
    auto ctx = MakeContext(options.client_id.empty() ? "consumer" : options.client_id);
    // Statistics every 5 s feed faxflow_bus_consumer_lag (kafka.statistics.interval.ms=0: off).
    const Props defaults = {{"auto.offset.reset", "earliest"}, {"statistics.interval.ms", "5000"}};
    const Props forced = {
        {"group.id", options.group},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "false"},
        {"isolation.level", options.read_committed ? "read_committed" : "read_uncommitted"},
    };
    FF_ASSIGN_OR_RETURN(HandlePtr h, NewHandle(RD_KAFKA_CONSUMER, ctx.get(), defaults, forced));
    const rd_kafka_resp_err_t err = rd_kafka_poll_set_consumer(h.get());
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return StatusFromErr(err, "kafka consumer: poll_set_consumer");
    return std::unique_ptr<Consumer>(
        new KafkaConsumer(this, options, std::move(ctx), std::move(h), options_.operation_timeout));
  }

  Result<std::unique_ptr<TransactionalProducer>> NewTransactionalProducer(
      const std::string& transactional_id) override {
    if (transactional_id.empty())
      return Status::Permanent(Code::kInvalidArgument, "kafka: empty transactional id");
    auto ctx = MakeContext("txn-" + transactional_id);
    // A transaction is committed right after its records are sent, so waiting to fill a batch
    // only delays the commit (bus_bench kafka.txn: 54 -> 79 txn/s with linger.ms=0 on a loaded
    // 2-core machine). Overridable with kafka.linger.ms.
    //
    // retry.backoff.ms 5 (librdkafka: 100): a transaction begun right after the previous one
    // committed finds the coordinator still writing that one's markers, and AddOffsetsToTxn is
    // answered CONCURRENT_TRANSACTIONS; librdkafka retries it after retry.backoff.ms. With 100 ms
    // a back-to-back transaction took 100+ ms (latency_bench raw loop: 99 vs 226 transactions in
    // 4 s, produced -> read_committed visible p99 107 vs 39 ms). On a single broker the marker
    // window is 1-2 ms: back-to-back one-record transactions took 21.8 ms (p50) with 20 ms and
    // 6.4 ms with 5 ms (docs/performance.md, K1). Overridable with kafka.retry.backoff.ms.
    const Props defaults = {{"message.max.bytes", std::to_string(kMaxMessageBytes)},
                            {"linger.ms", "0"},
                            {"retry.backoff.ms", "5"}};
    const Props forced = {
        {"transactional.id", transactional_id}, {"enable.idempotence", "true"}, {"acks", "all"}};
    //
    // Delivery reports on, although a transaction learns its records' fate from the commit:
    // commit_transaction flushes first, and librdkafka's flush waits in 10 ms rd_kafka_poll
    // slices on the report queue. Without a report callback nothing is ever put on that queue,
    // so every commit slept about 10 ms after its last record was acknowledged (a one-record
    // transaction: 11.5 ms without, 3.0 ms with, on the CI machine; docs/performance.md, K1).
    // The callback ignores the reports (their slots are null).
    FF_ASSIGN_OR_RETURN(HandlePtr h, NewHandle(RD_KAFKA_PRODUCER, ctx.get(), defaults, forced,
                                               /*delivery_reports=*/true));
    auto producer = std::make_unique<KafkaTransactionalProducer>(this, transactional_id, std::move(ctx),
                                                                 std::move(h), options_.operation_timeout);
    FF_RETURN_IF_ERROR(producer->Init());
    return std::unique_ptr<TransactionalProducer>(std::move(producer));
  }

  Status EnsureTopics(const std::vector<TopicSpec>& topics) override;

  Result<int32_t> PartitionCount(const std::string& topic) override {
    // In a multi-broker cluster a new topic reaches every broker's metadata up to ~1 s after
    // creation: "unknown topic" from one broker is only believed after a short grace.
    const auto not_found_deadline =
        SteadyClock::now() + (brokers_ > 1 ? std::chrono::milliseconds(2000) : std::chrono::milliseconds(0));
    while (true) {
      Result<TopicInfo> info =
          RetryTransient(options_.operation_timeout, [&] { return DescribeTopic(topic); });
      if (info.ok()) return info->partitions;
      if (info.status().code() != Code::kNotFound || SteadyClock::now() >= not_found_deadline)
        return info.status();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  // Cached partition count (for key placement); refreshed on a miss.
  Result<int32_t> CachedPartitionCount(const std::string& topic) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = partitions_.find(topic);
      if (it != partitions_.end()) return it->second;
    }
    return PartitionCount(topic);
  }

  // The partition a message goes to: its explicit partition (checked against the topic) or
  // PartitionForKey over the topic's partition count.
  Result<int32_t> PartitionFor(const Message& m) {
    FF_ASSIGN_OR_RETURN(int32_t n, CachedPartitionCount(m.topic));
    if (!m.partition) return PartitionForKey(m.key, n);
    const int32_t p = *m.partition;
    if (p < 0)
      return Status::Permanent(Code::kInvalidArgument,
                               "produce to " + m.topic + ": negative partition " + std::to_string(p));
    if (p >= n) {  // the topic may have grown since the count was cached
      FF_ASSIGN_OR_RETURN(n, PartitionCount(m.topic));
      if (p >= n)
        return Status::Permanent(Code::kNotFound, "produce to " + m.topic + ": the topic has " +
                                                      std::to_string(n) + " partitions, no " +
                                                      std::to_string(p));
    }
    return p;
  }

  // The group's committed offset of a partition (not counting offsets of open transactions).
  Result<std::optional<int64_t>> CommittedOffset(const std::string& group, const TopicPartition& tp) {
    return RetryTransient(options_.operation_timeout, [&] { return CommittedOffsetOnce(group, tp); });
  }

  KafkaBusMetrics& metrics() { return *metrics_; }
  const KafkaBusOptions& options() const { return options_; }
  ConsumerLagBoard& lag_board() { return lag_board_; }

  std::optional<int64_t> ReportedConsumerLag(const std::string& topic, const std::string& group) override {
    return lag_board_.Lag(topic, group);
  }

 private:
  Result<std::optional<int64_t>> CommittedOffsetOnce(const std::string& group, const TopicPartition& tp) {
    const std::string what =
        "kafka committed offset of " + TpName(tp.topic, tp.partition) + " for group " + group;
    PartitionListPtr list = NewPartitionList(1);
    rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition);
    ListGroupOffsetsPtr request(rd_kafka_ListConsumerGroupOffsets_new(group.c_str(), list.get()));
    rd_kafka_ListConsumerGroupOffsets_t* raw = request.get();
    FF_ASSIGN_OR_RETURN(AdminOptionsPtr opts,
                        AdminOptions(RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, false));
    QueuePtr q(rd_kafka_queue_new(admin_.get()));
    rd_kafka_ListConsumerGroupOffsets(admin_.get(), &raw, 1, opts.get(), q.get());
    FF_ASSIGN_OR_RETURN(EventPtr ev,
                        AwaitAdmin(q.get(), RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT, what));
    size_t cnt = 0;
    const rd_kafka_group_result_t** groups = rd_kafka_ListConsumerGroupOffsets_result_groups(
        rd_kafka_event_ListConsumerGroupOffsets_result(ev.get()), &cnt);
    if (cnt != 1)
      return Status::Permanent(Code::kInternal, what + ": " + std::to_string(cnt) + " group results");
    if (const rd_kafka_error_t* e = rd_kafka_group_result_error(groups[0])) return StatusFromError(e, what);
    const rd_kafka_topic_partition_list_t* parts = rd_kafka_group_result_partitions(groups[0]);
    if (parts == nullptr || parts->cnt != 1)
      return Status::Permanent(Code::kInternal, what + ": no partition in the reply");
    FF_RETURN_IF_ERROR(FirstPartitionError(parts, what));
    const int64_t off = parts->elems[0].offset;
    if (off < 0) return std::optional<int64_t>();
    return std::optional<int64_t>(off);
  }

  struct TopicInfo {
    int32_t partitions = 0;
    int32_t replication = 0;
    bool all_leaders = false;
  };

  std::unique_ptr<ClientContext> MakeContext(const std::string& role) {
    auto ctx = std::make_unique<ClientContext>();
    ctx->client_id = options_.client_id_prefix.empty() ? role : options_.client_id_prefix + "-" + role;
    ctx->log = Logger("kafka");
    ctx->metrics = metrics_.get();
    return ctx;
  }

  Result<HandlePtr> NewHandle(rd_kafka_type_t type, ClientContext* ctx, const Props& defaults,
                              const Props& forced, bool delivery_reports = false) {
    ConfPtr conf(rd_kafka_conf_new());
    char errstr[512];
    auto set = [&](const std::string& k, const std::string& v) -> Status {
      if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
        return Status::Permanent(Code::kInvalidArgument,
                                 "kafka client property " + k + "=" + v + ": " + errstr);
      return Status::Ok();
    };
    FF_RETURN_IF_ERROR(set("client.id", ctx->client_id));
    FF_RETURN_IF_ERROR(set("socket.connection.setup.timeout.ms",
                           std::to_string(std::max<int64_t>(1000, options_.connect_timeout.count()))));
    // TCP_NODELAY, as the Java clients and the broker itself always set it. With Nagle on
    // (librdkafka's default), a small request written while an earlier one on the same broker
    // connection is unacknowledged waits for that ACK; a transaction puts Produce,
    // AddOffsetsToTxn, TxnOffsetCommit and EndTxn on one connection back to back
    // (docs/performance.md, K1). Overridable with kafka.socket.nagle.disable=false.
    FF_RETURN_IF_ERROR(set("socket.nagle.disable", "true"));
    for (const auto& [k, v] : defaults) FF_RETURN_IF_ERROR(set(k, v));
    for (const auto& [k, v] : options_.properties) FF_RETURN_IF_ERROR(set(k, v));
    for (const auto& [k, v] : forced) FF_RETURN_IF_ERROR(set(k, v));
    FF_RETURN_IF_ERROR(set("bootstrap.servers", options_.bootstrap));
    rd_kafka_conf_set_opaque(conf.get(), ctx);
    rd_kafka_conf_set_log_cb(conf.get(), LogCallback);
    rd_kafka_conf_set_error_cb(conf.get(), ErrorCallback);
    rd_kafka_conf_set_stats_cb(conf.get(), StatsCallback);
    if (delivery_reports) rd_kafka_conf_set_dr_msg_cb(conf.get(), DeliveryCallback);
    rd_kafka_t* rk = rd_kafka_new(type, conf.get(), errstr, sizeof errstr);
    if (rk == nullptr)
      return Status::Permanent(Code::kInvalidArgument, "kafka client " + ctx->client_id + ": " + errstr);
    conf.release();  // owned by rk now
    return HandlePtr(rk);
  }

  Status Unreachable(rd_kafka_resp_err_t err, std::string_view what) const {
    std::ostringstream secs;
    secs << static_cast<double>(options_.connect_timeout.count()) / 1000.0;
    std::string msg = std::string(kUnreachable) + options_.bootstrap + " after " + secs.str() + " s (" +
                      std::string(what) + ": " + rd_kafka_err2str(err);
    const std::string last = admin_ctx_ ? admin_ctx_->LastError() : "";
    if (!last.empty()) msg += "; last client error: " + last;
    msg += ")";
    return Status::Retryable(Code::kUnavailable, msg);
  }

  static bool IsConnectivity(rd_kafka_resp_err_t err) {
    return err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
           err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__RESOLVE;
  }

  // A metadata request without topics: succeeds when some broker answers.
  Status Ping() {
    const rd_kafka_metadata_t* md = nullptr;
    const rd_kafka_resp_err_t err =
        rd_kafka_metadata(admin_.get(), 0, nullptr, &md, ToMs(options_.connect_timeout));
    MetadataPtr hold(md);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (IsConnectivity(err)) return Unreachable(err, "metadata");
      return StatusFromErr(err, "kafka metadata from " + options_.bootstrap);
    }
    if (md == nullptr || md->broker_cnt == 0)
      return Unreachable(RD_KAFKA_RESP_ERR__TRANSPORT, "metadata listed no brokers");
    brokers_ = md->broker_cnt;
    return Status::Ok();
  }

  Result<TopicInfo> DescribeTopic(const std::string& topic) {
    TopicPtr rkt(rd_kafka_topic_new(admin_.get(), topic.c_str(), nullptr));
    if (!rkt) return StatusFromErr(rd_kafka_last_error(), "kafka topic handle " + topic);
    const rd_kafka_metadata_t* md = nullptr;
    const rd_kafka_resp_err_t err =
        rd_kafka_metadata(admin_.get(), 0, rkt.get(), &md, ToMs(options_.connect_timeout));
    MetadataPtr hold(md);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (IsConnectivity(err)) return Unreachable(err, "metadata of " + topic);
      return StatusFromErr(err, "kafka metadata of " + topic);
    }
    if (md->broker_cnt > 0) brokers_ = md->broker_cnt;
    for (int i = 0; i < md->topic_cnt; ++i) {
      const rd_kafka_metadata_topic_t& t = md->topics[i];
      if (topic != t.topic) continue;
      if (t.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        return Status::Permanent(Code::kNotFound, "kafka topic " + topic + " does not exist at " +
                                                      options_.bootstrap +
                                                      " (create it: faxflow topics create)");
      }
      if (t.err != RD_KAFKA_RESP_ERR_NO_ERROR) return StatusFromErr(t.err, "kafka metadata of " + topic);
      TopicInfo info;
      info.partitions = t.partition_cnt;
      info.all_leaders = t.partition_cnt > 0;
      for (int p = 0; p < t.partition_cnt; ++p) {
        if (t.partitions[p].leader < 0 || t.partitions[p].err != RD_KAFKA_RESP_ERR_NO_ERROR)
          info.all_leaders = false;
        info.replication = std::max(info.replication, t.partitions[p].replica_cnt);
      }
      if (info.partitions <= 0)
        return Status::Retryable(Code::kUnavailable, "kafka topic " + topic + " has no partitions yet");
      std::lock_guard<std::mutex> lock(mu_);
      partitions_[topic] = info.partitions;
      return info;
    }
    return Status::Retryable(Code::kUnavailable, "kafka metadata reply did not mention topic " + topic);
  }

  Result<EventPtr> AwaitAdmin(rd_kafka_queue_t* q, rd_kafka_event_type_t type, std::string_view what) {
    // The admin request itself times out after operation_timeout; wait a bit longer for its event.
    EventPtr ev(rd_kafka_queue_poll(q, ToMs(options_.operation_timeout + std::chrono::seconds(5))));
    if (!ev) return Status::Retryable(Code::kTimeout, std::string(what) + ": no answer from Kafka");
    if (rd_kafka_event_type(ev.get()) != type)
      return Status::Permanent(
          Code::kInternal, std::string(what) + ": unexpected admin event " + rd_kafka_event_name(ev.get()));
    const rd_kafka_resp_err_t err = rd_kafka_event_error(ev.get());
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (IsConnectivity(err)) return Unreachable(err, what);
      return StatusFromErr(err, what, rd_kafka_event_error_string(ev.get()));
    }
    return ev;
  }

  Result<AdminOptionsPtr> AdminOptions(rd_kafka_admin_op_t op, bool with_operation_timeout) {
    AdminOptionsPtr opts(rd_kafka_AdminOptions_new(admin_.get(), op));
    char errstr[256];
    const int ms = ToMs(options_.operation_timeout);
    if (rd_kafka_AdminOptions_set_request_timeout(opts.get(), ms, errstr, sizeof errstr))
      return Status::Permanent(Code::kInternal, std::string("kafka admin options: ") + errstr);
    if (with_operation_timeout &&
        rd_kafka_AdminOptions_set_operation_timeout(opts.get(), ms, errstr, sizeof errstr))
      return Status::Permanent(Code::kInternal, std::string("kafka admin options: ") + errstr);
    return opts;
  }

  // Current topic configs (only the keys faxflow manages).
  Result<std::map<std::string, std::map<std::string, std::string>>> DescribeTopicConfigs(
      const std::vector<std::string>& names);

  KafkaBusOptions options_;
  std::unique_ptr<MetricsRegistry> own_registry_;
  std::unique_ptr<KafkaBusMetrics> metrics_;
  ConsumerLagBoard lag_board_;  // consumer lag from the consumers' statistics
  std::unique_ptr<ClientContext> admin_ctx_;
  HandlePtr admin_;
  std::unique_ptr<Poller> admin_poller_;
  std::atomic<int> brokers_{1};  // brokers in the latest metadata
  std::mutex mu_;
  std::map<std::string, int32_t> partitions_;
};

// ---- KafkaBus: topics ----------------------------------------------------------------------

Result<std::map<std::string, std::map<std::string, std::string>>> KafkaBus::DescribeTopicConfigs(
    const std::vector<std::string>& names) {
  std::vector<ConfigResourcePtr> owned;
  std::vector<rd_kafka_ConfigResource_t*> raw;
  for (const auto& n : names) {
    owned.emplace_back(rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, n.c_str()));
    raw.push_back(owned.back().get());
  }
  FF_ASSIGN_OR_RETURN(AdminOptionsPtr opts, AdminOptions(RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, false));
  QueuePtr q(rd_kafka_queue_new(admin_.get()));
  rd_kafka_DescribeConfigs(admin_.get(), raw.data(), raw.size(), opts.get(), q.get());
  FF_ASSIGN_OR_RETURN(EventPtr ev, AwaitAdmin(q.get(), RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT,
                                              "kafka describe topic configs"));
  const rd_kafka_DescribeConfigs_result_t* res = rd_kafka_event_DescribeConfigs_result(ev.get());
  size_t cnt = 0;
  const rd_kafka_ConfigResource_t** resources = rd_kafka_DescribeConfigs_result_resources(res, &cnt);
  std::map<std::string, std::map<std::string, std::string>> out;
  for (size_t i = 0; i < cnt; ++i) {
    const std::string name = rd_kafka_ConfigResource_name(resources[i]);
    const rd_kafka_resp_err_t err = rd_kafka_ConfigResource_error(resources[i]);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
      return StatusFromErr(err, "kafka describe configs of " + name,
                           rd_kafka_ConfigResource_error_string(resources[i]));
    size_t n = 0;
    const rd_kafka_ConfigEntry_t** entries = rd_kafka_ConfigResource_configs(resources[i], &n);
    auto& m = out[name];
    for (size_t e = 0; e < n; ++e) {
      const char* value = rd_kafka_ConfigEntry_value(entries[e]);
      m[rd_kafka_ConfigEntry_name(entries[e])] = value != nullptr ? value : "";
    }
  }
  return out;
}

Status KafkaBus::EnsureTopics(const std::vector<TopicSpec>& topics) {
  if (topics.empty()) return Status::Ok();
  FF_RETURN_IF_ERROR(Ping());

  // 1. Create all of them in one request; "already exists" is checked below.
  std::vector<NewTopicPtr> owned;
  std::vector<rd_kafka_NewTopic_t*> raw;
  for (const auto& spec : topics) {
    if (spec.name.empty() || spec.partitions < 1 || spec.replication_factor < 1)
      return Status::Permanent(Code::kInvalidArgument, "kafka: invalid topic spec '" + spec.name + "' (" +
                                                           std::to_string(spec.partitions) +
                                                           " partitions, replication " +
                                                           std::to_string(spec.replication_factor) + ")");
    char errstr[256];
    NewTopicPtr nt(rd_kafka_NewTopic_new(spec.name.c_str(), spec.partitions, spec.replication_factor, errstr,
                                         sizeof errstr));
    if (!nt) return Status::Permanent(Code::kInvalidArgument, "kafka topic " + spec.name + ": " + errstr);
    Props configs = {
        {"cleanup.policy", spec.compacted ? "compact" : "delete"},
        {"retention.ms", std::to_string(spec.retention_ms)},
        {"max.message.bytes", std::to_string(spec.max_message_bytes)},
    };
    if (spec.replication_factor >= 3) configs.push_back({"min.insync.replicas", "2"});
    for (const auto& [k, v] : configs) {
      const rd_kafka_resp_err_t err = rd_kafka_NewTopic_set_config(nt.get(), k.c_str(), v.c_str());
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        return StatusFromErr(err, "kafka topic " + spec.name + " config " + k);
    }
    raw.push_back(nt.get());
    owned.push_back(std::move(nt));
  }
  FF_RETURN_IF_ERROR(RetryTransient(options_.operation_timeout, [&]() -> Status {
    FF_ASSIGN_OR_RETURN(AdminOptionsPtr opts, AdminOptions(RD_KAFKA_ADMIN_OP_CREATETOPICS, true));
    QueuePtr q(rd_kafka_queue_new(admin_.get()));
    rd_kafka_CreateTopics(admin_.get(), raw.data(), raw.size(), opts.get(), q.get());
    FF_ASSIGN_OR_RETURN(EventPtr ev,
                        AwaitAdmin(q.get(), RD_KAFKA_EVENT_CREATETOPICS_RESULT, "kafka create topics"));
    size_t cnt = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev.get()), &cnt);
    for (size_t i = 0; i < cnt; ++i) {
      const rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
      const std::string name = rd_kafka_topic_result_name(results[i]);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        FF_LOG_INFO(admin_ctx_->log, "created kafka topic {}", name);
        continue;
      }
      if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) continue;
      const char* detail = rd_kafka_topic_result_error_string(results[i]);
      return StatusFromErr(err, "kafka create topic " + name, detail != nullptr ? detail : "");
    }
    return Status::Ok();
  }));

  // 2. Wait until metadata shows every topic with a leader for each partition.
  const auto deadline = SteadyClock::now() + options_.operation_timeout;
  std::map<std::string, TopicInfo> infos;
  for (const auto& spec : topics) {
    while (true) {
      Result<TopicInfo> info = DescribeTopic(spec.name);
      if (info.ok() && info->all_leaders) {
        infos[spec.name] = *info;
        break;
      }
      if (SteadyClock::now() >= deadline) {
        if (!info.ok()) return info.status().WithContext("kafka topic " + spec.name + " not ready");
        return Status::Retryable(Code::kUnavailable,
                                 "kafka topic " + spec.name + " has partitions without a leader");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  // 3. Compare with the specs.
  std::vector<std::string> names;
  for (const auto& spec : topics) names.push_back(spec.name);
  FF_ASSIGN_OR_RETURN(auto configs,
                      RetryTransient(
                          options_.operation_timeout, [&] { return DescribeTopicConfigs(names); },
                          /*not_found_too=*/true));
  std::vector<std::string> diffs;
  for (const auto& spec : topics) {
    const TopicInfo& info = infos[spec.name];
    if (info.partitions != spec.partitions)
      diffs.push_back(spec.name + " has " + std::to_string(info.partitions) +
                      " partitions, the catalogue wants " + std::to_string(spec.partitions));
    if (info.replication < spec.replication_factor)
      diffs.push_back(spec.name + " has replication factor " + std::to_string(info.replication) +
                      ", the catalogue wants at least " + std::to_string(spec.replication_factor));
    const auto& c = configs[spec.name];
    auto get = [&](const char* key) -> std::string {
      auto it = c.find(key);
      return it == c.end() ? "" : it->second;
    };
    const std::string want_policy = spec.compacted ? "compact" : "delete";
    if (get("cleanup.policy") != want_policy)
      diffs.push_back(spec.name + " has cleanup.policy=" + get("cleanup.policy") + ", the catalogue wants " +
                      want_policy);
    const std::string mmb = get("max.message.bytes");
    if (!mmb.empty() && std::stoll(mmb) < spec.max_message_bytes)
      diffs.push_back(spec.name + " has max.message.bytes=" + mmb + ", the catalogue wants at least " +
                      std::to_string(spec.max_message_bytes));
    const std::string retention = get("retention.ms");
    if (!retention.empty() && retention != std::to_string(spec.retention_ms)) {
      FF_LOG_INFO(admin_ctx_->log, "kafka topic {} has retention.ms={} (catalogue: {}); keeping it",
                  spec.name, retention, spec.retention_ms);
    }
  }
  if (!diffs.empty()) {
    std::string msg = "kafka topics differ from the catalogue: ";
    for (size_t i = 0; i < diffs.size(); ++i) msg += (i ? "; " : "") + diffs[i];
    return Status::Permanent(Code::kFailedPrecondition, msg);
  }
  return Status::Ok();
}

// ---- KafkaProducer ---------------------------------------------------------------------------

Status KafkaProducer::Send(std::span<const Message> messages, DeliveryBatch& batch) {
  FF_RETURN_IF_ERROR(SendOnce(messages, batch));
  // Records acknowledged without an offset (see DeliveryCallback) are sent again, a few times.
  for (int round = 0; round < 3; ++round) {
    std::vector<size_t> again;
    for (size_t i = 0; i < batch.no_offset.size(); ++i)
      if (batch.no_offset[i] != 0) again.push_back(i);
    if (again.empty()) break;
    FF_LOG_WARN(ctx_->log, "producer {}: {} record(s) acknowledged without an offset; sending them again",
                ctx_->client_id, again.size());
    bus_->metrics().resent.Increment(static_cast<double>(again.size()));
    std::vector<Message> retry;
    retry.reserve(again.size());
    for (size_t i : again) retry.push_back(messages[i]);
    DeliveryBatch second;
    FF_RETURN_IF_ERROR(SendOnce(retry, second));
    for (size_t k = 0; k < again.size(); ++k) {
      batch.statuses[again[k]] = std::move(second.statuses[k]);
      batch.positions[again[k]] = second.positions[k];
      batch.no_offset[again[k]] = second.no_offset[k];
    }
  }
  return Status::Ok();
}

Status KafkaProducer::SendOnce(std::span<const Message> messages, DeliveryBatch& batch) {
  if (ctx_->fatal) return FatalStatusOf(handle_.get(), "producer " + ctx_->client_id);
  const auto start = SteadyClock::now();
  const auto deadline = start + timeout_;
  batch.statuses.assign(messages.size(), Status::Ok());
  batch.positions.assign(messages.size(), Position{});
  batch.no_offset.assign(messages.size(), 0);
  std::vector<DeliverySlot> slots(messages.size());
  batch.pending.store(messages.size(), std::memory_order_relaxed);
  Status enqueue_error;
  size_t enqueued = 0;
  const std::string* warmed = nullptr;  // topic of the previous message: warm once per run of a topic
  for (; enqueued < messages.size(); ++enqueued) {
    const Message& m = messages[enqueued];
    if (warmed == nullptr || *warmed != m.topic) {
      warmer_.Warm(handle_.get(), m.topic, timeout_);
      warmed = &m.topic;
    }
    Result<int32_t> partition = bus_->PartitionFor(m);
    if (!partition.ok()) {
      enqueue_error = partition.status();
      break;
    }
    slots[enqueued] = DeliverySlot{&batch, enqueued};
    Status s = Enqueue(handle_.get(), m, *partition, &slots[enqueued], deadline);
    if (!s.ok()) {
      enqueue_error = s;
      break;
    }
  }
  // Records never enqueued get no report: settle them here.
  batch.Settle(messages.size() - enqueued);
  // Wait for every enqueued record (librdkafka reports each within message.timeout.ms) by
  // serving the report queue on this thread, as rd_kafka_flush does: a report then wakes its
  // caller directly instead of going through the poller thread first, which costs a thread
  // hand-off per record (milliseconds on a busy machine). Another waiting thread may serve
  // this batch's reports; the short poll slice bounds how late this thread notices.
  waiting_.fetch_add(1, std::memory_order_relaxed);
  while (true) {
    {
      std::lock_guard<std::mutex> lock(batch.mu);
      if (batch.done) break;
    }
    rd_kafka_poll(handle_.get(), 1);
  }
  waiting_.fetch_sub(1, std::memory_order_relaxed);
  auto& metrics = bus_->metrics();
  metrics.produce_seconds.Observe(std::chrono::duration<double>(SteadyClock::now() - start).count());
  size_t ok = 0;
  for (const auto& s : batch.statuses) ok += s.ok() ? 1 : 0;
  metrics.produced_ok.Increment(static_cast<double>(ok));
  metrics.produced_error.Increment(static_cast<double>(messages.size() - ok));
  return enqueue_error;
}

// ---- KafkaConsumer ---------------------------------------------------------------------------

PartitionListPtr ToList(const std::vector<TopicPartition>& tps, int64_t offset = RD_KAFKA_OFFSET_INVALID) {
  PartitionListPtr list = NewPartitionList(static_cast<int>(tps.size()));
  for (const auto& tp : tps)
    rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition)->offset = offset;
  return list;
}

Status KafkaConsumer::CheckAssigned(const std::vector<TopicPartition>& partitions,
                                    std::string_view what) const {
  for (const auto& tp : partitions) {
    if (!assignment_.contains(tp))
      return Status::Permanent(Code::kFailedPrecondition,
                               std::string(what) + ": " + TpName(tp.topic, tp.partition) +
                                   " is not assigned to consumer " + ctx_->client_id);
  }
  return Status::Ok();
}

Status KafkaConsumer::Assign(const std::vector<TopicPartition>& partitions) {
  FF_RETURN_IF_ERROR(CheckFatal("assign"));
  const std::set<TopicPartition> wanted(partitions.begin(), partitions.end());
  std::vector<TopicPartition> added, removed;
  for (const auto& tp : wanted) {
    if (!assignment_.contains(tp)) added.push_back(tp);
  }
  for (const auto& tp : assignment_) {
    if (!wanted.contains(tp)) removed.push_back(tp);
  }
  // Unknown topics or partitions are reported here rather than as later Poll errors.
  for (const auto& tp : added) {
    Result<int32_t> n = bus_->CachedPartitionCount(tp.topic);
    if (n.ok() && tp.partition >= *n) n = bus_->PartitionCount(tp.topic);
    if (!n.ok()) return n.status().WithContext("assign");
    if (tp.partition < 0 || tp.partition >= *n)
      return Status::Permanent(Code::kNotFound, "assign: kafka topic " + tp.topic + " has " +
                                                    std::to_string(*n) + " partitions, no " +
                                                    std::to_string(tp.partition));
  }
  if (!removed.empty()) {
    PartitionListPtr list = ToList(removed);
    ErrorPtr e(rd_kafka_incremental_unassign(handle_.get(), list.get()));
    if (e) return StatusFromError(e.get(), "kafka consumer " + ctx_->client_id + ": unassign");
    for (const auto& tp : removed) assignment_.erase(tp);
  }
  if (!added.empty()) {
    // OFFSET_INVALID: start at the group's committed offset, else auto.offset.reset (earliest).
    PartitionListPtr list = ToList(added, RD_KAFKA_OFFSET_INVALID);
    ErrorPtr e(rd_kafka_incremental_assign(handle_.get(), list.get()));
    if (e) return StatusFromError(e.get(), "kafka consumer " + ctx_->client_id + ": assign");
    assignment_.insert(added.begin(), added.end());
  }
  return Status::Ok();
}

void KafkaConsumer::OnStatistics(std::string_view json) {
  if (!committed_here_) return;
  auto lags = ParseConsumerLag(json);
  if (!lags.ok()) {
    FF_LOG_DEBUG(ctx_->log, "consumer {}: statistics: {}", ctx_->client_id, lags.status().ToString());
    return;
  }
  bus_->lag_board().Update(reinterpret_cast<uintptr_t>(this), options_.group, *lags, assignment_);
}

void KafkaConsumer::ForgetStatistics() { bus_->lag_board().Forget(reinterpret_cast<uintptr_t>(this)); }

Result<std::vector<Record>> KafkaConsumer::Poll(std::chrono::milliseconds timeout, size_t max_records) {
  if (pending_error_) {
    Status s = std::move(*pending_error_);
    pending_error_.reset();
    return s;
  }
  FF_RETURN_IF_ERROR(CheckFatal("poll"));
  std::vector<Record> out;
  const auto deadline = SteadyClock::now() + timeout;
  while (out.size() < max_records) {
    const int wait_ms = out.empty() ? RemainingMs(deadline) : 0;
    MessagePtr m(rd_kafka_consumer_poll(handle_.get(), wait_ms));
    if (!m) {
      if (out.empty() && SteadyClock::now() < deadline) continue;
      break;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
      std::string what = "kafka consumer " + ctx_->client_id;
      if (m->rkt != nullptr) what += " " + TpName(rd_kafka_topic_name(m->rkt), m->partition);
      if (m->err == RD_KAFKA_RESP_ERR_NOT_COORDINATOR ||
          m->err == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE ||
          m->err == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS)
        RefetchUnpositioned();
      Status s = m->err == RD_KAFKA_RESP_ERR__FATAL
                     ? FatalStatusOf(handle_.get(), what)
                     : StatusFromErr(m->err, what, rd_kafka_message_errstr(m.get()));
      if (out.empty()) return s;
      pending_error_ = std::move(s);
      break;
    }
    Record r;
    r.topic = rd_kafka_topic_name(m->rkt);
    r.partition = m->partition;
    r.offset = m->offset;
    if (m->key != nullptr) r.key.assign(static_cast<const char*>(m->key), m->key_len);
    if (m->payload != nullptr) r.value.assign(static_cast<const char*>(m->payload), m->len);
    rd_kafka_timestamp_type_t ts_type;
    r.timestamp_ms = rd_kafka_message_timestamp(m.get(), &ts_type);
    rd_kafka_headers_t* hdrs = nullptr;  // owned by the message
    if (rd_kafka_message_headers(m.get(), &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs != nullptr) {
      const char* name = nullptr;
      const void* value = nullptr;
      size_t size = 0;
      for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
           ++i) {
        Header h;
        h.key = name;
        if (value != nullptr) h.value.assign(static_cast<const char*>(value), size);
        r.headers.push_back(std::move(h));
      }
    }
    out.push_back(std::move(r));
  }
  bus_->metrics().consumed.Increment(static_cast<double>(out.size()));
  return out;
}

void KafkaConsumer::RefetchUnpositioned() {
  if (assignment_.empty()) return;
  PartitionListPtr all = ToList({assignment_.begin(), assignment_.end()});
  if (rd_kafka_position(handle_.get(), all.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
  std::vector<TopicPartition> stuck;
  for (int i = 0; i < all->cnt; ++i)
    if (all->elems[i].offset < 0) stuck.push_back({all->elems[i].topic, all->elems[i].partition});
  if (stuck.empty()) return;
  PartitionListPtr list = ToList(stuck);
  ErrorPtr e(rd_kafka_incremental_unassign(handle_.get(), list.get()));
  if (!e) {
    PartitionListPtr again = ToList(stuck, RD_KAFKA_OFFSET_INVALID);
    e.reset(rd_kafka_incremental_assign(handle_.get(), again.get()));
  }
  if (e) {
    FF_LOG_WARN(ctx_->log,
                "consumer {}: re-assigning {} partition(s) after a committed-offset fetch failure: {}",
                ctx_->client_id, stuck.size(), rd_kafka_error_string(e.get()));
  } else {
    FF_LOG_INFO(ctx_->log, "consumer {}: committed-offset fetch failed; asked again for {} partition(s)",
                ctx_->client_id, stuck.size());
  }
}

Status KafkaConsumer::Commit(const std::vector<TopicPartitionOffset>& offsets) {
  if (offsets.empty()) return Status::Ok();
  FF_RETURN_IF_ERROR(CheckFatal("commit"));
  PartitionListPtr list = NewPartitionList(static_cast<int>(offsets.size()));
  for (const auto& o : offsets)
    rd_kafka_topic_partition_list_add(list.get(), o.tp.topic.c_str(), o.tp.partition)->offset = o.offset;
  const std::string what = "kafka commit for group " + options_.group;
  // Same offsets again after a transient error (coordinator moving or loading) is harmless.
  Status s = RetryTransient(timeout_, [&]() -> Status {
    FF_RETURN_IF_ERROR(StatusFromErr(rd_kafka_commit(handle_.get(), list.get(), 0), what));
    return FirstPartitionError(list.get(), what);
  });
  if (s.code() == Code::kFailedPrecondition) {
    s = Status::Permanent(Code::kFailedPrecondition,
                          s.message() + " (is a subscribing consumer using group " + options_.group +
                              "? manually assigned consumers need a group of their own)");
  }
  (s.ok() ? bus_->metrics().commits_ok : bus_->metrics().commits_error).Increment();
  if (s.ok()) committed_here_ = true;
  return s;
}

Result<std::optional<int64_t>> KafkaConsumer::Committed(const TopicPartition& tp) {
  FF_RETURN_IF_ERROR(CheckFatal("committed"));
  if (options_.read_committed) {
    // Through the admin API without require_stable: a read_committed consumer's own OffsetFetch
    // (rd_kafka_committed) blocks while a transaction with offsets for the partition is open.
    return bus_->CommittedOffset(options_.group, tp);
  }
  // Through this consumer's own group coordinator. librdkafka 2.0.2's admin OffsetFetch can
  // crash (NULL consumer group) when the broker answers NOT_COORDINATOR or "coordinator load in
  // progress", as a freshly started broker does; the consumer's own request handles that.
  PartitionListPtr list = ToList({tp});
  FF_RETURN_IF_ERROR(StatusFromErr(rd_kafka_committed(handle_.get(), list.get(), ToMs(timeout_)),
                                   "kafka committed " + TpName(tp.topic, tp.partition)));
  FF_RETURN_IF_ERROR(FirstPartitionError(list.get(), "kafka committed"));
  const int64_t offset = list->elems[0].offset;
  if (offset < 0) return std::optional<int64_t>();
  return std::optional<int64_t>(offset);
}

Status KafkaConsumer::Seek(const TopicPartition& tp, int64_t offset) {
  FF_RETURN_IF_ERROR(CheckFatal("seek"));
  FF_RETURN_IF_ERROR(CheckAssigned({tp}, "seek"));
  if (offset < 0) return Status::Permanent(Code::kInvalidArgument, "seek: negative offset");
  PartitionListPtr list = ToList({tp}, offset);
  ErrorPtr e(rd_kafka_seek_partitions(handle_.get(), list.get(), ToMs(timeout_)));
  if (e) return StatusFromError(e.get(), "kafka seek " + TpName(tp.topic, tp.partition));
  return FirstPartitionError(list.get(), "kafka seek");
}

Status KafkaConsumer::Pause(const std::vector<TopicPartition>& partitions) {
  FF_RETURN_IF_ERROR(CheckAssigned(partitions, "pause"));
  PartitionListPtr list = ToList(partitions);
  FF_RETURN_IF_ERROR(StatusFromErr(rd_kafka_pause_partitions(handle_.get(), list.get()), "kafka pause"));
  return FirstPartitionError(list.get(), "kafka pause");
}

Status KafkaConsumer::Resume(const std::vector<TopicPartition>& partitions) {
  FF_RETURN_IF_ERROR(CheckAssigned(partitions, "resume"));
  PartitionListPtr list = ToList(partitions);
  FF_RETURN_IF_ERROR(StatusFromErr(rd_kafka_resume_partitions(handle_.get(), list.get()), "kafka resume"));
  return FirstPartitionError(list.get(), "kafka resume");
}

Result<int64_t> KafkaConsumer::EndOffset(const TopicPartition& tp) {
  FF_RETURN_IF_ERROR(CheckFatal("end offset"));
  // An unknown topic would otherwise only time out.
  FF_ASSIGN_OR_RETURN(int32_t n, bus_->CachedPartitionCount(tp.topic));
  if (tp.partition < 0 || tp.partition >= n)
    return Status::Permanent(Code::kNotFound, "end offset: kafka topic " + tp.topic + " has " +
                                                  std::to_string(n) + " partitions, no " +
                                                  std::to_string(tp.partition));
  // The partition exists (checked above): "unknown" here means this client's or the leader's
  // metadata is behind, so it is retried too.
  return RetryTransient(
      timeout_,
      [&]() -> Result<int64_t> {
        int64_t low = 0, high = 0;
        const rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
            handle_.get(), tp.topic.c_str(), tp.partition, &low, &high, ToMs(timeout_));
        FF_RETURN_IF_ERROR(StatusFromErr(err, "kafka end offset of " + TpName(tp.topic, tp.partition)));
        return high;
      },
      /*not_found_too=*/true);
}

// ---- KafkaTransactionalProducer ------------------------------------------------------------------

template <typename Call>
Status KafkaTransactionalProducer::Run(std::string_view what, Call call) {
  if (dead_) return *dead_;
  const auto deadline = SteadyClock::now() + timeout_;
  const std::string context = "kafka transactional producer " + id_ + ": " + std::string(what);
  while (true) {
    const int ms = std::max(1000, RemainingMs(deadline));
    ErrorPtr e(call(ms));
    rd_kafka_poll(handle_.get(), 0);  // serve error/log callbacks
    if (!e) return Status::Ok();
    Status s = StatusFromError(e.get(), context);
    if (s.fatal()) {
      FF_LOG_ERROR(ctx_->log, "{}", s.ToString());
      return Poisoned(std::move(s));
    }
    const bool retriable =
        rd_kafka_error_is_retriable(e.get()) && !rd_kafka_error_txn_requires_abort(e.get());
    if (!retriable || SteadyClock::now() >= deadline) return s;
    FF_LOG_DEBUG(ctx_->log, "{} (retrying)", s.ToString());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

Status KafkaTransactionalProducer::Init() {
  Status s = Run("init_transactions", [&](int ms) { return rd_kafka_init_transactions(handle_.get(), ms); });
  if (s.code() == Code::kTimeout) {
    return Status::Retryable(Code::kUnavailable,
                             s.message() + " (is a Kafka broker reachable at " + bus_->options().bootstrap +
                                 " with transaction.state.log settings that fit the cluster?)");
  }
  return s;
}

Status KafkaTransactionalProducer::Begin() {
  if (dead_) return *dead_;
  ErrorPtr e(rd_kafka_begin_transaction(handle_.get()));
  if (e) return Poisoned(StatusFromError(e.get(), "kafka transactional producer " + id_ + ": begin"));
  in_transaction_ = true;
  return Status::Ok();
}

Status KafkaTransactionalProducer::Send(const Message& message) {
  if (dead_) return *dead_;
  FF_ASSIGN_OR_RETURN(int32_t partition, bus_->PartitionFor(message));
  warmer_.Warm(handle_.get(), message.topic, timeout_);
  Status s = Enqueue(handle_.get(), message, partition, nullptr, SteadyClock::now() + timeout_);
  rd_kafka_poll(handle_.get(), 0);
  return Poisoned(std::move(s));
}

Status KafkaTransactionalProducer::SendOffsets(const std::string& group,
                                               const std::vector<TopicPartitionOffset>& offsets) {
  if (offsets.empty()) return Status::Ok();
  PartitionListPtr list = NewPartitionList(static_cast<int>(offsets.size()));
  for (const auto& o : offsets)
    rd_kafka_topic_partition_list_add(list.get(), o.tp.topic.c_str(), o.tp.partition)->offset = o.offset;
  // Manually assigned consumers have no group generation: metadata from the group id alone.
  GroupMetadataPtr md(rd_kafka_consumer_group_metadata_new(group.c_str()));
  return Run("send_offsets_to_transaction(" + group + ")", [&](int ms) {
    return rd_kafka_send_offsets_to_transaction(handle_.get(), list.get(), md.get(), ms);
  });
}

Status KafkaTransactionalProducer::Commit() {
  Status s = Run("commit", [&](int ms) { return rd_kafka_commit_transaction(handle_.get(), ms); });
  auto& metrics = bus_->metrics();
  if (s.ok()) {
    in_transaction_ = false;
    metrics.txn_committed.Increment();
  } else {
    metrics.txn_failed.Increment();
  }
  return s;
}

Status KafkaTransactionalProducer::Abort() {
  Status s = Run("abort", [&](int ms) { return rd_kafka_abort_transaction(handle_.get(), ms); });
  if (s.ok()) {
    in_transaction_ = false;
    bus_->metrics().txn_aborted.Increment();
  }
  return s;
}

}  // namespace

KafkaBusOptions KafkaBusOptionsFromConfig(const Config& config) {
  KafkaBusOptions options;
  options.bootstrap = config.kafka_bootstrap;
  options.properties = config.kafka_properties;
  options.properties.erase("bootstrap");  // the typed key, not a librdkafka property
  return options;
}

Result<std::unique_ptr<Bus>> OpenKafkaBus(const KafkaBusOptions& options) {
  if (options.bootstrap.empty())
    return Status::Permanent(Code::kInvalidArgument, "kafka: empty bootstrap servers");
  auto bus = std::make_unique<KafkaBus>(options);
  FF_RETURN_IF_ERROR(bus->Start());
  return std::unique_ptr<Bus>(std::move(bus));
}

}  // namespace faxflow::bus
