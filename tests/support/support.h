// Helpers for tests that run real processes: temp dirs, child processes (faxflow roles),
// awaiting conditions with a deadline (never fixed sleeps), free ports, HTTP calls.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace faxflow::testing {

// Root of the source tree (tests find tests/data there) and the faxflow binary under test.
std::string SourceDir();
std::string FaxflowBinary();
std::string DataFile(const std::string& name);  // SourceDir()/tests/data/<name>
std::string ReadFileOrDie(const std::string& path);

// A fresh directory under $TMPDIR; removed by the destructor unless FAXFLOW_KEEP_TEST_DIRS is set.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "faxflow-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Polls `condition` every `interval` until it is true (returns true) or `timeout` passes (false).
bool Await(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
           std::chrono::milliseconds interval = std::chrono::milliseconds(50));

// A TCP port that was free a moment ago on 127.0.0.1.
int FreePort();
// A port P such that P and P+1 are free (a Kafka broker and its controller), chosen below the
// ephemeral range so that other tests' sockets cannot take them in the meantime.
int FreePortPair();

// A single-node Kafka broker of this test alone (scripts/kafka on FreePortPair ports, state in
// `state_dir`, started --fresh, up to 3 tries), stopped by the destructor. Tests that use one
// share the CTest RESOURCE_LOCK faxflow_private_broker.
class PrivateKafkaBroker {
 public:
  explicit PrivateKafkaBroker(std::string state_dir);
  ~PrivateKafkaBroker();
  PrivateKafkaBroker(const PrivateKafkaBroker&) = delete;
  PrivateKafkaBroker& operator=(const PrivateKafkaBroker&) = delete;
  bool ok() const { return ok_; }
  int port() const { return port_; }
  std::string bootstrap() const { return "127.0.0.1:" + std::to_string(port_); }
  // Runs `scripts/kafka <command>` for this broker; returns its exit status.
  int Script(const std::string& command) const;

 private:
  int port_ = 0;
  std::string state_;
  bool ok_ = false;
};

// One PrivateKafkaBroker for every test of this process (suites compiled to run on Kafka):
// started on the first call (state in a TempDir named after `prefix`), stopped at process exit.
// Throws std::runtime_error when it does not start.
const PrivateKafkaBroker& SharedPrivateKafkaBroker(const std::string& prefix = "faxflow-kafka");

// A TCP listener on `host` (a loopback address) that accepts and at once closes connections,
// counting them: proves that a guard (SSRF, URL fetch) never connected to a forbidden target.
// Serves on its own thread until destroyed.
class CountingListener {
 public:
  explicit CountingListener(const std::string& host = "127.0.0.1");
  ~CountingListener();
  CountingListener(const CountingListener&) = delete;
  CountingListener& operator=(const CountingListener&) = delete;
  int port() const { return port_; }
  int accepted() const { return accepted_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

// A child process with stdout+stderr going to a log file. The destructor kills it (SIGKILL).
class ChildProcess {
 public:
  ChildProcess(std::vector<std::string> argv, std::string log_path,
               std::map<std::string, std::string> env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  void Signal(int sig);
  // Waits for exit up to `timeout`; returns the wait status, or -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  bool reaped_ = false;
  int status_ = 0;
};

struct HttpResponse {
  int status = 0;  // 0: no connection
  std::string body;
};
HttpResponse HttpGet(int port, const std::string& path);
struct FormPart {
  std::string name;
  std::string content;
  std::string filename;  // empty for plain fields
};
HttpResponse HttpPostForm(int port, const std::string& path, const std::vector<FormPart>& parts);

// Prometheus text exposition: the sum of the samples named exactly `name` (a family, or one of its
// _bucket/_count/_sum series) whose labels include every pair of `labels`; 0 when none matches.
using MetricLabels = std::map<std::string, std::string>;
double MetricSum(const std::string& metrics_text, const std::string& name, const MetricLabels& labels = {});
// GET /metrics on 127.0.0.1:`port`, then MetricSum; NaN when /metrics does not answer 200.
double ScrapeMetric(int port, const std::string& name, const MetricLabels& labels = {});

// CSV lines split at commas (no quoted commas in what the tests compare); a trailing comma ends
// the line with an empty cell.
inline std::vector<std::vector<std::string>> SplitCsv(const std::string& csv) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(csv);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::string cell;
    std::istringstream ls(line);
    while (std::getline(ls, cell, ',')) cells.push_back(cell);
    if (!line.empty() && line.back() == ',') cells.push_back("");
    rows.push_back(cells);
  }
  return rows;
}

}  // namespace faxflow::testing
