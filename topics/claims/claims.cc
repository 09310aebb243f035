#include "topics/claims/claims.h"

#include <unistd.h>

#include <algorithm>

#include "common/log.h"
#include "schemas/load.pb.h"
#include "topics/catalogue.h"
#include "topics/proto_message.h"

namespace faxflow::claims {
namespace {

std::string DefaultWorkerId() {
  char host[256] = {0};
  if (::gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "host");
  return std::string(host) + "-" + std::to_string(::getpid());
}

std::string Join(const std::vector<int32_t>& v) {
  std::string s;
  for (int32_t p : v) s += (s.empty() ? "" : ",") + std::to_string(p);
  return "[" + s + "]";
}

}  // namespace

ClaimsOptions ClaimsOptions::FromConfig(const Config& config) {
  ClaimsOptions o;
  o.worker_id = config.claims_worker_id.empty() ? DefaultWorkerId() : config.claims_worker_id;
  o.heartbeat = std::chrono::milliseconds(config.claims_heartbeat_ms);
  o.expiry = std::chrono::milliseconds(config.claims_expiry_ms);
  o.hysteresis = config.claims_hysteresis;
  o.render_slots = config.imaging_workers > 0 ? static_cast<int>(config.imaging_workers) : 1;
  o.compute_lag = config.imaging_load_weight_lag > 0;
  o.members_topic = std::string(bus::topic::kMembers);
  o.claimed_topic = std::string(bus::topic::kSubmissions);
  o.lag_group = std::string(bus::group::kImaging);
  return o;
}

bool ClaimsEnabled(const Config& config) {
  if (config.claims_mode == "on") return true;
  if (config.claims_mode == "off") return false;
  return config.bus_backend == "kafka" && config.instance_count == 1;
}

ClaimsMember::ClaimsMember(ClaimsOptions options, bus::Bus& bus, std::unique_ptr<LoadSampler> sampler,
                           MetricsRegistry& registry, Clock& clock)
    : options_(std::move(options)),
      bus_(bus),
      sampler_(std::move(sampler)),
      clock_(clock),
      metrics_(registry, options_.worker_id),
      table_(clock, options_.expiry) {}

ClaimsMember::~ClaimsMember() { Stop(); }

void ClaimsMember::SetOnAssignment(OnAssignment cb) { on_assignment_ = std::move(cb); }
void ClaimsMember::SetRendersInFlight(InFlight f) { in_flight_ = std::move(f); }

Status ClaimsMember::Open() {
  if (opened_) return Status::Ok();
  if (options_.publish && !sampler_)
    return Status::Permanent(Code::kInvalidArgument, "claims: a publishing member needs a load sampler");
  FF_ASSIGN_OR_RETURN(partitions_, bus_.PartitionCount(options_.claimed_topic));
  bus::ConsumerOptions co;
  co.group = "faxflow-claims-" + options_.worker_id;  // never commits: always reads from the start
  co.client_id = "claims-" + options_.worker_id;
  co.read_committed = false;
  FF_ASSIGN_OR_RETURN(members_, bus_.NewConsumer(co));
  FF_ASSIGN_OR_RETURN(auto tps, bus::AllPartitions(bus_, options_.members_topic));
  FF_RETURN_IF_ERROR(members_->Assign(tps));
  if (options_.publish) {
    FF_ASSIGN_OR_RETURN(producer_, bus_.NewProducer("claims-" + options_.worker_id));
    if (options_.compute_lag) {
      bus::ConsumerOptions lo;
      lo.group = options_.lag_group;
      lo.client_id = "claims-lag-" + options_.worker_id;
      FF_ASSIGN_OR_RETURN(lag_consumer_, bus_.NewConsumer(lo));  // never assigned: offsets only
    }
  }
  epoch_ = clock_.NowMillis();
  next_heartbeat_ = clock_.Monotonic();
  opened_ = true;
  return Status::Ok();
}

Status ClaimsMember::Start() {
  FF_RETURN_IF_ERROR(Open());
  if (thread_.joinable()) return Status::Permanent(Code::kFailedPrecondition, "claims already started");
  thread_ = std::thread([this] {
    auto log = Logger("claims");
    const auto poll =
        std::min<std::chrono::milliseconds>(std::chrono::milliseconds(200), options_.heartbeat / 2);
    Status last;
    auto beat = RegisterHeartbeat(heartbeats_, "claims");
    while (!stop_.load()) {
      beat->Beat();
      Status s = Step(poll);
      if (!s.ok()) {
        if (s.ToString() != last.ToString()) FF_LOG_WARN(log, "{}: {}", options_.worker_id, s.ToString());
        clock_.SleepUntil(clock_.Monotonic() + poll);
      }
      last = s;
    }
  });
  FF_LOG_INFO(Logger("claims"),
              "claims member {} started: heartbeat {} ms, expiry {} ms, {} partitions of {}",
              options_.worker_id, options_.heartbeat.count(), options_.expiry.count(), partitions_,
              options_.claimed_topic);
  return Status::Ok();
}

void ClaimsMember::Stop() {
  if (stopped_) return;
  stopped_ = true;
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  if (opened_ && producer_) {
    bus::Message m;
    m.topic = options_.members_topic;
    m.key = options_.worker_id;  // empty value: tombstone, the member left
    auto r = producer_->Produce(m);
    if (!r.ok())
      FF_LOG_WARN(Logger("claims"), "{}: leave (tombstone) not published: {}", options_.worker_id,
                  r.status().ToString());
  }
}

std::vector<int32_t> ClaimsMember::Owned() const {
  std::lock_guard lock(mu_);
  return owned_;
}

std::vector<Member> ClaimsMember::Members() const { return table_.Live(); }

std::optional<int32_t> ClaimsMember::PreferredPartition(uint64_t hash) const {
  return claims::PreferredPartition(table_.Live(), partitions_, hash);
}

int64_t ClaimsMember::Lag() {
  if (!lag_consumer_) return 0;
  int64_t lag = 0;
  for (int32_t p : Owned()) {
    bus::TopicPartition tp{options_.claimed_topic, p};
    auto end = lag_consumer_->EndOffset(tp);
    auto committed = lag_consumer_->Committed(tp);
    if (!end.ok() || !committed.ok()) continue;  // a missing figure only lowers the score
    lag += std::max<int64_t>(0, *end - committed->value_or(0));
  }
  return lag;
}

Status ClaimsMember::Heartbeat() {
  LoadInputs in;
  in.renders_in_flight = in_flight_ ? in_flight_() : 0;
  in.render_slots = options_.render_slots;
  in.lag = Lag();
  FF_ASSIGN_OR_RETURN(LoadSample sample, sampler_->Sample(in));
  v1::WorkerLoad load;
  load.set_worker(options_.worker_id);
  load.set_score(sample.score);
  load.set_capacity(sample.capacity);
  for (int32_t p : Owned()) load.add_owned_partitions(p);
  load.set_epoch(epoch_);
  load.set_cpu(sample.cpu);
  load.set_memory(sample.memory);
  load.set_renders_in_flight(sample.renders_in_flight);
  load.set_lag(sample.lag_records);
  load.set_at_ms(clock_.NowMillis());
  const bus::Message m = bus::ProtoMessage(options_.members_topic, options_.worker_id, load);
  FF_RETURN_IF_ERROR(producer_->Produce(m).status().WithContext("claims heartbeat"));
  metrics_.load_score.Set(sample.score);
  metrics_.capacity.Set(sample.capacity);
  return Status::Ok();
}

Status ClaimsMember::Step(std::chrono::milliseconds poll_timeout) {
  if (!opened_) return Status::Permanent(Code::kFailedPrecondition, "claims: Step before Open");
  FF_ASSIGN_OR_RETURN(auto records, members_->Poll(poll_timeout, 1000));
  for (const auto& r : records) {
    if (r.value.empty()) {
      table_.Apply(r.key, nullptr);
      continue;
    }
    v1::WorkerLoad load;
    if (!load.ParseFromString(r.value)) {
      FF_LOG_WARN(Logger("claims"), "{}/{}/{}: undecodable WorkerLoad ignored", r.topic, r.partition,
                  r.offset);
      continue;
    }
    table_.Apply(r.key, &load);
  }
  if (!options_.publish) return Status::Ok();

  Status hb;
  if (clock_.Monotonic() >= next_heartbeat_) {
    next_heartbeat_ = clock_.Monotonic() + options_.heartbeat;
    hb = Heartbeat();
  }
  const auto live = table_.Live();
  metrics_.members.Set(static_cast<double>(live.size()));
  const bool self_live =
      std::any_of(live.begin(), live.end(), [&](const Member& m) { return m.id == options_.worker_id; });
  std::vector<int32_t> mine;
  if (self_live) {
    AssignmentOptions ao;
    ao.hysteresis = options_.hysteresis;
    mine = ComputeAssignment(live, partitions_, ao)[options_.worker_id];
  }
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    if (mine != owned_) {
      owned_ = mine;
      changed = true;
    }
  }
  if (changed) {
    metrics_.changes.Increment();
    metrics_.owned_partitions.Set(static_cast<double>(mine.size()));
    FF_LOG_INFO(Logger("claims"), "{}: owns {} partition(s) {} of {} ({} live member(s))", options_.worker_id,
                mine.size(), Join(mine), options_.claimed_topic, live.size());
    if (on_assignment_) on_assignment_(mine);
    next_heartbeat_ = clock_.Monotonic();  // tell the others at once
    if (hb.ok()) {
      next_heartbeat_ = clock_.Monotonic() + options_.heartbeat;
      hb = Heartbeat();
    }
  }
  return hb;
}

}  // namespace faxflow::claims
