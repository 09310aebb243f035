#include "tests/support/support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

namespace faxflow::testing {

std::string SourceDir() {
  const char* d = std::getenv("FAXFLOW_SOURCE_DIR");
  if (d == nullptr) throw std::runtime_error("FAXFLOW_SOURCE_DIR is not set (run the test through ctest)");
  return d;
}

std::string FaxflowBinary() {
  const char* b = std::getenv("FAXFLOW_BINARY");
  if (b == nullptr) throw std::runtime_error("FAXFLOW_BINARY is not set (run the test through ctest)");
  return b;
}

std::string DataFile(const std::string& name) { return SourceDir() + "/tests/data/" + name; }

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TempDir::TempDir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  if (std::getenv("FAXFLOW_KEEP_TEST_DIRS") == nullptr) {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
}

bool Await(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
           std::chrono::milliseconds interval) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    throw std::runtime_error("bind failed");
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

namespace {
bool CanBind(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}
}  // namespace

int FreePortPair() {
  // Below Linux's ephemeral range (32768-60999), so no outgoing connection or port-0 listener
  // of another test can take either port between this check and the broker's bind.
  static std::atomic<uint32_t> seed{static_cast<uint32_t>(getpid()) * 2654435761u};
  for (int attempt = 0; attempt < 200; ++attempt) {
    const uint32_t r = seed.fetch_add(7919) * 2654435761u;
    const int port = 20000 + static_cast<int>((r >> 8) % 12000) / 2 * 2;
    if (CanBind(port) && CanBind(port + 1)) return port;
  }
  throw std::runtime_error("no two consecutive free ports in 20000-32000");
}

PrivateKafkaBroker::PrivateKafkaBroker(std::string state_dir) : state_(std::move(state_dir)) {
  for (int attempt = 0; attempt < 3 && !ok_; ++attempt) {
    port_ = FreePortPair();
    ok_ = Script("start --fresh") == 0;
    if (!ok_) Script("stop");
  }
}

PrivateKafkaBroker::~PrivateKafkaBroker() { Script("stop"); }

const PrivateKafkaBroker& SharedPrivateKafkaBroker(const std::string& prefix) {
  struct Broker {
    explicit Broker(const std::string& p) : state(p), broker(state.path()) {}
    TempDir state;
    PrivateKafkaBroker broker;
  };
  static Broker* const shared = [&] {
    static Broker b(prefix);  // destroyed (broker stopped) at exit
    if (!b.broker.ok()) throw std::runtime_error("the private Kafka broker did not start");
    return &b;
  }();
  return shared->broker;
}

int PrivateKafkaBroker::Script(const std::string& command) const {
  const std::string cmd = "FAXFLOW_KAFKA_PORT=" + std::to_string(port_) + " FAXFLOW_KAFKA_STATE=" + state_ +
                          " " + SourceDir() + "/scripts/kafka " + command + " >&2";
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

ChildProcess::ChildProcess(std::vector<std::string> argv, std::string log_path,
                           std::map<std::string, std::string> env)
    : log_path_(std::move(log_path)) {
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
  }
}

bool ChildProcess::Running() {
  if (reaped_) return false;
  pid_t r = waitpid(pid_, &status_, WNOHANG);
  if (r == pid_) reaped_ = true;
  return !reaped_;
}

void ChildProcess::Signal(int sig) {
  if (!reaped_) kill(pid_, sig);
}

int ChildProcess::Wait(std::chrono::milliseconds timeout) {
  if (!Await([&] { return !Running(); }, timeout, std::chrono::milliseconds(20))) return -1;
  return status_;
}

std::string ChildProcess::Log() const {
  std::ifstream in(log_path_);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

HttpResponse HttpGet(int port, const std::string& path) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(std::chrono::seconds(2));
  c.set_read_timeout(std::chrono::seconds(30));
  auto r = c.Get(path.c_str());
  if (!r) return {};
  return {r->status, r->body};
}

HttpResponse HttpPostForm(int port, const std::string& path, const std::vector<FormPart>& parts) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(std::chrono::seconds(2));
  c.set_read_timeout(std::chrono::seconds(60));
  c.set_write_timeout(std::chrono::seconds(60));
  httplib::MultipartFormDataItems items;
  for (const auto& p : parts)
    items.push_back({p.name, p.content, p.filename, p.filename.empty() ? "" : "application/octet-stream"});
  auto r = c.Post(path.c_str(), items);
  if (!r) return {};
  return {r->status, r->body};
}

double MetricSum(const std::string& metrics_text, const std::string& name, const MetricLabels& labels) {
  double sum = 0;
  size_t at = 0;
  while (at < metrics_text.size()) {
    size_t end = metrics_text.find('\n', at);
    if (end == std::string::npos) end = metrics_text.size();
    const std::string_view line(metrics_text.data() + at, end - at);
    at = end + 1;
    if (line.empty() || line[0] == '#' || line.substr(0, name.size()) != name) continue;
    const char next = line.size() > name.size() ? line[name.size()] : ' ';
    if (next != ' ' && next != '{') continue;
    const size_t space = line.rfind(' ');
    if (space == std::string_view::npos) continue;
    if (next == '{') {
      const size_t close = line.rfind('}', space);
      if (close == std::string_view::npos) continue;
      const std::string_view set = line.substr(name.size() + 1, close - name.size() - 1);
      bool all = true;
      for (const auto& [k, v] : labels) {
        // Label pairs are `k="v"` separated by commas; values here never contain `",`.
        const std::string pair = k + "=\"" + v + "\"";
        size_t pos = set.find(pair);
        bool found = false;
        while (pos != std::string_view::npos && !found) {
          const bool starts = pos == 0 || set[pos - 1] == ',';
          const bool ends = pos + pair.size() == set.size() || set[pos + pair.size()] == ',';
          found = starts && ends;
          pos = set.find(pair, pos + 1);
        }
        all = all && found;
      }
      if (!all) continue;
    } else if (!labels.empty()) {
      continue;
    }
    sum += std::strtod(std::string(line.substr(space + 1)).c_str(), nullptr);
  }
  return sum;
}

double ScrapeMetric(int port, const std::string& name, const MetricLabels& labels) {
  auto r = HttpGet(port, "/metrics");
  if (r.status != 200) return std::nan("");
  return MetricSum(r.body, name, labels);
}

CountingListener::CountingListener(const std::string& host) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  addr.sin_port = 0;
  if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd_, 16) != 0)
    throw std::runtime_error("CountingListener: cannot listen on " + host);
  socklen_t len = sizeof(addr);
  getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) > 0) {
        const int c = accept(fd_, nullptr, nullptr);
        if (c >= 0) {
          ++accepted_;
          close(c);
        }
      }
    }
  });
}

CountingListener::~CountingListener() {
  stop_ = true;
  thread_.join();
  close(fd_);
}

}  // namespace faxflow::testing
