// The member table: the live imaging workers as read from the compacted topic fax.members
// (key = worker id, value = faxflow.v1.WorkerLoad; an empty value is a tombstone: the worker
// left). A member is live while its last heartbeat was received less than `expiry` ago (local
// monotonic time) and its own timestamp at_ms is not older than expiry + max_clock_skew (so old
// records replayed from the compacted topic at start do not resurrect dead workers). A record
// of an older incarnation (lower epoch) than the one already known is ignored.
//
// Threading: thread-safe (one mutex). Time comes from the injected Clock.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "schemas/load.pb.h"
#include "topics/claims/assignment.h"

namespace faxflow::claims {

class MemberTable {
 public:
  MemberTable(Clock& clock, std::chrono::milliseconds expiry,
              std::chrono::milliseconds max_clock_skew = std::chrono::seconds(2));

  // A heartbeat of `worker`; nullptr is a tombstone (the worker left gracefully).
  void Apply(const std::string& worker, const v1::WorkerLoad* load);
  // Live members, ordered by id.
  std::vector<Member> Live() const;
  // Ids of members that were known but are expired now (for logs); they stay in the table
  // until a tombstone or a newer heartbeat replaces them.
  std::vector<std::string> Expired() const;

 private:
  struct Entry {
    v1::WorkerLoad load;
    Clock::MonoTime heard{};
  };
  bool IsLive(const Entry& e) const;

  Clock& clock_;
  std::chrono::milliseconds expiry_;
  std::chrono::milliseconds skew_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;  // guarded by mu_
};

}  // namespace faxflow::claims
