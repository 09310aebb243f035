// Liveness of worker loops: each loop of a worker holds a Heartbeat and calls Beat() on every turn
// (and during long operations it waits on, e.g. once a second during a call). The process's
// monitoring::Health implements Heartbeats: it exports the age of every component's oldest beat as
// faxflow_worker_heartbeat_age_seconds{component} and /readyz fails while a loop has not beaten for
// longer than its stall threshold (health.stall_seconds), so a hung loop is told from a dead process.
//
// Component names are short fixed words chosen by the code (bounded label values, e.g. "imaging",
// "modem_channel"); several loops of one component (the channels of a modem worker) share one
// series whose age is that of the loop that beat least recently.
//
// Lifecycle: a loop registers when it starts and destroys its handle when it ends (a stopped loop
// is no longer watched). Threading: Beat() is cheap and thread-safe; a handle is used by its loop.
#pragma once

#include <chrono>
#include <memory>
#include <string_view>

namespace faxflow {

class Heartbeat {
 public:
  virtual ~Heartbeat() = default;
  virtual void Beat() = 0;
};

class Heartbeats {
 public:
  virtual ~Heartbeats() = default;
  // A handle for one loop of `component`. `min_stall` raises the stall threshold of this loop
  // above the process default when a turn may legitimately take long (a render of up to its
  // timeout). The loop counts as beaten at registration.
  virtual std::unique_ptr<Heartbeat> Register(
      std::string_view component, std::chrono::milliseconds min_stall = std::chrono::milliseconds(0)) = 0;
};

// A handle that does nothing: for loops of components built without a Heartbeats (tests, tools).
class NoHeartbeat final : public Heartbeat {
 public:
  void Beat() override {}
};

// `heartbeats->Register(...)`, or a NoHeartbeat when `heartbeats` is null.
inline std::unique_ptr<Heartbeat> RegisterHeartbeat(
    Heartbeats* heartbeats, std::string_view component,
    std::chrono::milliseconds min_stall = std::chrono::milliseconds(0)) {
  if (heartbeats == nullptr) return std::make_unique<NoHeartbeat>();
  return heartbeats->Register(component, min_stall);
}

}  // namespace faxflow
