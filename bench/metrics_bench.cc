// metrics_bench: the cost of a Prometheus scrape of a busy modem worker (issue 7).
//
// The pipeline runs in this process (Pipeline::Start, every role, embedded bus) with
// modem.channels=100 on the sim line in real time (sim.realtime=true: every channel is a call paced
// like a real line, so "busy" means 100 calls in progress, not 100 threads spinning). One fax-ready
// TIFF page is submitted to 100 answering numbers plus busy / no-answer / dropping ones, so the
// outcome, page and call-time series move while we scrape. Once at least 95 channels are busy,
// GET /metrics is fetched over loopback HTTP (as Prometheus does) `samples` times, 50 ms apart.
//
// Rows (JSON lines on stdout, bench/README.md conventions):
//   metrics.modem100.scrape_p99_ms  p99 response time of /metrics      target 50 ms, lower, absolute
//   metrics.modem100.bytes          size of the /metrics response      target 1 MB, lower, absolute
//   metrics.modem100.scrape_p50_ms / scrape_max_ms / busy_channels / series   informational
//   metrics.modem100.serialize_p99_ms  the registry serialized in-process (no HTTP)  informational
// The raw side is null: there is no library to compare a scrape with.
//
// Flags: --quick (fewer samples), --only SUBSTRING, --no-kafka (accepted; this bench needs no broker).
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "app/pipeline.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/metrics.h"

namespace {

namespace fs = std::filesystem;
using Steady = std::chrono::steady_clock;

struct Flags {
  bool quick = false;
  std::string only;
} g_flags;

bool Selected(const std::string& name) {
  return g_flags.only.empty() || name.find(g_flags.only) != std::string::npos;
}

void Row(const std::string& name, double value, const char* unit, const char* target_json, const char* better,
         const char* compare) {
  if (!Selected(name)) return;
  std::printf(
      "{\"bench\":\"%s\",\"faxflow\":%.6g,\"raw\":null,\"unit\":\"%s\",\"ratio\":null,\"target\":%s,"
      "\"better\":\"%s\",\"compare\":\"%s\"}\n",
      name.c_str(), value, unit, target_json, better, compare);
  std::fflush(stdout);
}

void Skip(const std::string& name, const std::string& why) {
  if (!Selected(name)) return;
  std::printf("{\"bench\":\"%s\",\"skipped\":\"%s\"}\n", name.c_str(), why.c_str());
  std::fflush(stdout);
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

std::string SourceDir() {
  if (const char* d = std::getenv("FAXFLOW_SOURCE_DIR")) return d;
  return FAXFLOW_SOURCE_DIR_DEFAULT;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

int BusyChannels(const std::string& metrics) {
  static const std::regex re(R"re(faxflow_modem_channels\{[^}]*state="busy"[^}]*\} ([0-9.e+]+))re");
  std::smatch m;
  int busy = 0;
  for (auto it = metrics.cbegin(); std::regex_search(it, metrics.cend(), m, re); it = m.suffix().first)
    busy += static_cast<int>(std::stod(m[1]));
  return busy;
}

size_t Series(const std::string& metrics) {
  size_t n = 0;
  std::istringstream in(metrics);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty() && line[0] != '#') ++n;
  return n;
}

void Run() {
  const std::vector<std::string> rows = {"metrics.modem100.scrape_p99_ms",   "metrics.modem100.bytes",
                                         "metrics.modem100.scrape_p50_ms",   "metrics.modem100.scrape_max_ms",
                                         "metrics.modem100.busy_channels",   "metrics.modem100.series",
                                         "metrics.modem100.serialize_p99_ms"};
  bool any = false;
  for (const auto& r : rows) any = any || Selected(r);
  if (!any) return;
  auto skip_all = [&](const std::string& why) {
    for (const auto& r : rows) Skip(r, why);
  };

  const fs::path dir = fs::path(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") /
                       ("faxflow-metrics-bench-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto config =
      faxflow::LoadConfig(std::nullopt, {{"data_dir", dir.string()},
                                         {"gateway.listen", "127.0.0.1:" + std::to_string(FreePort())},
                                         {"admin.listen", "127.0.0.1:0"},
                                         {"gateway.auth", "none"},
                                         {"log.level", "warn"},
                                         {"modem.channels", "100"},
                                         {"gateway.max_recipients", "200"},
                                         {"sim.realtime", "true"},
                                         {"sim.received_dir", (dir / "received").string()}});
  if (!config.ok()) return skip_all("config: " + config.status().ToString());
  faxflow::SetLogLevel(config->log_level);
  std::cerr << "metrics_bench: starting the embedded pipeline with 100 sim channels in " << dir << "\n";
  auto pipeline = faxflow::Pipeline::Start(*config, faxflow::Roles::All(), faxflow::SystemClock::Instance());
  if (!pipeline.ok()) return skip_all("pipeline did not start: " + pipeline.status().ToString());
  const int port = (*pipeline)->http_port();

  std::string page;
  {
    std::ifstream in(SourceDir() + "/tests/data/fax-page.tif", std::ios::binary);
    page.assign(std::istreambuf_iterator<char>(in), {});
  }
  if (page.empty()) return skip_all("tests/data/fax-page.tif not found (set FAXFLOW_SOURCE_DIR)");

  httplib::Client client("127.0.0.1", port);
  client.set_keep_alive(true);
  client.set_read_timeout(std::chrono::seconds(30));
  // 100 answering numbers keep every channel in a call; busy, no-answer, voice and dropping numbers
  // end quickly and make the outcome series move during the scrapes. Two submissions so that the
  // lines stay busy while the first short calls end.
  for (int batch = 0; batch < 2; ++batch) {
    httplib::MultipartFormDataItems items;
    items.push_back({"file", page, "page.tif", "application/octet-stream"});
    for (const char* n : {"+15550100001", "+15550100002", "+15550100003", "+15550100005", "+15550100006"})
      for (int k = 0; k < 4; ++k) items.push_back({"to", n, "", ""});
    for (int i = 0; i < 100; ++i) {
      char number[32];
      std::snprintf(number, sizeof number, "+1555020%04d", batch * 100 + i);
      items.push_back({"to", number, "", ""});
    }
    auto r = client.Post("/v1/faxes", items);
    if (!r || r->status != 202) {
      (*pipeline)->Stop();
      fs::remove_all(dir);
      return skip_all("submission rejected: " +
                      (r ? std::to_string(r->status) + " " + r->body : httplib::to_string(r.error())));
    }
  }

  // Wait until (nearly) every channel is in a call.
  int busy = 0;
  const auto deadline = Steady::now() + std::chrono::seconds(90);
  while (Steady::now() < deadline) {
    auto m = client.Get("/metrics");
    if (m && m->status == 200) busy = BusyChannels(m->body);
    if (busy >= 95) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::cerr << "metrics_bench: " << busy << " channels busy\n";
  if (busy < 95) {
    (*pipeline)->Stop();
    fs::remove_all(dir);
    return skip_all("only " + std::to_string(busy) + " of 100 channels became busy in 90 s");
  }

  const int samples = g_flags.quick ? 40 : 200;
  std::vector<double> ms;
  size_t bytes = 0, series = 0;
  int busy_min = 100;
  for (int i = 0; i < samples; ++i) {
    const auto t0 = Steady::now();
    auto m = client.Get("/metrics");
    const auto t1 = Steady::now();
    if (!m || m->status != 200) continue;
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    bytes = std::max(bytes, m->body.size());
    series = std::max(series, Series(m->body));
    busy_min = std::min(busy_min, BusyChannels(m->body));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // The same registry serialized in-process: the metrics' own share of a scrape (no HTTP, no
  // scheduling of the server thread).
  std::vector<double> serialize_ms;
  for (int i = 0; i < samples; ++i) {
    const auto t0 = Steady::now();
    const std::string text = faxflow::SerializeMetrics((*pipeline)->registry());
    serialize_ms.push_back(std::chrono::duration<double, std::milli>(Steady::now() - t0).count());
    if (text.empty()) break;
  }
  std::cerr << "metrics_bench: " << ms.size() << " scrapes, busy channels >= " << busy_min
            << " during them\n";
  if (ms.empty()) {
    skip_all("no /metrics answer");
  } else {
    Row("metrics.modem100.scrape_p99_ms", Percentile(ms, 0.99), "ms", "50", "lower", "absolute");
    Row("metrics.modem100.bytes", static_cast<double>(bytes), "bytes", "1048576", "lower", "absolute");
    Row("metrics.modem100.scrape_p50_ms", Percentile(ms, 0.5), "ms", "null", "lower", "absolute");
    Row("metrics.modem100.scrape_max_ms", Percentile(ms, 1.0), "ms", "null", "lower", "absolute");
    Row("metrics.modem100.busy_channels", busy_min, "channels", "null", "higher", "absolute");
    Row("metrics.modem100.series", static_cast<double>(series), "series", "null", "lower", "absolute");
    Row("metrics.modem100.serialize_p99_ms", Percentile(serialize_ms, 0.99), "ms", "null", "lower",
        "absolute");
  }
  // In-flight calls are handed back on Stop (the dial ledger resumes them on a next start).
  (*pipeline)->Stop();
  fs::remove_all(dir);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      g_flags.quick = true;
    } else if (a == "--only" && i + 1 < argc) {
      g_flags.only = argv[++i];
    } else if (a == "--no-kafka") {
      // Nothing to skip: this bench runs on the embedded bus.
    } else {
      std::cerr << "usage: metrics_bench [--quick] [--only S] [--no-kafka]\n";
      return 2;
    }
  }
  Run();
  return 0;
}
