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
#include <fstream>
#include <sstream>

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
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
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

double Seconds(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

rlim_t Limit(int64_t v) { return v <= 0 ? RLIM_INFINITY : static_cast<rlim_t>(v); }

// Runs in the child between fork and exec: async-signal-safe calls only.
[[noreturn]] void ExecChild(const char* path, char* const* argv, char* const* envp, const char* cwd, int in,
                            int out, const ContainmentLimits& limits) {
  ::setpgid(0, 0);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig : {SIGPIPE, SIGXCPU, SIGXFSZ, SIGINT, SIGTERM, SIGHUP, SIGCHLD})
    ::sigaction(sig, &dfl, nullptr);
  if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) ::_exit(126);
  ::close_range(3, ~0U, 0);
  if (::chdir(cwd) != 0) ::_exit(126);
  rlim_t cpu_hard = limits.cpu_hard_seconds > limits.cpu_seconds ? Limit(limits.cpu_hard_seconds)
                    : limits.cpu_seconds > 0                     ? Limit(limits.cpu_seconds + 1)
                                                                 : RLIM_INFINITY;
  rlimit cpu{Limit(limits.cpu_seconds), cpu_hard};
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
  if (pid == 0)
    ExecChild(path.c_str(), argp.data(), envp.data(), cwd.c_str(), devnull.get(), write_end.get(), limits);
  ::setpgid(pid, pid);  // also done by the child; whichever runs first wins the race
  write_end.Reset();
  devnull.Reset();

  ContainedRun run;
  auto deadline = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(limits.timeout_seconds));
  bool eof = false;
  int status = 0;
  rusage usage{};
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

Result<std::unique_ptr<ContainedProcess>> ContainedProcess::Spawn(const std::vector<std::string>& argv,
                                                                  const std::string& cwd,
                                                                  const std::vector<std::string>& env,
                                                                  const ContainmentLimits& limits) {
  if (argv.empty()) return Status::Permanent(Code::kInvalidArgument, "ContainedProcess: empty argv");
  FF_ASSIGN_OR_RETURN(std::string path, ResolveExecutable(argv[0]));
  std::vector<std::string> args = argv;
  std::vector<std::string> envs = env;
  std::vector<char*> argp, envp;
  for (auto& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);
  for (auto& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);

  int in_fds[2];
  if (::pipe2(in_fds, O_CLOEXEC) != 0) return Status::Retryable(Code::kResourceExhausted, Errno("pipe"));
  Fd in_read(in_fds[0]);
  Fd in_write(in_fds[1]);
  int out_fds[2];
  if (::pipe2(out_fds, O_CLOEXEC) != 0) return Status::Retryable(Code::kResourceExhausted, Errno("pipe"));
  Fd out_read(out_fds[0]);
  Fd out_write(out_fds[1]);

  pid_t pid = ::fork();
  if (pid < 0) return Status::Retryable(Code::kResourceExhausted, Errno("fork"));
  if (pid == 0)
    ExecChild(path.c_str(), argp.data(), envp.data(), cwd.c_str(), in_read.get(), out_write.get(), limits);
  ::setpgid(pid, pid);
  in_read.Reset();
  out_write.Reset();

  std::unique_ptr<ContainedProcess> p(new ContainedProcess());
  p->pid_ = pid;
  p->stdin_fd_ = in_write.Release();
  p->output_fd_ = out_read.Release();
  return p;
}

ContainedProcess::~ContainedProcess() {
  if (!reaped_) {
    Kill();
    Reap(true);
  }
  if (stdin_fd_ >= 0) ::close(stdin_fd_);
  if (output_fd_ >= 0) ::close(output_fd_);
}

Status ContainedProcess::Write(std::string_view data) {
  // Block SIGPIPE in this thread for the write, then consume a pending one: a dead child must
  // not kill the worker process.
  sigset_t pipe_set, old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  Status result;
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(stdin_fd_, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      result = Status::Retryable(Code::kIoError, Errno("write to the render process"));
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (!result.ok()) {
    sigset_t pending;
    sigpending(&pending);
    if (sigismember(&pending, SIGPIPE)) {
      timespec zero{0, 0};
      ::sigtimedwait(&pipe_set, nullptr, &zero);
    }
  }
  ::pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  return result;
}

bool ContainedProcess::Read(std::string& out, std::chrono::milliseconds wait) {
  if (eof_) return false;
  pollfd pfd{output_fd_, POLLIN, 0};
  int r = ::poll(&pfd, 1, static_cast<int>(std::max<int64_t>(0, wait.count())));
  if (r <= 0) return true;
  char buf[8192];
  while (true) {
    ssize_t n = ::read(output_fd_, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      if (static_cast<size_t>(n) < sizeof buf) return true;
      pollfd again{output_fd_, POLLIN, 0};
      if (::poll(&again, 1, 0) <= 0) return true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    eof_ = true;
    return false;
  }
}

void ContainedProcess::Kill() {
  if (reaped_ || pid_ <= 0) return;
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
}

bool ContainedProcess::Reap(bool block) {
  if (reaped_) return true;
  int status = 0;
  rusage usage{};
  pid_t w;
  do {
    w = ::wait4(pid_, &status, block ? 0 : WNOHANG, &usage);
  } while (w < 0 && errno == EINTR);
  if (w != pid_) return false;
  reaped_ = true;
  final_cpu_seconds_ = Seconds(usage.ru_utime) + Seconds(usage.ru_stime);
  final_max_rss_bytes_ = static_cast<int64_t>(usage.ru_maxrss) * 1024;
  if (WIFEXITED(status)) {
    exited_ = true;
    exit_code_ = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    signal_ = WTERMSIG(status);
  }
  return true;
}

double ContainedProcess::CpuSeconds() const {
  if (reaped_) return final_cpu_seconds_;
  std::ifstream f("/proc/" + std::to_string(pid_) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return -1;
  // Fields after the command name (which may contain blanks) start after the last ')'.
  size_t close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream in(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  long ticks = ::sysconf(_SC_CLK_TCK);
  if (ticks <= 0) return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(ticks);
}

int64_t ContainedProcess::PeakRssBytes() const {
  if (reaped_) return final_max_rss_bytes_;
  std::ifstream f("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::atoll(line.c_str() + 6) * 1024;
  return -1;
}

Status ContainedProcess::SetCpuLimit(int64_t soft_seconds, int64_t hard_seconds) {
  rlimit cpu{Limit(soft_seconds), Limit(hard_seconds)};
  if (::prlimit(pid_, RLIMIT_CPU, &cpu, nullptr) != 0)
    return Status::Retryable(Code::kInternal, Errno("prlimit of the render process"));
  return Status::Ok();
}

}  // namespace faxflow::imaging
