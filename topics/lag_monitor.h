// Queue depth per (topic, consumer group): records produced but not yet committed by the group,
// summed over partitions. Works on any Bus through the contract (EndOffset and Committed), so
// the same gauge means the same on the embedded bus and on Kafka.
//
// Exposed as faxflow_bus_queue_depth{topic, group} (records), and the group's progress as
// faxflow_bus_committed_offset{topic, group} (sum of committed offsets over partitions: it
// only grows while the group makes progress; the stuck-queue alert watches both), and the
// consumer lag faxflow_bus_consumer_lag{topic, group}: Bus::ReportedConsumerLag (librdkafka
// statistics of this process's consumers on Kafka) or, without it, the queue depth. Lifecycle: Start() spawns
// a thread that refreshes every `interval`; Stop() joins it. Threading: the gauges are thread-safe.
#pragma once

#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/heartbeat.h"
#include "topics/bus.h"

namespace faxflow::bus {

class LagMonitor {
 public:
  struct Watch {
    std::string topic;
    std::string group;
  };
  LagMonitor(Bus& bus, std::vector<Watch> watches, prometheus::Registry& registry,
             std::chrono::milliseconds interval = std::chrono::seconds(2));
  ~LagMonitor();
  LagMonitor(const LagMonitor&) = delete;
  LagMonitor& operator=(const LagMonitor&) = delete;

  Status Start();
  void Stop();
  // Recomputes every gauge now; returns the depth of each watch in order.
  Result<std::vector<int64_t>> Refresh();

  // Liveness of this component's loop ("lag_monitor", common/heartbeat.h); call before Start().
  // Null (the default): none. Must outlive the loop.
  void SetHeartbeats(Heartbeats* heartbeats) { heartbeats_ = heartbeats; }

 private:
  Heartbeats* heartbeats_ = nullptr;
  Bus& bus_;
  std::vector<Watch> watches_;
  prometheus::Family<prometheus::Gauge>& family_;
  std::vector<prometheus::Gauge*> gauges_;
  prometheus::Family<prometheus::Gauge>& committed_family_;
  std::vector<prometheus::Gauge*> committed_;
  prometheus::Family<prometheus::Gauge>& lag_family_;  // faxflow_bus_consumer_lag
  std::vector<prometheus::Gauge*> lags_;
  std::vector<std::unique_ptr<Consumer>> consumers_;  // one per watch, never assigned
  std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace faxflow::bus
