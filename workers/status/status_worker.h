// The status worker materialises fax status from the bus: it consumes fax.submissions and
// fax.events (group faxflow-status) and applies every record to the StatusStore, then commits.
// Application is idempotent, so at-least-once consumption is enough. A record that does not
// decode goes to the dead-letter topic with the reason; nothing stops the stream.
//
// Lifecycle: Start() spawns one thread; Stop() asks it to finish the current batch, commit and
// return. Threading: the store and bus are shared and thread-safe; the consumer is owned by the
// worker thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include "common/clock.h"
#include "common/heartbeat.h"
#include "common/status.h"
#include "storage/status_store.h"
#include "topics/bus.h"
#include "topics/catalogue.h"

namespace faxflow {

struct StatusWorkerMetrics {
  explicit StatusWorkerMetrics(prometheus::Registry& registry);
  prometheus::Counter& applied;
  prometheus::Counter& dead_letters;
  prometheus::Counter& errors;
};

class StatusWorker {
 public:
  // `group` holds the committed offsets of this node's store: every gateway node has its own
  // status store fed from every partition, so nodes of one deployment need distinct groups
  // (a shared group would let one node's commits skip records another node never applied).
  StatusWorker(bus::Bus& bus, StatusStore& store, prometheus::Registry& registry, Clock& clock,
               std::string group = std::string(bus::group::kStatus));
  ~StatusWorker();
  StatusWorker(const StatusWorker&) = delete;
  StatusWorker& operator=(const StatusWorker&) = delete;

  Status Start();
  void Stop();

  // Applies one record (exposed for tests). Undecodable records are dead-lettered.
  Status Handle(const bus::Record& record);

  // Liveness of this component's loop ("status", common/heartbeat.h); call before Start().
  // Null (the default): none. Must outlive the loop.
  void SetHeartbeats(Heartbeats* heartbeats) { heartbeats_ = heartbeats; }

 private:
  Heartbeats* heartbeats_ = nullptr;
  void Run();

  bus::Bus& bus_;
  StatusStore& store_;
  Clock& clock_;
  std::string group_;
  StatusWorkerMetrics metrics_;
  std::unique_ptr<bus::Consumer> consumer_;
  std::unique_ptr<bus::Producer> dlq_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace faxflow
