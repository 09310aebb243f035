#include "topics/claims/assignment.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

namespace faxflow::claims {
namespace {

double Clamp01(double v) {
  if (!(v > 0)) return 0;
  return std::min(v, 1.0);
}

uint64_t Mix(uint64_t z) {  // splitmix64 finaliser
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

double SpareCapacity(const Member& m) { return std::max(0.0, m.capacity) * (1.0 - Clamp01(m.score)); }

std::vector<double> IdealCounts(const std::vector<Member>& members, int32_t partitions) {
  std::vector<double> weight(members.size(), 0.0);
  double sum = 0;
  for (size_t i = 0; i < members.size(); ++i) sum += (weight[i] = SpareCapacity(members[i]));
  if (!(sum > 0)) {  // everyone saturated: share by capacity
    sum = 0;
    for (size_t i = 0; i < members.size(); ++i) sum += (weight[i] = std::max(0.0, members[i].capacity));
  }
  if (!(sum > 0)) {  // no capacity known: equal shares
    for (auto& w : weight) w = 1;
    sum = static_cast<double>(members.size());
  }
  std::vector<double> ideal(members.size(), 0.0);
  for (size_t i = 0; i < members.size(); ++i) ideal[i] = static_cast<double>(partitions) * weight[i] / sum;
  return ideal;
}

std::vector<int32_t> Quotas(const std::vector<double>& ideal, int32_t partitions) {
  std::vector<int32_t> q(ideal.size(), 0);
  if (ideal.empty()) return q;
  int32_t given = 0;
  std::vector<std::pair<double, size_t>> remainders;
  for (size_t i = 0; i < ideal.size(); ++i) {
    q[i] = static_cast<int32_t>(std::floor(ideal[i] + 1e-9));
    given += q[i];
    remainders.push_back({ideal[i] - q[i], i});
  }
  // Largest remainder first; ties by member order (a stable sort keeps the order).
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first + 1e-12; });
  for (size_t k = 0; given < partitions; k = (k + 1) % remainders.size()) {
    ++q[remainders[k].second];
    ++given;
  }
  while (given > partitions) {  // only through rounding noise
    auto it = std::max_element(q.begin(), q.end());
    --*it;
    --given;
  }
  return q;
}

uint64_t RendezvousWeight(int32_t partition, std::string_view member) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a of the member id
  for (unsigned char c : member) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return Mix(h ^ Mix(static_cast<uint64_t>(static_cast<uint32_t>(partition)) + 0x51ed27ULL));
}

Assignment ComputeAssignment(std::vector<Member> members, int32_t partitions,
                             const AssignmentOptions& options) {
  Assignment out;
  std::sort(members.begin(), members.end(), [](const Member& a, const Member& b) { return a.id < b.id; });
  members.erase(std::unique(members.begin(), members.end(),
                            [](const Member& a, const Member& b) { return a.id == b.id; }),
                members.end());
  for (const auto& m : members) out[m.id];
  if (members.empty() || partitions <= 0) return out;
  const size_t n = members.size();
  const std::vector<double> ideal = IdealCounts(members, partitions);
  const std::vector<int32_t> quota = Quotas(ideal, partitions);

  // Current holdings; conflicts go to the highest rendezvous weight.
  std::vector<int> holder(static_cast<size_t>(partitions), -1);
  for (size_t i = 0; i < n; ++i) {
    for (int32_t p : members[i].owned) {
      if (p < 0 || p >= partitions) continue;
      int& h = holder[static_cast<size_t>(p)];
      if (h < 0 ||
          RendezvousWeight(p, members[i].id) > RendezvousWeight(p, members[static_cast<size_t>(h)].id))
        h = static_cast<int>(i);
    }
  }
  std::vector<std::vector<int32_t>> held(n);
  bool orphans = false;
  for (int32_t p = 0; p < partitions; ++p) {
    const int h = holder[static_cast<size_t>(p)];
    if (h < 0)
      orphans = true;
    else
      held[static_cast<size_t>(h)].push_back(p);
  }

  bool stable = !orphans;
  for (size_t i = 0; i < n && stable; ++i) {
    const double c = static_cast<double>(held[i].size());
    const double band = std::max(1.0, options.hysteresis * ideal[i]);
    if (std::fabs(c - ideal[i]) > band + 1e-9) stable = false;
    if (held[i].empty() && quota[i] > 0) stable = false;
  }
  std::vector<int32_t> target(n);
  for (size_t i = 0; i < n; ++i) target[i] = stable ? static_cast<int32_t>(held[i].size()) : quota[i];

  std::vector<std::vector<int32_t>> result(n);
  std::vector<int32_t> pool;
  for (size_t i = 0; i < n; ++i) {
    auto keep = held[i];
    std::sort(keep.begin(), keep.end(), [&](int32_t a, int32_t b) {
      return RendezvousWeight(a, members[i].id) > RendezvousWeight(b, members[i].id);
    });
    for (size_t k = 0; k < keep.size(); ++k) {
      if (static_cast<int32_t>(k) < target[i])
        result[i].push_back(keep[k]);
      else
        pool.push_back(keep[k]);
    }
  }
  for (int32_t p = 0; p < partitions; ++p)
    if (holder[static_cast<size_t>(p)] < 0) pool.push_back(p);
  std::sort(pool.begin(), pool.end());
  for (int32_t p : pool) {
    int best = -1;
    for (size_t i = 0; i < n; ++i) {
      if (static_cast<int32_t>(result[i].size()) >= target[i]) continue;
      if (best < 0 ||
          RendezvousWeight(p, members[i].id) > RendezvousWeight(p, members[static_cast<size_t>(best)].id))
        best = static_cast<int>(i);
    }
    if (best >= 0) result[static_cast<size_t>(best)].push_back(p);
  }
  for (size_t i = 0; i < n; ++i) {
    std::sort(result[i].begin(), result[i].end());
    out[members[i].id] = std::move(result[i]);
  }
  return out;
}

std::optional<int32_t> PreferredPartition(const std::vector<Member>& members, int32_t partitions,
                                          uint64_t hash) {
  std::vector<std::pair<double, std::vector<int32_t>>> candidates;
  double sum = 0;
  std::vector<Member> sorted = members;
  std::sort(sorted.begin(), sorted.end(), [](const Member& a, const Member& b) { return a.id < b.id; });
  for (const auto& m : sorted) {
    std::vector<int32_t> valid;
    for (int32_t p : m.owned)
      if (p >= 0 && p < partitions) valid.push_back(p);
    const double spare = SpareCapacity(m);
    if (valid.empty() || !(spare > 0)) continue;
    sum += spare;
    candidates.push_back({spare, std::move(valid)});
  }
  if (candidates.empty() || !(sum > 0)) return std::nullopt;
  const uint64_t draw = Mix(hash);
  const double u = static_cast<double>(draw >> 11) / static_cast<double>(1ULL << 53) * sum;
  double acc = 0;
  size_t pick = candidates.size() - 1;
  for (size_t i = 0; i < candidates.size(); ++i) {
    acc += candidates[i].first;
    if (u < acc) {
      pick = i;
      break;
    }
  }
  const auto& owned = candidates[pick].second;
  return owned[Mix(draw ^ 0x5851f42d4c957f2dULL) % owned.size()];
}

}  // namespace faxflow::claims
