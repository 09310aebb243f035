// Running an untrusted converter (gs) as a contained child process: no shell, its own process
// group, stdin /dev/null, stdout+stderr captured into one bounded buffer, rlimits set in the
// child before exec, every other descriptor closed, default signal dispositions and an empty
// signal mask, a wall-clock deadline after which the whole group is SIGKILLed. Internal to the
// imaging worker (renderer.cc); kept separate so the containment rules are in one place.
//
// Threading: RunContained is thread-safe (fork from a multi-threaded process: the child only
// makes async-signal-safe calls before execve).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace faxflow::imaging {

struct ContainmentLimits {
  int64_t cpu_seconds = 30;        // RLIMIT_CPU soft (SIGXCPU); hard = soft + 1 (SIGKILL)
  int64_t memory_bytes = 1 << 30;  // RLIMIT_AS
  int64_t file_size_bytes = 200LL << 20;  // RLIMIT_FSIZE (SIGXFSZ)
  int64_t open_files = 64;         // RLIMIT_NOFILE
  double timeout_seconds = 60;     // wall clock
  size_t max_output_bytes = 16 * 1024;  // captured stdout+stderr; the rest is drained and dropped
};

struct ContainedRun {
  bool timed_out = false;      // we killed it at the deadline
  bool exited = false;         // normal exit (exit_code valid)
  int exit_code = -1;
  int signal = 0;              // terminating signal when !exited
  double cpu_seconds = 0;      // user + system of the child
  double wall_seconds = 0;
  std::string output;          // first max_output_bytes of stdout+stderr
};

// Starts argv[0] (searched in PATH when it has no '/') in `cwd` with exactly `env`, waits for it
// within the limits. Errors are about this machine (cannot fork, executable missing): retryable,
// except a missing executable (kNotFound, fatal for the caller's configuration).
Result<ContainedRun> RunContained(const std::vector<std::string>& argv, const std::string& cwd,
                                  const std::vector<std::string>& env, const ContainmentLimits& limits,
                                  Clock& clock);

}  // namespace faxflow::imaging
