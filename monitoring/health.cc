#include "monitoring/health.h"

#include <atomic>
#include <cstdio>

#include "common/log.h"

namespace faxflow::monitoring {
namespace {

double UnixSeconds(const Clock& clock) { return static_cast<double>(clock.NowMillis()) / 1000.0; }

int64_t MonoMillis(const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock.Monotonic().time_since_epoch()).count();
}

}  // namespace

// The loops registered through Register(); shared with their handles, which may outlive Health.
struct Health::Loops {
  struct Loop {
    std::string component;
    int64_t min_stall_ms = 0;
    std::atomic<int64_t> last_ms{0};  // Clock::Monotonic in ms
  };
  explicit Loops(Clock& c) : clock(c) {}
  Clock& clock;   // outlives the pipeline and every worker
  std::mutex mu;  // guards loops and next_id
  std::map<uint64_t, std::shared_ptr<Loop>> loops;
  uint64_t next_id = 0;
  std::atomic<int64_t> threshold_ms{120000};
};

class Health::LoopBeat final : public Heartbeat {
 public:
  LoopBeat(std::shared_ptr<Loops> loops, std::shared_ptr<Loops::Loop> loop, uint64_t id)
      : loops_(std::move(loops)), loop_(std::move(loop)), id_(id) {}
  ~LoopBeat() override {
    std::lock_guard lock(loops_->mu);
    loops_->loops.erase(id_);
  }
  void Beat() override { loop_->last_ms.store(MonoMillis(loops_->clock), std::memory_order_relaxed); }

 private:
  std::shared_ptr<Loops> loops_;
  std::shared_ptr<Loops::Loop> loop_;
  uint64_t id_;
};

Health::Health(MetricsRegistry& registry, Clock& clock)
    : metrics_(registry), clock_(clock), loops_(std::make_shared<Loops>(clock)) {
  metrics_.start_time.Set(UnixSeconds(clock_));
}

std::unique_ptr<Heartbeat> Health::Register(std::string_view component, std::chrono::milliseconds min_stall) {
  auto loop = std::make_shared<Loops::Loop>();
  loop->component = std::string(component);
  loop->min_stall_ms = min_stall.count();
  loop->last_ms.store(MonoMillis(clock_));
  std::lock_guard lock(loops_->mu);
  const uint64_t id = loops_->next_id++;
  loops_->loops.emplace(id, loop);
  return std::make_unique<LoopBeat>(loops_, std::move(loop), id);
}

void Health::SetStallThreshold(std::chrono::milliseconds threshold) {
  loops_->threshold_ms.store(threshold.count());
}

Status Health::CheckHeartbeats() {
  struct Component {
    int64_t oldest_ms = 0;  // least recent beat
    int64_t threshold_ms = 0;
    bool stalled = false;
  };
  std::map<std::string, Component> components;
  const int64_t threshold = loops_->threshold_ms.load();
  const int64_t now = MonoMillis(clock_);
  {
    std::lock_guard lock(loops_->mu);
    for (const auto& [id, loop] : loops_->loops) {
      const int64_t last = loop->last_ms.load(std::memory_order_relaxed);
      const int64_t limit = threshold > 0 ? std::max(threshold, loop->min_stall_ms) : 0;
      auto [it, fresh] = components.try_emplace(loop->component, Component{last, limit, false});
      Component& c = it->second;
      if (!fresh) {
        c.oldest_ms = std::min(c.oldest_ms, last);
        c.threshold_ms = std::max(c.threshold_ms, limit);
      }
      c.stalled = c.stalled || (limit > 0 && now - last > limit);
    }
  }
  std::string stalled;
  const int64_t wall_ms = clock_.NowMillis();
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, c] : components) {
      const int64_t age = std::max<int64_t>(0, now - c.oldest_ms);
      metrics_.heartbeat_age.Add({{"component", name}}).Set(static_cast<double>(age) / 1000.0);
      metrics_.stall_threshold.Add({{"component", name}}).Set(static_cast<double>(c.threshold_ms) / 1000.0);
      metrics_.heartbeat.Add({{"component", name}}).Set(static_cast<double>(wall_ms - age) / 1000.0);
      if (!c.stalled) continue;
      char buf[160];
      std::snprintf(buf, sizeof buf, "%s%s has not beaten for %.1f s (threshold %.0f s)",
                    stalled.empty() ? "" : ", ", name.c_str(), static_cast<double>(age) / 1000.0,
                    static_cast<double>(c.threshold_ms) / 1000.0);
      stalled += buf;
    }
    // Components whose loops all ended (their worker stopped) leave the age gauges.
    for (auto it = loop_components_.begin(); it != loop_components_.end();) {
      if (components.count(*it) > 0) {
        ++it;
        continue;
      }
      metrics_.heartbeat_age.Remove(&metrics_.heartbeat_age.Add({{"component", *it}}));
      metrics_.stall_threshold.Remove(&metrics_.stall_threshold.Add({{"component", *it}}));
      if (beat_gauges_.count(*it) == 0)
        metrics_.heartbeat.Remove(&metrics_.heartbeat.Add({{"component", *it}}));
      it = loop_components_.erase(it);
    }
    for (const auto& [name, c] : components) loop_components_.insert(name);
  }
  if (stalled.empty()) return Status::Ok();
  return Status::Retryable(Code::kUnavailable, "worker loop stalled: " + stalled);
}

Health::~Health() { Stop(); }

void Health::AddReadinessCheck(const std::string& name, Check check) {
  std::lock_guard lock(mu_);
  checks_[name] = std::move(check);
}

void Health::RemoveReadinessCheck(const std::string& name) {
  std::lock_guard lock(mu_);
  checks_.erase(name);
  metrics_.check_ok.Remove(&metrics_.check_ok.Add({{"check", name}}));
}

void Health::Beat(std::string_view component) {
  prometheus::Gauge* g = nullptr;
  {
    std::lock_guard lock(mu_);
    auto it = beat_gauges_.find(component);
    if (it == beat_gauges_.end())
      it = beat_gauges_
               .emplace(std::string(component),
                        &metrics_.heartbeat.Add({{"component", std::string(component)}}))
               .first;
    g = it->second;
  }
  g->Set(UnixSeconds(clock_));
}

std::vector<Health::Result> Health::RunChecks() {
  std::vector<std::pair<std::string, Check>> checks;
  {
    std::lock_guard lock(mu_);
    checks.assign(checks_.begin(), checks_.end());
  }
  // Built in: every registered worker loop beats (a no-op pass while none is registered).
  checks.emplace_back("heartbeats", [this] { return CheckHeartbeats(); });
  std::vector<Result> out;
  bool all_ok = true;
  for (auto& [name, check] : checks) {
    Status s = check ? check() : Status::Ok();
    metrics_.check_ok.Add({{"check", name}}).Set(s.ok() ? 1 : 0);
    all_ok = all_ok && s.ok();
    out.push_back({name, std::move(s)});
  }
  metrics_.ready.Set(all_ok ? 1 : 0);
  return out;
}

Status Health::Ready() {
  std::string failing;
  bool retryable = true;
  for (const auto& r : RunChecks()) {
    if (r.status.ok()) continue;
    if (!failing.empty()) failing += "; ";
    failing += r.name + ": " + r.status.ToString();
    retryable = retryable && r.status.retryable();
  }
  if (failing.empty()) return Status::Ok();
  return retryable ? Status::Retryable(Code::kUnavailable, "not ready: " + failing)
                   : Status::Fatal(Code::kUnavailable, "not ready: " + failing);
}

Status Health::Start(std::chrono::milliseconds interval) {
  std::lock_guard guard(run_mu_);
  if (thread_.joinable()) return Status::Ok();
  stop_ = false;
  thread_ = std::thread([this, interval] {
    auto log = Logger("app");
    std::unique_lock lock(run_mu_);
    while (!stop_) {
      lock.unlock();
      Beat("process");
      Status s = Ready();
      if (!s.ok()) FF_LOG_DEBUG(log, "{}", s.ToString());
      lock.lock();
      cv_.wait_for(lock, interval, [this] { return stop_; });
    }
  });
  return Status::Ok();
}

void Health::Stop() {
  {
    std::lock_guard lock(run_mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace faxflow::monitoring
