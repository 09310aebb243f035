// Load-weighted partition claims of imaging workers (seed 000, docs/claims.md).
//
// A ClaimsMember is one imaging worker's membership: it
//   - reads the compacted topic fax.members from the beginning into a MemberTable;
//   - publishes a heartbeat {worker, score, capacity, owned partitions, epoch, ...} every
//     `heartbeat` (and right after its owned set changes), keyed by its worker id;
//   - recomputes ComputeAssignment(live members) after every poll and, when its own share
//     changes, calls the OnAssignment callback (the imaging worker follows with SetPartitions:
//     new partitions get their per-partition transactional producer, which fences the previous
//     owner, then resume at the committed offset; released partitions are unassigned);
//   - publishes a tombstone (empty value) on Stop() so the others re-own its partitions at once;
//     after kill -9 they do so when its heartbeats expire (`expiry`).
// A member that does not see its own live heartbeat (just started, or paused longer than the
// expiry, e.g. SIGSTOP) owns nothing until it does: a resumed stale owner releases everything at
// its first step, and anything it still tries to commit is fenced.
// With publish=false it only observes (the gateway's PreferredPartition).
//
// Lifecycle: construct, set callbacks, Start() (spawns one thread), Stop() (joins it). Step()
// runs one iteration synchronously; tests drive it with a ManualClock instead of Start().
// Threading: callbacks run on the claims thread; Owned(), Members(), PreferredPartition() and
// the metric hooks are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/config.h"
#include "common/heartbeat.h"
#include "common/load.h"
#include "common/metrics.h"
#include "common/status.h"
#include "topics/bus.h"
#include "topics/claims/assignment.h"
#include "topics/claims/member_table.h"
#include "topics/claims/metrics.h"

namespace faxflow::claims {

struct ClaimsOptions {
  std::string worker_id;  // member id, unique per worker
  bool publish = true;    // false: observe the table only (no heartbeat, no claims)
  std::chrono::milliseconds heartbeat{1000};
  std::chrono::milliseconds expiry{5000};
  double hysteresis = 0.25;
  int render_slots = 1;     // renders in flight that count as fully loaded
  bool compute_lag = true;  // lag of owned partitions (EndOffset - committed of lag_group)
  std::string members_topic = "fax.members";
  std::string claimed_topic = "fax.submissions";
  std::string lag_group = "faxflow-imaging";

  // worker_id defaults to <hostname>-<pid>; compute_lag to imaging.load.weight_lag > 0.
  static ClaimsOptions FromConfig(const Config& config);
};

// Whether the config asks for claims (claims.mode on, or auto with Kafka and instance.count 1).
bool ClaimsEnabled(const Config& config);

class ClaimsMember {
 public:
  using OnAssignment = std::function<void(const std::vector<int32_t>& owned)>;
  using InFlight = std::function<int()>;

  // `sampler` may be null when options.publish is false.
  ClaimsMember(ClaimsOptions options, bus::Bus& bus, std::unique_ptr<LoadSampler> sampler,
               MetricsRegistry& registry, Clock& clock);
  ~ClaimsMember();
  ClaimsMember(const ClaimsMember&) = delete;
  ClaimsMember& operator=(const ClaimsMember&) = delete;

  void SetOnAssignment(OnAssignment cb);  // before Start
  void SetRendersInFlight(InFlight f);    // before Start

  // Opens the producer and the members consumer; Start() also spawns the thread.
  Status Open();
  Status Start();
  // Joins the thread; publishes a tombstone when publishing. Idempotent.
  void Stop();
  // One iteration: read member records (waiting up to poll_timeout), heartbeat when due,
  // recompute the claim. Requires Open().
  Status Step(std::chrono::milliseconds poll_timeout);

  std::vector<int32_t> Owned() const;
  std::vector<Member> Members() const;
  // Gateway preference, see assignment.h; nullopt when the table has no usable member.
  std::optional<int32_t> PreferredPartition(uint64_t hash) const;
  const std::string& worker_id() const { return options_.worker_id; }
  int32_t partitions() const { return partitions_; }

  // Hooks for the imaging worker.
  void ObserveTakeover(double seconds) { metrics_.takeover_seconds.Observe(seconds); }
  void CountFenced() { metrics_.fenced.Increment(); }

  // Liveness of this component's loop ("claims", common/heartbeat.h); call before Start().
  // Null (the default): none. Must outlive the loop.
  void SetHeartbeats(Heartbeats* heartbeats) { heartbeats_ = heartbeats; }

 private:
  Heartbeats* heartbeats_ = nullptr;
  Status Heartbeat();
  int64_t Lag();

  ClaimsOptions options_;
  bus::Bus& bus_;
  std::unique_ptr<LoadSampler> sampler_;
  Clock& clock_;
  ClaimsMetrics metrics_;
  MemberTable table_;
  OnAssignment on_assignment_;
  InFlight in_flight_;
  std::unique_ptr<bus::Producer> producer_;
  std::unique_ptr<bus::Consumer> members_;
  std::unique_ptr<bus::Consumer> lag_consumer_;
  int32_t partitions_ = 0;
  int64_t epoch_ = 0;
  Clock::MonoTime next_heartbeat_{};
  bool opened_ = false;
  bool stopped_ = false;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<int32_t> owned_;  // guarded by mu_
};

}  // namespace faxflow::claims
