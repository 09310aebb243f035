// The modem worker's in-memory job scheduler: which queued job a free channel dials next.
//
// Kafka has no priorities, so the worker consumes fax.jobs into this bounded queue (pausing its
// partitions when it is full) and picks from here:
//   - eligible = not_before_ms reached (send_at or a retry delay), inside the job's time-of-day
//     window, not expired, and its destination has fewer than `max_per_destination` calls in
//     progress (otherwise the job is "blocked", HylaFAX's state B);
//   - among eligible jobs, the highest OutboundJob.priority first (higher value = sooner), then
//     arrival order (FIFO within a priority);
//   - batching: a channel that just finished a call to number N asks for N first
//     (`prefer_destination`); it gets N's next eligible job only if no eligible job of strictly
//     higher priority waits, so jobs to one number go back to back on one line without ever
//     overtaking a more urgent fax.
// Delayed jobs (retries, send_at) stay here without blocking anything behind them; the worker
// keeps their bus offsets uncommitted (at-least-once) while later jobs proceed.
//
// Not thread-safe: the worker guards it with its own mutex. Pure: time comes in as now_ms.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "schemas/job.pb.h"
#include "topics/bus.h"

namespace faxflow::modem {

inline constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

struct SchedJob {
  v1::OutboundJob job;
  bus::TopicPartition tp;  // the record it came from (its offset stays uncommitted until done)
  int64_t offset = -1;
  std::string destination;  // number digits
  int64_t not_before_ms = 0;
  int64_t expires_at_ms = 0;  // 0 = never
  uint64_t seq = 0;           // set by Add: arrival order
  bool companion = false;     // rides another job's call (TakeCompanions): holds no call slot
};

// Time-of-day window checks (SendWindow semantics, see schemas/job.proto).
bool InWindow(const v1::SendWindow& window, int64_t now_ms);
// The next time >= now_ms at which the window is open (now_ms when open).
int64_t NextWindowOpen(const v1::SendWindow& window, int64_t now_ms);
bool HasWindow(const v1::SendWindow& window);

struct SchedulerCounts {
  size_t eligible = 0;
  size_t delayed = 0;  // waiting for not_before or a window
  size_t blocked = 0;  // eligible but the destination is at its call limit
};

class Scheduler {
 public:
  explicit Scheduler(int max_per_destination = 1) : max_per_destination_(max_per_destination) {}

  // False when a job with the same job_id is queued or in progress (an in-memory duplicate).
  bool Add(SchedJob job);
  bool Contains(const std::string& job_id) const { return ids_.count(job_id) > 0; }
  size_t Queued() const { return queue_.size(); }
  size_t InProgress() const { return active_ids_.size(); }

  // The job a free channel should dial now, marked in progress (its destination counts one call
  // more) until Done(). nullopt when nothing is eligible.
  std::optional<SchedJob> TakeNext(int64_t now_ms, std::string_view prefer_destination = {});
  // Several documents in one call: queued jobs to lead's destination that may ride lead's call
  // (taken by TakeNext), at most `max`, in priority/FIFO order. A job joins only if it is
  // ready (send_at, retry delay, window) and `compatible` with lead, and no eligible job to
  // another number has a strictly higher priority than it (so a batch never delays a more
  // urgent fax). Companions are in progress but hold no call slot of the destination.
  std::vector<SchedJob> TakeCompanions(
      const SchedJob& lead, int64_t now_ms, size_t max,
      const std::function<bool(const v1::OutboundJob& lead, const v1::OutboundJob& other)>& compatible);
  // The call of a taken job ended: frees its destination slot; the job leaves the scheduler.
  void Done(const SchedJob& job);
  // The call of a taken job ended and the job waits for another attempt at not_before_ms.
  void Requeue(SchedJob job, int64_t not_before_ms);

  // Removes and returns queued (not in progress) jobs whose expiry passed.
  std::vector<SchedJob> TakeExpired(int64_t now_ms);
  // Removes and returns queued (not in progress) jobs matching `match`.
  std::vector<SchedJob> TakeMatching(const std::function<bool(const v1::OutboundJob&)>& match);
  // Removes every queued job (shutdown); in-progress ones are unaffected.
  std::vector<SchedJob> TakeAll();

  // Earliest time after now_ms at which a queued job may become eligible or expire (kNever).
  int64_t NextChangeMs(int64_t now_ms) const;
  SchedulerCounts Counts(int64_t now_ms) const;
  int ActiveCalls(const std::string& destination) const;

 private:
  struct Key {
    int32_t neg_priority;
    uint64_t seq;
    auto operator<=>(const Key&) const = default;
  };
  bool Ready(const SchedJob& j, int64_t now_ms) const;
  std::vector<SchedJob> TakeMatchingJobs(const std::function<bool(const SchedJob&)>& match);
  static Key KeyOf(const SchedJob& j) { return Key{-j.job.priority(), j.seq}; }

  int max_per_destination_;
  uint64_t next_seq_ = 0;
  std::map<Key, SchedJob> queue_;
  std::set<std::string> ids_;          // queued or in progress
  std::set<std::string> active_ids_;   // in progress
  std::map<std::string, int> active_;  // destination -> calls in progress
};

}  // namespace faxflow::modem
