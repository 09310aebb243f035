// Helpers for the storage tests: a temporary directory and a child process that can be killed.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace faxflow::storage_test {

// A fresh directory under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "faxflow-storage-XXXXXX").string();
    char* made = mkdtemp(pattern.data());
    if (made == nullptr) ADD_FAILURE() << "mkdtemp failed: errno " << errno;
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string Sub(const std::string& name) const { return (std::filesystem::path(path_) / name).string(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Starts storage_crash_child with `args`, its stdout on a pipe. Each line the child prints is one
// acknowledged (returned OK) operation. WaitForLines reads until `count` lines arrived; Kill
// sends SIGKILL, reaps the child and drains the lines it wrote before dying.
class CrashChild {
 public:
  explicit CrashChild(const std::vector<std::string>& args) {
    int fds[2];
    if (pipe(fds) != 0) {
      ADD_FAILURE() << "pipe failed";
      return;
    }
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      close(fds[0]);
      close(fds[1]);
      std::vector<char*> argv;
      std::string program = FAXFLOW_STORAGE_CRASH_CHILD;
      argv.push_back(program.data());
      std::vector<std::string> copy = args;
      for (std::string& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(program.c_str(), argv.data());
      _exit(127);
    }
    close(fds[1]);
    fd_ = fds[0];
  }
  ~CrashChild() {
    if (pid_ > 0) Kill();
    if (fd_ >= 0) close(fd_);
  }

  // Reads lines until at least `count` arrived or `timeout` passed; returns whether it got them.
  bool WaitForLines(size_t count, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (lines_.size() < count && std::chrono::steady_clock::now() < deadline) {
      if (!ReadSome()) return lines_.size() >= count;  // EOF: the child died on its own
    }
    return lines_.size() >= count;
  }

  // SIGKILL, reap, then drain every complete line already in the pipe. Returns the wait status.
  int Kill() {
    int status = 0;
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      pid_ = -1;
      while (ReadSome()) {
      }
    }
    return status;
  }

  const std::vector<std::string>& lines() const { return lines_; }

 private:
  // One blocking read; false on EOF or error.
  bool ReadSome() {
    char buf[4096];
    ssize_t n = read(fd_, buf, sizeof(buf));
    if (n <= 0) return false;
    partial_.append(buf, static_cast<size_t>(n));
    size_t pos;
    while ((pos = partial_.find('\n')) != std::string::npos) {
      lines_.push_back(partial_.substr(0, pos));
      partial_.erase(0, pos + 1);
    }
    return true;
  }

  pid_t pid_ = -1;
  int fd_ = -1;
  std::string partial_;
  std::vector<std::string> lines_;
};

}  // namespace faxflow::storage_test
