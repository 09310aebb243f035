// The claim rule: which imaging worker owns which partition of fax.submissions.
//
// ComputeAssignment is a pure, deterministic function of the member table (every live member's
// score, capacity and currently owned partitions), so every worker that sees the same table
// computes the same assignment without any coordinator. The rule (docs/claims.md):
//
//   1. spare_m  = capacity_m * (1 - score_m)            (all spare 0: capacity; all 0: equal)
//      ideal_m  = P * spare_m / sum(spare)              (P = partition count)
//      quota_m  = ideal_m rounded by largest remainder (ties: member id order), sum = P.
//   2. Current holdings come from the members' published owned lists; a partition claimed by
//      several members goes to the claimant with the highest rendezvous weight h(p, m).
//   3. Hysteresis: if no partition is orphaned, no member with quota > 0 holds nothing, and
//      every member holds within max(1, hysteresis * ideal_m) partitions of its ideal, the
//      target is the current holding (nothing moves). Otherwise the target is the quota.
//   4. Minimal movement: each member keeps its held partitions up to its target (the ones with
//      the highest h(p, m)); surplus and orphaned partitions go, in partition order, to the
//      member below target with the highest h(p, m) (weighted rendezvous hashing with quotas).
//
// Only surplus and orphaned partitions move, so a load change moves the fewest partitions the
// new quotas allow, and a dead member's partitions are spread by rendezvous weight.
// Threading: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace faxflow::claims {

struct Member {
  std::string id;
  double score = 0;     // 0 idle .. 1 saturated (common/load.h)
  double capacity = 1;  // cores
  std::vector<int32_t> owned;
  int64_t epoch = 0;  // incarnation (start time in ms) of the member process
};

struct AssignmentOptions {
  double hysteresis = 0.25;
};

// member id -> owned partitions (ascending); every member appears, possibly with none.
using Assignment = std::map<std::string, std::vector<int32_t>>;

double SpareCapacity(const Member& m);

// Ideal (fractional) partition counts of `members` in the given order; they sum to partitions.
std::vector<double> IdealCounts(const std::vector<Member>& members, int32_t partitions);

// Largest-remainder rounding of IdealCounts, ties by order; sums to partitions.
std::vector<int32_t> Quotas(const std::vector<double>& ideal, int32_t partitions);

// Rendezvous weight of (partition, member): a stable 64-bit hash.
uint64_t RendezvousWeight(int32_t partition, std::string_view member);

// The rule above. Members with duplicate ids: the first in id order counts.
Assignment ComputeAssignment(std::vector<Member> members, int32_t partitions,
                             const AssignmentOptions& options = {});

// Gateway preference (seed 000: select the imaging system by load score): picks a member with
// probability proportional to its spare capacity (using `hash` as the random draw), then one
// of its owned partitions (< partitions) by `hash`. nullopt when no member owns a partition or
// no member has spare capacity (then the caller uses key hashing).
std::optional<int32_t> PreferredPartition(const std::vector<Member>& members, int32_t partitions,
                                          uint64_t hash);

}  // namespace faxflow::claims
