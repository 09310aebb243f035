// Health of one faxflow process: what /healthz and /readyz answer and what Prometheus sees.
//
// /healthz (alive) answers 200 as long as the HTTP server runs. /readyz (ready) runs every
// readiness check registered here: the pipeline registers "topics" (every catalogue topic exists
// on the bus), "blob_server" (the shared blob server answers) and "imaging" (the worker did not
// stop on a fatal error); other components add their own (e.g. "claims": this worker holds the
// claims it needs) with AddReadinessCheck. Health is the process's Heartbeats
// (common/heartbeat.h): every worker loop registers a Heartbeat and beats on each turn. For each
// component the refresh exports faxflow_worker_heartbeat_age_seconds{component} (the loop that
// beat least recently), faxflow_worker_heartbeat_stall_threshold_seconds{component} and
// faxflow_heartbeat_timestamp_seconds{component}; the built-in readiness check "heartbeats" fails
// while any loop has not beaten for longer than its threshold (SetStallThreshold, config
// health.stall_seconds; 0 turns the check off), so a hung loop is told from a dead process and
// /readyz says which. Beat("name") records a one-off beat of a component without a loop; Health
// itself beats "process" on every refresh.
//
// Lifecycle: construct, add checks, Start() (a refresh thread that evaluates the checks every
// `interval` and sets faxflow_process_ready / faxflow_readiness_check_ok), Stop() joins it.
// Checks may be added at any time. Threading: every method is thread-safe; a check runs on the
// caller's thread (HTTP handler or refresh thread), so checks must be thread-safe and quick.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/heartbeat.h"
#include "common/status.h"
#include "monitoring/metrics.h"

namespace faxflow::monitoring {

class Health final : public Heartbeats {
 public:
  using Check = std::function<Status()>;

  Health(MetricsRegistry& registry, Clock& clock);
  ~Health() override;
  Health(const Health&) = delete;
  Health& operator=(const Health&) = delete;

  // Registers (or replaces) a named readiness check. `name` is a short fixed word (a label value).
  void AddReadinessCheck(const std::string& name, Check check);
  void RemoveReadinessCheck(const std::string& name);
  // Records that `component`'s loop is alive now. `component` is a short fixed word.
  void Beat(std::string_view component);

  // Heartbeats: a handle for one loop of `component` (see common/heartbeat.h). Handles may
  // outlive this Health (they then beat into nothing).
  std::unique_ptr<Heartbeat> Register(std::string_view component, std::chrono::milliseconds min_stall =
                                                                      std::chrono::milliseconds(0)) override;
  // A loop that has not beaten for max(threshold, its min_stall) is stalled; 0: never (default 120 s).
  void SetStallThreshold(std::chrono::milliseconds threshold);
  // The "heartbeats" readiness check alone: Ok, or which components stalled and for how long.
  // Also refreshes the heartbeat gauges.
  Status CheckHeartbeats();

  struct Result {
    std::string name;
    Status status;
  };
  // Runs every check now and updates the gauges. Ok when all pass; otherwise a Status naming the
  // failing checks (what /readyz prints with 503).
  Status Ready();
  std::vector<Result> RunChecks();

  Status Start(std::chrono::milliseconds interval = std::chrono::seconds(1));
  void Stop();

 private:
  struct Loops;  // the registered loops, shared with their handles
  class LoopBeat;

  HealthMetrics metrics_;
  Clock& clock_;
  std::shared_ptr<Loops> loops_;
  std::mutex mu_;  // guards checks_, beat_gauges_ and loop_components_
  std::map<std::string, Check> checks_;
  std::map<std::string, prometheus::Gauge*, std::less<>> beat_gauges_;
  std::set<std::string> loop_components_;  // with age gauges exported
  std::mutex run_mu_;                      // guards stop_ and the refresh thread
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace faxflow::monitoring
