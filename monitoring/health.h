// Health of one faxflow process: what /healthz and /readyz answer and what Prometheus sees.
//
// /healthz (alive) answers 200 as long as the HTTP server runs. /readyz (ready) runs every
// readiness check registered here: the pipeline registers "topics" (every catalogue topic exists
// on the bus), "blob_server" (the shared blob server answers) and "imaging" (the worker did not
// stop on a fatal error); other components add their own (e.g. "claims": this worker holds the
// claims it needs) with AddReadinessCheck. Components with a loop call Beat("name") from it; the
// timestamps are exported as faxflow_heartbeat_timestamp_seconds{component} so an alert can
// tell a hung loop from a dead process. Health itself beats "process" on every refresh.
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
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "monitoring/metrics.h"

namespace faxflow::monitoring {

class Health {
 public:
  using Check = std::function<Status()>;

  Health(MetricsRegistry& registry, Clock& clock);
  ~Health();
  Health(const Health&) = delete;
  Health& operator=(const Health&) = delete;

  // Registers (or replaces) a named readiness check. `name` is a short fixed word (a label value).
  void AddReadinessCheck(const std::string& name, Check check);
  void RemoveReadinessCheck(const std::string& name);
  // Records that `component`'s loop is alive now. `component` is a short fixed word.
  void Beat(std::string_view component);

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
  HealthMetrics metrics_;
  Clock& clock_;
  std::mutex mu_;  // guards checks_ and beat_gauges_
  std::map<std::string, Check> checks_;
  std::map<std::string, prometheus::Gauge*, std::less<>> beat_gauges_;
  std::mutex run_mu_;  // guards stop_ and the refresh thread
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace faxflow::monitoring
