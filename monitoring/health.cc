#include "monitoring/health.h"

#include "common/log.h"

namespace faxflow::monitoring {
namespace {

double UnixSeconds(const Clock& clock) { return static_cast<double>(clock.NowMillis()) / 1000.0; }

}  // namespace

Health::Health(MetricsRegistry& registry, Clock& clock) : metrics_(registry), clock_(clock) {
  metrics_.start_time.Set(UnixSeconds(clock_));
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
