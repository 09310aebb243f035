// Helper process for modem_crash_test: runs one modem worker (1 channel, sim line) on an
// embedded bus and stores in <dir>, until SIGTERM (clean stop) or SIGKILL (the test's crash).
// It appends progress lines to <dir>/progress ("page <job> <n>", "terminal <job> <state>"),
// and with --block-after-page N it stops dead right after the ledger recorded page N of a call
// (so that the parent's kill -9 lands after page N and before page N+1).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/metrics.h"
#include "storage/blob_store.h"
#include "storage/dedup_store.h"
#include "topics/catalogue.h"
#include "topics/embedded/embedded_bus.h"
#include "workers/modem/modem_worker.h"

namespace faxflow::modem {
namespace {

class ProgressDedup final : public DedupStore {
 public:
  ProgressDedup(DedupStore& real, std::string path, int block_after)
      : real_(real), path_(std::move(path)), block_after_(block_after) {}
  Result<std::optional<JobLedger>> Get(const std::string& j) override { return real_.Get(j); }
  Status BeginAttempt(const std::string& j, int32_t a, int32_t t, int64_t n) override {
    return real_.BeginAttempt(j, a, t, n);
  }
  Status ConfirmPage(const std::string& j, int32_t a, int32_t p, int64_t n) override {
    Status st = real_.ConfirmPage(j, a, p, n);
    Append("page " + j + " " + std::to_string(p));
    if (st.ok() && p == block_after_) {
      Append("blocked " + j);
      while (true) std::this_thread::sleep_for(std::chrono::seconds(1));  // until kill -9
    }
    return st;
  }
  Status FinishAttempt(const std::string& j, int32_t a, bool term, int32_t s, int32_t r, int64_t n) override {
    Status st = real_.FinishAttempt(j, a, term, s, r, n);
    if (st.ok() && term) Append("terminal " + j + " " + std::to_string(s));
    return st;
  }
  Result<int32_t> CountSuppressed(const std::string& j) override { return real_.CountSuppressed(j); }

 private:
  void Append(const std::string& line) {
    std::ofstream out(path_, std::ios::app);
    out << line << "\n";
  }
  DedupStore& real_;
  std::string path_;
  int block_after_;
};

int Main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: modem_crash_child <dir> [--block-after-page N]\n";
    return 2;
  }
  const std::string dir = argv[1];
  int block_after = 0;
  if (argc >= 4 && std::string(argv[2]) == "--block-after-page") block_after = std::atoi(argv[3]);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  SystemClock& clock = SystemClock::Instance();
  auto bus = bus::OpenEmbeddedBus(dir + "/bus");
  if (!bus.ok()) return std::cerr << bus.status().ToString() << "\n", 1;
  if (Status st = (*bus)->EnsureTopics(bus::Catalogue()); !st.ok())
    return std::cerr << st.ToString() << "\n", 1;
  auto blobs = OpenRocksBlobStore(dir + "/blobs", RocksBlobStoreOptions{}, [&] { return clock.NowMillis(); });
  if (!blobs.ok()) return std::cerr << blobs.status().ToString() << "\n", 1;
  auto dedup = OpenRocksDedupStore(dir + "/dedup");
  if (!dedup.ok()) return std::cerr << dedup.status().ToString() << "\n", 1;
  ProgressDedup progress(**dedup, dir + "/progress", block_after);
  ModemOptions o;
  o.channels = 1;
  o.work_dir = dir + "/work";
  o.site = "crash";
  o.state_dir = dir + "/schedule";
  o.sim.received_dir = dir + "/received";
  o.poll_timeout = std::chrono::milliseconds(20);
  o.stop_grace = std::chrono::milliseconds(0);
  auto line = MakeSimLine(o, clock);
  if (!line.ok()) return std::cerr << line.status().ToString() << "\n", 1;
  prometheus::Registry registry;
  ModemWorker worker(o, **bus, **blobs, progress, **line, registry, clock);
  if (Status st = worker.Start(); !st.ok()) return std::cerr << st.ToString() << "\n", 1;
  std::cout << "started" << std::endl;
  int sig = 0;
  sigwait(&set, &sig);
  worker.Stop();
  return 0;
}

}  // namespace
}  // namespace faxflow::modem

int main(int argc, char** argv) { return faxflow::modem::Main(argc, argv); }
