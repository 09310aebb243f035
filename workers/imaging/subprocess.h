// Running an untrusted converter (gs) as a contained child process: no shell, its own process
// group, stdin /dev/null, stdout+stderr captured into one bounded buffer, rlimits set in the
// child before exec, every other descriptor closed, default signal dispositions and an empty
// signal mask, a wall-clock deadline after which the whole group is SIGKILLed. Internal to the
// imaging worker (renderer.cc); kept separate so the containment rules are in one place.
//
// ContainedProcess is the long-lived variant used by the render pool (render_pool.h): same
// containment, but stdin is a pipe the parent writes commands to and the output pipe is read by
// the caller while the child keeps running.
//
// Threading: RunContained is thread-safe (fork from a multi-threaded process: the child only
// makes async-signal-safe calls before execve). A ContainedProcess is used by one thread at a
// time (the render pool hands it out under a lease).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace faxflow::imaging {

struct ContainmentLimits {
  int64_t cpu_seconds = 30;               // RLIMIT_CPU soft (SIGXCPU); hard = soft + 1 (SIGKILL)
  int64_t cpu_hard_seconds = 0;           // RLIMIT_CPU hard when > cpu_seconds (long-lived processes)
  int64_t memory_bytes = 1 << 30;         // RLIMIT_AS
  int64_t file_size_bytes = 200LL << 20;  // RLIMIT_FSIZE (SIGXFSZ)
  int64_t open_files = 64;                // RLIMIT_NOFILE
  double timeout_seconds = 60;            // wall clock
  size_t max_output_bytes = 16 * 1024;    // captured stdout+stderr; the rest is drained and dropped
};

struct ContainedRun {
  bool timed_out = false;  // we killed it at the deadline
  bool exited = false;     // normal exit (exit_code valid)
  int exit_code = -1;
  int signal = 0;          // terminating signal when !exited
  double cpu_seconds = 0;  // user + system of the child
  double wall_seconds = 0;
  std::string output;  // first max_output_bytes of stdout+stderr
};

// Starts argv[0] (searched in PATH when it has no '/') in `cwd` with exactly `env`, waits for it
// within the limits. Errors are about this machine (cannot fork, executable missing): retryable,
// except a missing executable (kNotFound, fatal for the caller's configuration).
Result<ContainedRun> RunContained(const std::vector<std::string>& argv, const std::string& cwd,
                                  const std::vector<std::string>& env, const ContainmentLimits& limits,
                                  Clock& clock);

// A contained child that keeps running (see the file comment). Lifecycle: Spawn, then any number
// of Write/Read rounds; the destructor SIGKILLs the process group and reaps the child, so a
// ContainedProcess never outlives its owner. Not thread-safe: one user at a time.
class ContainedProcess {
 public:
  // Starts argv[0] like RunContained (no timeout: the caller enforces deadlines with Read and
  // Kill). Errors are about this machine, as for RunContained.
  static Result<std::unique_ptr<ContainedProcess>> Spawn(const std::vector<std::string>& argv,
                                                         const std::string& cwd,
                                                         const std::vector<std::string>& env,
                                                         const ContainmentLimits& limits);
  ~ContainedProcess();
  ContainedProcess(const ContainedProcess&) = delete;
  ContainedProcess& operator=(const ContainedProcess&) = delete;

  pid_t pid() const { return pid_; }

  // Writes all of `data` to the child's stdin. A child that has died is reported as an error
  // (EPIPE does not raise SIGPIPE in this process).
  Status Write(std::string_view data);

  // Appends whatever output arrives within `wait` to `out`. Returns false once the output pipe
  // is at end of file (the child exited or closed it), true otherwise.
  bool Read(std::string& out, std::chrono::milliseconds wait);

  // SIGKILL to the whole process group; then Reap(true) collects the status.
  void Kill();

  // Collects the exit status; with block=false only if the child has already exited. Returns
  // true once reaped (then exited()/exit_code()/signal() are valid).
  bool Reap(bool block);
  bool reaped() const { return reaped_; }
  bool exited() const { return exited_; }
  int exit_code() const { return exit_code_; }
  int signal() const { return signal_; }

  // CPU seconds (user + system) the live child has used so far, from /proc; after Reap, its
  // final figure. -1 if unknown.
  double CpuSeconds() const;

  // Peak resident set size of the child (VmHWM while it lives, ru_maxrss after Reap); -1 if unknown.
  int64_t PeakRssBytes() const;

  // Sets the child's RLIMIT_CPU (prlimit); soft must not exceed the hard limit set at spawn.
  Status SetCpuLimit(int64_t soft_seconds, int64_t hard_seconds);

 private:
  ContainedProcess() = default;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int output_fd_ = -1;
  bool eof_ = false;
  bool reaped_ = false;
  bool exited_ = false;
  int exit_code_ = -1;
  int signal_ = 0;
  double final_cpu_seconds_ = -1;
  int64_t final_max_rss_bytes_ = -1;
};

}  // namespace faxflow::imaging
