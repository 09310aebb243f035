// The claim rule (topics/claims/assignment.h): proportional shares, determinism, minimal
// movement, hysteresis; the member table's expiry on a ManualClock; the gateway preference.
#include "topics/claims/assignment.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "common/clock.h"
#include "topics/claims/member_table.h"

namespace faxflow::claims {
namespace {

Member M(std::string id, double score, double capacity = 4, std::vector<int32_t> owned = {}) {
  Member m;
  m.id = std::move(id);
  m.score = score;
  m.capacity = capacity;
  m.owned = std::move(owned);
  return m;
}

// Feeds the assignment back as the members' owned lists (what their heartbeats publish).
std::vector<Member> WithOwned(std::vector<Member> members, const Assignment& a) {
  for (auto& m : members) m.owned = a.at(m.id);
  return members;
}

// Iterates the rule until it is a fixed point (as the heartbeats do), at most 10 rounds.
Assignment Converge(std::vector<Member>& members, int32_t partitions, const AssignmentOptions& o = {}) {
  Assignment a = ComputeAssignment(members, partitions, o);
  for (int i = 0; i < 10; ++i) {
    members = WithOwned(members, a);
    Assignment next = ComputeAssignment(members, partitions, o);
    if (next == a) break;
    a = next;
  }
  members = WithOwned(members, a);
  return a;
}

void ExpectPartition(const Assignment& a, int32_t partitions) {
  std::multiset<int32_t> all;
  for (const auto& [id, ps] : a) all.insert(ps.begin(), ps.end());
  ASSERT_EQ(all.size(), static_cast<size_t>(partitions));
  for (int32_t p = 0; p < partitions; ++p) EXPECT_EQ(all.count(p), 1u) << "partition " << p;
}

size_t Moved(const Assignment& before, const Assignment& after) {
  size_t moved = 0;
  for (const auto& [id, ps] : after) {
    auto it = before.find(id);
    for (int32_t p : ps)
      if (it == before.end() || !std::binary_search(it->second.begin(), it->second.end(), p)) ++moved;
  }
  return moved;
}

TEST(Assignment, SharesFollowSpareCapacityWithinFifteenPercent) {
  for (int32_t partitions : {12, 24, 60}) {
    std::vector<Member> members = {M("w-a", 0.0), M("w-b", 0.3), M("w-c", 0.6)};
    Assignment a = Converge(members, partitions);
    ExpectPartition(a, partitions);
    const double spare_sum = 1.0 + 0.7 + 0.4;
    std::map<std::string, double> spare = {{"w-a", 1.0}, {"w-b", 0.7}, {"w-c", 0.4}};
    for (const auto& [id, ps] : a) {
      const double share = static_cast<double>(ps.size()) / partitions;
      const double ideal = spare[id] / spare_sum;
      EXPECT_NEAR(share, ideal, 0.15 * ideal + 1.0 / partitions) << id << " of " << partitions;
    }
  }
  // 12 partitions, spares 1 : 0.7 : 0.4 -> ideal 5.71, 4.0, 2.29 -> quotas 6, 4, 2.
  std::vector<Member> members = {M("w-a", 0.0), M("w-b", 0.3), M("w-c", 0.6)};
  Assignment a = Converge(members, 12);
  EXPECT_EQ(a["w-a"].size(), 6u);
  EXPECT_EQ(a["w-b"].size(), 4u);
  EXPECT_EQ(a["w-c"].size(), 2u);
}

TEST(Assignment, CapacityCountsAndSaturatedMembersGetNothing) {
  std::vector<Member> members = {M("big", 0.5, 8), M("small", 0.5, 2), M("full", 1.0, 8)};
  Assignment a = Converge(members, 20);
  ExpectPartition(a, 20);
  EXPECT_EQ(a["big"].size(), 16u);
  EXPECT_EQ(a["small"].size(), 4u);
  EXPECT_TRUE(a["full"].empty());
  // Everyone saturated: shares by capacity instead of nothing for anyone.
  std::vector<Member> all_full = {M("a", 1.0, 3), M("b", 1.0, 1)};
  Assignment f = Converge(all_full, 12);
  EXPECT_EQ(f["a"].size(), 9u);
  EXPECT_EQ(f["b"].size(), 3u);
}

TEST(Assignment, DeterministicWhateverTheInputOrder) {
  std::vector<Member> members = {M("w-3", 0.2, 4, {0, 1, 2}), M("w-1", 0.5, 2, {3, 4}), M("w-2", 0.1, 4, {5}),
                                 M("w-4", 0.0, 1, {})};
  const Assignment first = ComputeAssignment(members, 16);
  std::mt19937 rng(7);
  for (int i = 0; i < 20; ++i) {
    std::shuffle(members.begin(), members.end(), rng);
    EXPECT_EQ(ComputeAssignment(members, 16), first);
  }
  ExpectPartition(first, 16);
}

TEST(Assignment, ConflictingClaimsResolveToOneOwner) {
  // Transient double claims (a heartbeat in flight) never give a partition to two members.
  std::vector<Member> members = {M("a", 0.0, 1, {0, 1, 2, 3}), M("b", 0.0, 1, {2, 3, 4, 5}),
                                 M("c", 0.0, 1, {})};
  Assignment a = ComputeAssignment(members, 6);
  ExpectPartition(a, 6);
}

TEST(Assignment, JoinAndLeaveMoveOnlyWhatTheQuotasRequire) {
  std::vector<Member> members = {M("a", 0.0), M("b", 0.0), M("c", 0.0)};
  Assignment before = Converge(members, 12);
  ASSERT_EQ(before["a"].size(), 4u);
  // A fourth equal member joins: exactly 3 partitions move (to it), nothing else changes.
  members.push_back(M("d", 0.0));
  Assignment after = Converge(members, 12);
  ExpectPartition(after, 12);
  EXPECT_EQ(after["d"].size(), 3u);
  EXPECT_EQ(Moved(before, after), 3u);
  // "b" dies: only its 3 partitions move.
  std::vector<Member> survivors;
  for (auto& m : members)
    if (m.id != "b") survivors.push_back(m);
  Assignment without_b = Converge(survivors, 12);
  ExpectPartition(without_b, 12);
  for (const auto& id : {"a", "c", "d"}) {
    EXPECT_EQ(without_b[id].size(), 4u);
    for (int32_t p : after[id])
      EXPECT_TRUE(std::binary_search(without_b[id].begin(), without_b[id].end(), p));
  }
}

TEST(Assignment, LoadChangeMovesTheMinimum) {
  std::vector<Member> members = {M("a", 0.0), M("b", 0.0), M("c", 0.0)};
  Assignment before = Converge(members, 12);
  members[2].score = 0.75;  // c: spare 0.25 -> ideal 12 * 0.25 / 2.25 = 1.33
  Assignment after = Converge(members, 12);
  ExpectPartition(after, 12);
  EXPECT_EQ(after["c"].size(), 1u);
  EXPECT_EQ(Moved(before, after), 3u);  // c's surplus only
}

TEST(Assignment, HysteresisIgnoresSmallLoadChanges) {
  std::vector<Member> members = {M("a", 0.0), M("b", 0.0), M("c", 0.0)};
  Assignment base = Converge(members, 12);
  // Noise: scores wobble by up to 0.1 -> ideal counts within a partition of 4: nothing moves.
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> noise(0.0, 0.1);
  for (int round = 0; round < 50; ++round) {
    for (auto& m : members) m.score = noise(rng);
    Assignment a = ComputeAssignment(members, 12);
    EXPECT_EQ(a, base) << "round " << round;
  }
  // Without hysteresis the same wobble would move partitions (the band is what stops it).
  AssignmentOptions none;
  none.hysteresis = 0;
  members[0].score = 0.0;
  members[1].score = 0.0;
  members[2].score = 0.2;  // ideal a,b = 4.29, c = 3.43: still within max(1, 0) = 1 -> stable
  EXPECT_EQ(ComputeAssignment(members, 12, none), base);
  // A large change leaves the band and moves partitions.
  members[2].score = 0.7;
  EXPECT_NE(ComputeAssignment(members, 12), base);
}

TEST(Assignment, NoThrashingUnderRepeatedRecomputation) {
  std::vector<Member> members = {M("a", 0.1), M("b", 0.35), M("c", 0.62), M("d", 0.2)};
  Assignment a = Converge(members, 24);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(ComputeAssignment(members, 24), a);
}

TEST(Assignment, QuotasSumToPartitions) {
  for (int32_t partitions : {1, 7, 12, 1000}) {
    auto q = Quotas(IdealCounts({M("a", 0.3, 3), M("b", 0.1, 5), M("c", 0.9, 1)}, partitions), partitions);
    int32_t sum = 0;
    for (auto x : q) sum += x;
    EXPECT_EQ(sum, partitions);
  }
}

TEST(PreferredPartitionTest, PicksPartitionsOfLessLoadedWorkersMoreOften) {
  std::vector<Member> members = {M("idle", 0.0, 1, {0, 1, 2}), M("busy", 0.75, 1, {3, 4, 5})};
  std::map<std::string, int> hits;
  for (uint64_t h = 0; h < 10000; ++h) {
    auto p = PreferredPartition(members, 6, h);
    ASSERT_TRUE(p.has_value());
    hits[*p < 3 ? "idle" : "busy"]++;
  }
  // spare 1 : 0.25 -> 80% : 20%.
  EXPECT_NEAR(hits["idle"] / 10000.0, 0.8, 0.03);
  EXPECT_FALSE(PreferredPartition({}, 6, 1).has_value());
  EXPECT_FALSE(PreferredPartition({M("x", 1.0, 1, {0})}, 6, 1).has_value());
}

TEST(MemberTableTest, MembersExpireWhenHeartbeatsStop) {
  ManualClock clock;
  MemberTable table(clock, std::chrono::seconds(5));
  auto beat = [&](const std::string& id, int64_t epoch = 1) {
    v1::WorkerLoad l;
    l.set_worker(id);
    l.set_score(0.1);
    l.set_capacity(2);
    l.add_owned_partitions(3);
    l.set_epoch(epoch);
    l.set_at_ms(clock.NowMillis());
    table.Apply(id, &l);
  };
  beat("a");
  beat("b");
  ASSERT_EQ(table.Live().size(), 2u);
  EXPECT_EQ(table.Live()[0].owned, std::vector<int32_t>{3});
  clock.Advance(std::chrono::seconds(3));
  beat("a");
  clock.Advance(std::chrono::seconds(3));  // b silent for 6 s > 5 s
  auto live = table.Live();
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(live[0].id, "a");
  EXPECT_EQ(table.Expired(), std::vector<std::string>{"b"});
  beat("b");  // back
  EXPECT_EQ(table.Live().size(), 2u);
  table.Apply("a", nullptr);  // tombstone: gone at once
  EXPECT_EQ(table.Live().size(), 1u);
  // An older incarnation's record does not overwrite a newer one.
  beat("c", 10);
  v1::WorkerLoad old;
  old.set_worker("c");
  old.set_epoch(5);
  old.set_score(0.9);
  old.set_at_ms(clock.NowMillis());
  table.Apply("c", &old);
  for (const auto& m : table.Live()) {
    if (m.id == "c") {
      EXPECT_EQ(m.epoch, 10);
    }
  }
}

TEST(MemberTableTest, OldRecordsReplayedAtStartAreNotLive) {
  ManualClock clock;
  MemberTable table(clock, std::chrono::seconds(5), std::chrono::seconds(2));
  v1::WorkerLoad l;
  l.set_worker("dead");
  l.set_epoch(1);
  l.set_at_ms(clock.NowMillis() - 60'000);  // written a minute ago, read now from the compacted topic
  table.Apply("dead", &l);
  EXPECT_TRUE(table.Live().empty());
}

}  // namespace
}  // namespace faxflow::claims
