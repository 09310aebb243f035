#include "workers/imaging/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

namespace faxflow::imaging {
namespace {

// Closes a descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

std::string Errno(std::string_view what) { return std::string(what) + ": " + std::strerror(errno); }

bool IsExecutable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

Result<std::string> ResolveExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (IsExecutable(name)) return name;
    return Status::Fatal(Code::kNotFound, "executable not found: " + name);
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + name;
    if (IsExecutable(candidate)) return candidate;
    start = end + 1;
  }
  return Status::Fatal(Code::kNotFound, "executable not found in PATH: " + name);
}

double Seconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; }

rlim_t Limit(int64_t v) { return v <= 0 ? RLIM_INFINITY : static_cast<rlim_t>(v); }

// Runs in the child between fork and exec: async-signal-safe calls only.
[[noreturn]] void ExecChild(const char* path, char* const* argv, char* const* envp, const char* cwd, int devnull,
                            int out, const ContainmentLimits& limits) {
  ::setpgid(0, 0);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig : {SIGPIPE, SIGXCPU, SIGXFSZ, SIGINT, SIGTERM, SIGHUP, SIGCHLD}) ::sigaction(sig, &dfl, nullptr);
  if (::dup2(devnull, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) ::_exit(126);
  ::close_range(3, ~0U, 0);
  if (::chdir(cwd) != 0) ::_exit(126);
  rlimit cpu{Limit(limits.cpu_seconds), limits.cpu_seconds > 0 ? Limit(limits.cpu_seconds + 1) : RLIM_INFINITY};
  rlimit as{Limit(limits.memory_bytes), Limit(limits.memory_bytes)};
  rlimit fsize{Limit(limits.file_size_bytes), Limit(limits.file_size_bytes)};
  rlimit nofile{Limit(limits.open_files), Limit(limits.open_files)};
  rlimit core{0, 0};
  if (::setrlimit(RLIMIT_CPU, &cpu) != 0 || ::setrlimit(RLIMIT_AS, &as) != 0 ||
      ::setrlimit(RLIMIT_FSIZE, &fsize) != 0 || ::setrlimit(RLIMIT_NOFILE, &nofile) != 0 ||
      ::setrlimit(RLIMIT_CORE, &core) != 0)
    ::_exit(126);
  ::execve(path, argv, envp);
  ::_exit(127);
}

}  // namespace

Result<ContainedRun> RunContained(const std::vector<std::string>& argv, const std::string& cwd,
                                  const std::vector<std::string>& env, const ContainmentLimits& limits,
                                  Clock& clock) {
  if (argv.empty()) return Status::Permanent(Code::kInvalidArgument, "RunContained: empty argv");
  FF_ASSIGN_OR_RETURN(std::string path, ResolveExecutable(argv[0]));

  // Everything the child needs is prepared before fork.
  std::vector<std::string> args = argv;
  std::vector<std::string> envs = env;
  std::vector<char*> argp, envp;
  for (auto& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);
  for (auto& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);

  Fd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (devnull.get() < 0) return Status::Retryable(Code::kIoError, Errno("open /dev/null"));
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Status::Retryable(Code::kResourceExhausted, Errno("pipe"));
  Fd read_end(fds[0]);
  Fd write_end(fds[1]);

  auto start = clock.Monotonic();
  pid_t pid = ::fork();
  if (pid < 0) return Status::Retryable(Code::kResourceExhausted, Errno("fork"));
  if (pid == 0) ExecChild(path.c_str(), argp.data(), envp.data(), cwd.c_str(), devnull.get(), write_end.get(), limits);
  ::setpgid(pid, pid);  // also done by the child; whichever runs first wins the race
  write_end.Reset();
  devnull.Reset();

  ContainedRun run;
  auto deadline = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(limits.timeout_seconds));
  bool eof = false;
  int status = 0;
  rusage usage {};
  bool reaped = false;
  char buf[4096];
  while (!reaped) {
    auto now = clock.Monotonic();
    if (now >= deadline) {
      run.timed_out = true;
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      if (::wait4(pid, &status, 0, &usage) == pid) reaped = true;
      break;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    int wait_ms = static_cast<int>(std::clamp<int64_t>(left, 1, eof ? 10 : 100));
    if (!eof) {
      pollfd pfd{read_end.get(), POLLIN, 0};
      int r = ::poll(&pfd, 1, wait_ms);
      if (r > 0) {
        ssize_t n = ::read(read_end.get(), buf, sizeof buf);
        if (n > 0) {
          size_t room = limits.max_output_bytes - std::min(limits.max_output_bytes, run.output.size());
          run.output.append(buf, std::min(room, static_cast<size_t>(n)));
        } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
          eof = true;
        }
      }
    } else {
      ::poll(nullptr, 0, wait_ms);
    }
    pid_t w = ::wait4(pid, &status, WNOHANG, &usage);
    if (w == pid) reaped = true;
  }
  if (!reaped) {
    // Could not reap after SIGKILL (should not happen); do not leave a zombie-less lie behind.
    return Status::Retryable(Code::kInternal, Errno("wait for child " + std::to_string(pid)));
  }
  // Drain what the child wrote just before exiting.
  while (!eof) {
    pollfd pfd{read_end.get(), POLLIN, 0};
    if (::poll(&pfd, 1, 0) <= 0) break;
    ssize_t n = ::read(read_end.get(), buf, sizeof buf);
    if (n <= 0) break;
    size_t room = limits.max_output_bytes - std::min(limits.max_output_bytes, run.output.size());
    run.output.append(buf, std::min(room, static_cast<size_t>(n)));
  }
  run.wall_seconds = std::chrono::duration<double>(clock.Monotonic() - start).count();
  run.cpu_seconds = Seconds(usage.ru_utime) + Seconds(usage.ru_stime);
  if (WIFEXITED(status)) {
    run.exited = true;
    run.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    run.signal = WTERMSIG(status);
  }
  if (run.exited && run.exit_code == 126 && run.output.empty())
    return Status::Retryable(Code::kInternal, "could not set up the child process for " + path);
  if (run.exited && run.exit_code == 127 && run.output.empty())
    return Status::Fatal(Code::kNotFound, "could not execute " + path);
  return run;
}

}  // namespace faxflow::imaging
