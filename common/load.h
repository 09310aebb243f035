// Load sampling and the load score of a worker (seed 000: "a load score is calculated for each
// imaging system based on one or more of a processor load and a memory load").
//
// Inputs, each normalised to 0..1:
//   cpu      busy share of the CPUs this process may use since the previous sample:
//            cgroup v2 <cgroup_dir>/cpu.stat usage_usec over wall time x cores when cpu.stat
//            exists, else the busy share of all CPUs from <proc_dir>/stat;
//   memory   <cgroup_dir>/memory.current / memory.max when both exist and max is a number,
//            else 1 - MemAvailable / MemTotal from <proc_dir>/meminfo;
//   renders  renders in flight / render slots (the worker's threads), capped at 1;
//   lag      consumer lag of the owned partitions / lag_norm, capped at 1.
// Score (documented in docs/claims.md, weights in the config table `imaging.load.*`):
//   score = clamp01( (w_cpu*cpu + w_mem*memory + w_renders*renders + w_lag*lag) / (sum of w)
//                    + artificial )
// where `artificial` is the test knob (`imaging.load.artificial`, or the number in the file
// `imaging.load.artificial_file`, re-read on every sample so a test can change it while the
// process runs). With every weight 0 the score is `artificial` alone. Capacity is the number
// of cores the process may use (cgroup cpu.max quota / period, else hardware threads), unless
// `imaging.load.capacity` sets it. Spare capacity = capacity * (1 - score).
//
// The sampler reads injectable paths (cgroup_dir, proc_dir) so tests use fake files.
// Lifecycle: construct, call Sample() periodically (each call measures CPU since the previous
// one; the first returns cpu 0). Threading: not thread-safe; one owner thread calls Sample().
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/config.h"
#include "common/status.h"

namespace faxflow {

struct LoadWeights {
  double cpu = 0.5;
  double memory = 0.2;
  double renders = 0.2;
  double lag = 0.1;
};

struct LoadOptions {
  LoadWeights weights;
  double lag_norm = 100;        // records of lag that count as fully loaded
  double artificial = 0;        // test knob: added to the score (0..1)
  std::string artificial_file;  // when set, a number in this file replaces `artificial`
  double capacity = 0;          // cores; 0 = detect (cgroup cpu.max, else hardware threads)
  std::string cgroup_dir = "/sys/fs/cgroup";
  std::string proc_dir = "/proc";

  static LoadOptions FromConfig(const Config& config);
};

// What the worker itself knows about its load.
struct LoadInputs {
  int renders_in_flight = 0;
  int render_slots = 1;
  int64_t lag = 0;
};

struct LoadSample {
  double cpu = 0;
  double memory = 0;
  double renders = 0;
  double lag = 0;  // normalised
  int renders_in_flight = 0;
  int64_t lag_records = 0;
  double artificial = 0;
  double score = 0;
  double capacity = 1;
  std::string cpu_source;     // "cgroup" or "proc"
  std::string memory_source;  // "cgroup" or "proc"
};

// The documented formula (see the file comment); inputs are clamped to 0..1.
double LoadScore(const LoadWeights& weights, double cpu, double memory, double renders, double lag,
                 double artificial);

class LoadSampler {
 public:
  LoadSampler(LoadOptions options, Clock& clock);

  // Reads the files and computes the score. Errors only when neither source of CPU or memory is
  // readable (Code::kIoError, permanent); a malformed artificial_file is an error too.
  Result<LoadSample> Sample(const LoadInputs& inputs);
  double capacity() const { return capacity_; }

 private:
  struct CpuReading {
    bool cgroup = false;
    uint64_t busy = 0;   // cgroup: usage_usec; proc: busy jiffies
    uint64_t total = 0;  // proc: total jiffies (cgroup: unused)
    Clock::MonoTime at{};
  };
  Result<CpuReading> ReadCpu() const;
  Result<double> ReadMemory(std::string& source) const;
  Result<double> Artificial() const;
  double DetectCapacity() const;

  LoadOptions options_;
  Clock& clock_;
  double capacity_ = 1;
  std::optional<CpuReading> last_cpu_;
};

}  // namespace faxflow
