// Follows every partition of one topic from its earliest offset and hands each record to an
// apply function: the in-memory views of the gateway's shared tables (API keys, idempotency
// records) are built this way, so every gateway node on Kafka sees the same table, and the
// embedded bus gives the same behaviour in one process.
//
// Lifecycle: Start() reads up to the end offsets found at start (blocks until caught up or the
// timeout) and then keeps following on a background thread; Stop() joins it. WaitApplied() lets a
// writer wait until its own record has been applied here (read-your-writes).
// Threading: `apply` runs on the follower thread only; WaitApplied is thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/heartbeat.h"
#include "common/status.h"
#include "topics/bus.h"

namespace faxflow {

class TopicFollower {
 public:
  using Apply = std::function<void(const bus::Record&)>;
  TopicFollower(bus::Bus& bus, std::string topic, Apply apply);
  ~TopicFollower();
  TopicFollower(const TopicFollower&) = delete;
  TopicFollower& operator=(const TopicFollower&) = delete;

  // Catches up with the topic as it is now (at most `timeout`), then follows it in the background.
  Status Start(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  void Stop();

  // Waits until the record at `offset` of `partition` has been applied. kTimeout otherwise.
  Status WaitApplied(int32_t partition, int64_t offset, std::chrono::milliseconds timeout);

  // Liveness of this component's loops ("follow_<topic>" (e.g. follow_fax_keys); common/heartbeat.h).
  // Call before Start(). Null (the default): none. Must outlive the loops.
  void SetHeartbeats(Heartbeats* heartbeats) { heartbeats_ = heartbeats; }

 private:
  Heartbeats* heartbeats_ = nullptr;
  Result<size_t> PollOnce(std::chrono::milliseconds wait);  // records applied
  void Run();

  bus::Bus& bus_;
  std::string topic_;
  Apply apply_;
  std::unique_ptr<bus::Consumer> consumer_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int32_t, int64_t> next_;  // next offset to apply, per partition
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace faxflow
