// Claim computation cost (topics/claims/assignment.h): every imaging worker recomputes the
// assignment after each poll of fax.members, so it must stay cheap at scale. Measures
// ComputeAssignment for 100 workers x 1,000 partitions: from scratch (nobody owns anything),
// the steady state (every member owns its share: the hysteresis path), and after one member
// died (its partitions are orphaned). Informational rows (target null); no raw library to
// compare with, so raw and ratio are null.
//
// Flags (bench/run convention): --quick (fewer repetitions), --only SUBSTRING, --no-kafka
// (ignored: no broker involved).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "topics/claims/assignment.h"

namespace {

using faxflow::claims::Assignment;
using faxflow::claims::ComputeAssignment;
using faxflow::claims::Member;

struct Percentiles {
  double p50 = 0, p99 = 0;
};

template <typename F>
Percentiles Time(int reps, F&& f) {
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 99 / 100)]};
}

void Row(const std::string& name, double value) {
  std::printf(
      "{\"bench\":\"%s\",\"faxflow\":%.4f,\"raw\":null,\"unit\":\"ms\",\"ratio\":null,\"target\":null,"
      "\"better\":\"lower\",\"compare\":\"absolute\"}\n",
      name.c_str(), value);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick"))
      quick = true;
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc)
      only = argv[++i];
  }
  const int reps = quick ? 5 : 50;
  constexpr int kWorkers = 100;
  constexpr int32_t kPartitions = 1000;
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> score(0.0, 0.9);
  std::vector<Member> members;
  for (int i = 0; i < kWorkers; ++i) {
    Member m;
    m.id = "imaging-" + std::to_string(i);
    m.score = score(rng);
    m.capacity = 1 + i % 4;
    members.push_back(m);
  }
  auto wanted = [&](const std::string& name) { return only.empty() || name.find(only) != std::string::npos; };

  const std::string initial = "claims.assign_ms.100x1000.initial";
  Assignment a;
  auto t = Time(reps, [&] { a = ComputeAssignment(members, kPartitions); });
  if (wanted(initial)) {
    Row(initial + ".p50", t.p50);
    Row(initial + ".p99", t.p99);
  }
  for (auto& m : members) m.owned = a[m.id];
  const std::string steady = "claims.assign_ms.100x1000.steady";
  t = Time(reps, [&] { a = ComputeAssignment(members, kPartitions); });
  if (wanted(steady)) {
    Row(steady + ".p50", t.p50);
    Row(steady + ".p99", t.p99);
  }
  members.erase(members.begin() + 17);
  const std::string died = "claims.assign_ms.100x1000.member_died";
  t = Time(reps, [&] { a = ComputeAssignment(members, kPartitions); });
  if (wanted(died)) {
    Row(died + ".p50", t.p50);
    Row(died + ".p99", t.p99);
  }
  std::fprintf(stderr, "claims_bench: %d workers x %d partitions, %d repetitions\n", kWorkers, kPartitions,
               reps);
  return 0;
}
