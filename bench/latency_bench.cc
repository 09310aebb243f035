// latency_bench: submission to ready-to-dial latency, render time excluded (issue 8).
//
// Definition (docs/performance.md, "Submission to ready-to-dial"): for every job, the time from
// the moment the fax's Submission record is readable on fax.submissions (the gateway has made it
// durable and answers 202 right after) to the moment the job is readable on fax.jobs, both seen
// by one read_committed consumer in this process (the way a modem worker reads), minus the
// render_seconds the imaging worker reported in the fax's Rendered event. The client-side view
// (request start -> job readable, minus render) and the 202 round trip are reported beside it.
// The pipeline runs in this process (Pipeline::Start with the gateway and imaging roles; no
// modem role, so the line side costs no CPU), and is driven over real HTTP on loopback at a
// fixed submission rate by paced client threads. The document is one fax-ready TIFF page
// (tests/data/fax-page.tif), which the imaging worker validates and stores without Ghostscript.
// The embedded scenario always runs; the Kafka scenario runs when --no-kafka is absent and a
// broker answers at $FAXFLOW_KAFKA_BOOTSTRAP (it uses the catalogue topics on that broker).
//
// Flags: --quick, --only SUBSTRING, --no-kafka, --rate N (default 200), --seconds S.
// Output: JSON lines on stdout (bench/README.md); progress on stderr.
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "app/pipeline.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "pages/pages.h"
#include "schemas/event.pb.h"
#include "schemas/job.pb.h"
#include "schemas/submission.pb.h"
#include "topics/catalogue.h"

namespace {

using Steady = std::chrono::steady_clock;
namespace fs = std::filesystem;

struct Flags {
  bool quick = false;
  bool no_kafka = false;
  std::string only;
  double rate = 200;
  double seconds = 0;
} g_flags;

bool Selected(const std::string& name) {
  return g_flags.only.empty() || name.find(g_flags.only) != std::string::npos;
}

void EmitRow(const nlohmann::json& row) { std::cout << row.dump() << std::endl; }

void Emit(const std::string& bench, double value, const std::string& unit, std::optional<double> target,
          const std::string& better, nlohmann::json extra = nlohmann::json::object()) {
  nlohmann::json row = {
      {"bench", bench},   {"faxflow", std::round(value * 100) / 100},
      {"raw", nullptr},   {"unit", unit},
      {"ratio", nullptr}, {"target", target ? nlohmann::json(*target) : nlohmann::json(nullptr)},
      {"better", better}, {"compare", "absolute"}};
  for (auto& [k, v] : extra.items()) row[k] = v;
  EmitRow(row);
}

void Skip(const std::string& bench, const std::string& why) { EmitRow({{"bench", bench}, {"skipped", why}}); }

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
}

struct Scenario {
  std::string name;  // row prefix
  int pages = 1;
  int recipients = 1;
  double rate = 200;
  double seconds = 3;
  std::optional<double> p99_target_ms;
};

struct Result {
  std::vector<double> ready_ms;         // per job: Submission readable -> job readable, minus render time
  std::vector<double> from_request_ms;  // per job: request started -> job readable, minus render time
  std::vector<double> accept_ms;        // per fax: request start -> 202
  std::vector<double> render_ms;        // per fax
  long submitted = 0, accepted = 0, rejected = 0, jobs = 0, missing = 0;
  double achieved_rate = 0;
  std::string first_error;
};

// Runs one scenario against a running pipeline.
Result Drive(faxflow::Pipeline& pipeline, const Scenario& sc, const std::string& document) {
  Result res;
  std::mutex mu;
  std::unordered_map<std::string, Steady::time_point> sent_at;                // fax id -> request started
  std::unordered_map<std::string, Steady::time_point> on_bus_at;              // fax id -> Submission readable
  std::unordered_map<std::string, double> render_s;                           // fax id -> render seconds
  std::unordered_map<std::string, std::vector<Steady::time_point>> job_seen;  // fax id -> job visible
  std::unordered_map<std::string, int> expected;                              // fax id -> recipients

  // The reader: a read_committed consumer of fax.jobs and fax.events from their end offsets.
  auto& bus = pipeline.bus();
  const std::string group = "latency-bench-" + std::to_string(::getpid()) + "-" + sc.name;
  auto consumer = bus.NewConsumer({group, group, true});
  if (!consumer.ok()) {
    res.first_error = consumer.status().ToString();
    return res;
  }
  std::vector<faxflow::bus::TopicPartition> tps;
  for (auto t :
       {faxflow::bus::topic::kSubmissions, faxflow::bus::topic::kJobs, faxflow::bus::topic::kEvents}) {
    auto n = bus.PartitionCount(std::string(t));
    for (int32_t p = 0; n.ok() && p < *n; ++p) tps.push_back({std::string(t), p});
  }
  if (!(*consumer)->Assign(tps).ok()) {
    res.first_error = "assign failed";
    return res;
  }
  std::vector<std::pair<faxflow::bus::TopicPartition, int64_t>> to_seek;
  for (const auto& tp : tps) {
    auto end = (*consumer)->EndOffset(tp);
    if (end.ok()) to_seek.push_back({tp, *end});
  }
  // Kafka refuses a seek until the assignment is active (_STATE): retry the ones refused, all
  // together, for up to 10 s (one partition after the other would add up the waits).
  for (int round = 0; round < 200 && !to_seek.empty(); ++round) {
    std::vector<std::pair<faxflow::bus::TopicPartition, int64_t>> refused;
    for (const auto& [tp, end] : to_seek)
      if (!(*consumer)->Seek(tp, end).ok()) refused.push_back({tp, end});
    to_seek = std::move(refused);
    if (!to_seek.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop) {
      auto records = (*consumer)->Poll(std::chrono::milliseconds(50), 1000);
      const auto now = Steady::now();
      if (!records.ok()) continue;
      std::lock_guard lock(mu);
      for (const auto& r : *records) {
        if (r.topic == faxflow::bus::topic::kSubmissions) {
          faxflow::v1::Submission sub;
          if (sub.ParseFromString(r.value)) on_bus_at.emplace(sub.fax_id(), now);
        } else if (r.topic == faxflow::bus::topic::kJobs) {
          faxflow::v1::OutboundJob job;
          if (job.ParseFromString(r.value)) job_seen[job.fax_id()].push_back(now);
        } else {
          faxflow::v1::DeliveryEvent e;
          if (e.ParseFromString(r.value) && e.has_rendered())
            render_s[e.fax_id()] = e.rendered().render_seconds();
        }
      }
    }
  });

  // Paced senders.
  const int threads = 32;  // blocking HTTP clients: enough to hold 200/s with ~100 ms responses
  const long total = static_cast<long>(sc.rate * sc.seconds);
  std::atomic<long> next{0};
  const auto t0 = Steady::now() + std::chrono::milliseconds(50);
  std::vector<std::thread> senders;
  for (int t = 0; t < threads; ++t) {
    senders.emplace_back([&, t] {
      httplib::Client client("127.0.0.1", pipeline.http_port());
      client.set_keep_alive(true);
      client.set_read_timeout(std::chrono::seconds(30));
      while (true) {
        const long seq = next++;
        if (seq >= total) break;
        std::this_thread::sleep_until(t0 +
                                      std::chrono::duration_cast<Steady::duration>(
                                          std::chrono::duration<double>(static_cast<double>(seq) / sc.rate)));
        httplib::MultipartFormDataItems items;
        items.push_back({"file", document, "page.tif", "application/octet-stream"});
        for (int i = 0; i < sc.recipients; ++i) {
          char number[32];
          std::snprintf(number, sizeof number, "+1555010%04d", 100 + (t * 1000 + i) % 9900);
          items.push_back({"to", number, "", ""});
        }
        const auto sent = Steady::now();
        auto r = client.Post("/v1/faxes", items);
        const auto got = Steady::now();
        std::lock_guard lock(mu);
        res.submitted++;
        if (!r || r->status != 202) {
          res.rejected++;
          if (res.first_error.empty())
            res.first_error = r ? std::to_string(r->status) + " " + r->body : httplib::to_string(r.error());
          continue;
        }
        auto j = nlohmann::json::parse(r->body, nullptr, false);
        if (j.is_discarded() || !j.contains("id")) continue;
        const std::string id = j["id"].get<std::string>();
        sent_at[id] = sent;
        expected[id] = sc.recipients;
        res.accepted++;
        res.accept_ms.push_back(std::chrono::duration<double, std::milli>(got - sent).count());
        (void)t;
      }
    });
  }
  for (auto& s : senders) s.join();
  const double send_seconds = std::chrono::duration<double>(Steady::now() - t0).count();
  res.achieved_rate = static_cast<double>(res.accepted) / std::max(send_seconds, 1e-9);

  // Wait until every accepted fax has all its jobs visible (or 30 s).
  const auto deadline = Steady::now() + std::chrono::seconds(30);
  while (Steady::now() < deadline) {
    bool all = true;
    {
      std::lock_guard lock(mu);
      for (const auto& [id, n] : expected) {
        auto it = job_seen.find(id);
        if (it == job_seen.end() || static_cast<int>(it->second.size()) < n || !render_s.count(id)) {
          all = false;
          break;
        }
      }
    }
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // completion check interval
  }
  stop = true;
  reader.join();

  for (const auto& [id, sent] : sent_at) {
    auto it = job_seen.find(id);
    auto bus_it = on_bus_at.find(id);
    const int n = expected[id];
    if (it == job_seen.end() || static_cast<int>(it->second.size()) < n || bus_it == on_bus_at.end()) {
      res.missing += n - (it == job_seen.end() ? 0 : static_cast<int>(it->second.size()));
      if (bus_it == on_bus_at.end() && res.first_error.empty())
        res.first_error = "submission not seen on the bus";
      continue;
    }
    const double render = render_s.count(id) ? render_s[id] * 1000 : 0;
    res.render_ms.push_back(render);
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
      res.jobs++;
      res.ready_ms.push_back(
          std::chrono::duration<double, std::milli>(it->second[i] - bus_it->second).count() - render);
      res.from_request_ms.push_back(std::chrono::duration<double, std::milli>(it->second[i] - sent).count() -
                                    render);
    }
  }
  return res;
}

// Starts a pipeline (gateway + imaging) for one backend and runs the scenarios.
void RunBackend(const std::string& backend, const std::vector<Scenario>& scenarios,
                const std::string& document) {
  std::vector<Scenario> selected;
  for (const auto& sc : scenarios) {
    if (Selected(sc.name + ".p99")) selected.push_back(sc);
  }
  if (selected.empty()) return;
  const std::string bootstrap =
      std::getenv("FAXFLOW_KAFKA_BOOTSTRAP") ? std::getenv("FAXFLOW_KAFKA_BOOTSTRAP") : "127.0.0.1:9092";
  const fs::path dir = fs::path(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") /
                       ("faxflow-latency-bench-" + std::to_string(::getpid()) + "-" + backend);
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<std::pair<std::string, std::string>> sets = {
      {"data_dir", dir.string()},
      {"gateway.listen", "127.0.0.1:" + std::to_string(FreePort())},
      {"admin.listen", "127.0.0.1:0"},
      {"log.level", "warn"},
      {"gateway.auth", "none"},  // no API keys and no per-tenant rate limit in the bench
      {"gateway.auth", "none"},  // measures the pipeline, not API keys
      {"site", "bench" + std::to_string(::getpid())}};
  if (backend == "kafka") {
    sets.push_back({"bus.backend", "kafka"});
    sets.push_back({"kafka.bootstrap", bootstrap});
  }
  auto config = faxflow::LoadConfig(std::nullopt, sets);
  if (!config.ok()) {
    for (const auto& sc : selected) Skip(sc.name + ".p99", "config: " + config.status().ToString());
    return;
  }
  faxflow::SetLogLevel(config->log_level);
  if (backend == "kafka") {
    // The catalogue topics on a shared broker may hold submissions of earlier runs whose
    // documents are not in this run's fresh blob store: start the imaging and status groups at
    // the end, as a new deployment would.
    auto b = faxflow::OpenConfiguredBus(*config, nullptr);
    if (b.ok() && (*b)->EnsureTopics(faxflow::bus::Catalogue()).ok()) {
      for (auto group : {faxflow::bus::group::kImaging, faxflow::bus::group::kStatus}) {
        auto c = (*b)->NewConsumer({std::string(group), "latency-bench", true});
        if (!c.ok()) continue;
        std::vector<faxflow::bus::TopicPartitionOffset> ends;
        std::vector<faxflow::bus::TopicPartition> tps;
        for (auto t : {faxflow::bus::topic::kSubmissions, faxflow::bus::topic::kEvents}) {
          auto n = (*b)->PartitionCount(std::string(t));
          for (int32_t p = 0; n.ok() && p < *n; ++p) tps.push_back({std::string(t), p});
        }
        if (!(*c)->Assign(tps).ok()) continue;
        for (const auto& tp : tps) {
          auto end = (*c)->EndOffset(tp);
          if (end.ok()) ends.push_back({tp, *end});
        }
        if (auto s = (*c)->Commit(ends); !s.ok())
          std::cerr << "latency_bench: commit " << group << ": " << s.ToString() << "\n";
      }
    }
  }
  faxflow::Roles roles;
  roles.gateway = true;
  roles.imaging = true;
  std::cerr << "latency_bench: starting the " << backend << " pipeline (gateway + imaging) in " << dir
            << "\n";
  const auto started = Steady::now();
  auto since = [&] { return std::chrono::duration<double>(Steady::now() - started).count(); };
  auto pipeline = faxflow::Pipeline::Start(*config, roles, faxflow::SystemClock::Instance());
  std::cerr << "latency_bench: " << backend << " pipeline up after " << since() << " s\n";
  if (!pipeline.ok()) {
    for (const auto& sc : selected)
      Skip(sc.name + ".p99", "pipeline did not start: " + pipeline.status().ToString());
    fs::remove_all(dir);
    return;
  }
  // Measure a ready deployment: wait for /readyz's checks (topics present, imaging claims held),
  // as an operator's load balancer would, so start-up (claims settling) is not counted as latency.
  {
    const auto ready_by = Steady::now() + std::chrono::seconds(60);
    faxflow::Status ready = (*pipeline)->health().Ready();
    while (!ready.ok() && Steady::now() < ready_by) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      ready = (*pipeline)->health().Ready();
    }
    std::cerr << "latency_bench: " << backend << " pipeline ready after " << since() << " s"
              << (ready.ok() ? "" : " (NOT ready: " + ready.ToString() + ")") << "\n";
  }
  // Warm-up: connections, RocksDB memtables, Kafka metadata.
  Drive(**pipeline, {"warmup", 1, 1, 50, g_flags.quick ? 0.2 : 1.0, std::nullopt}, document);
  for (const auto& sc : selected) {
    std::cerr << "latency_bench: " << sc.name << ": " << sc.rate << " submissions/s for " << sc.seconds
              << " s, " << sc.pages << " page(s), " << sc.recipients << " recipient(s)\n";
    Result r = Drive(
        **pipeline, sc, sc.pages == 1 ? document : [&] {
          auto joined =
              faxflow::pages::JoinPages(std::vector<std::string>(static_cast<size_t>(sc.pages), document));
          return joined.ok() ? *joined : document;
        }());
    if (r.ready_ms.empty() || r.rejected > 0 || r.missing > 0) {
      EmitRow({{"bench", sc.name + ".p99"},
               {"failed", "accepted " + std::to_string(r.accepted) + "/" + std::to_string(r.submitted) +
                              ", jobs " + std::to_string(r.jobs) + ", missing " + std::to_string(r.missing) +
                              ": " + r.first_error}});
      continue;
    }
    const nlohmann::json extra = {{"n", r.jobs},
                                  {"rate", std::round(r.achieved_rate * 10) / 10},
                                  {"pages", sc.pages},
                                  {"recipients", sc.recipients}};
    Emit(sc.name + ".p99", Percentile(r.ready_ms, 0.99), "ms", sc.p99_target_ms, "lower", extra);
    Emit(sc.name + ".p50", Percentile(r.ready_ms, 0.50), "ms", std::nullopt, "lower", extra);
    Emit(sc.name + ".max", Percentile(r.ready_ms, 1.0), "ms", std::nullopt, "lower", extra);
    Emit(sc.name + ".from_request_p99", Percentile(r.from_request_ms, 0.99), "ms", std::nullopt, "lower",
         extra);
    Emit(sc.name + ".accept_p99", Percentile(r.accept_ms, 0.99), "ms", std::nullopt, "lower", extra);
    Emit(sc.name + ".render_p50", Percentile(r.render_ms, 0.50), "ms", std::nullopt, "lower", extra);
    Emit(sc.name + ".achieved_rate", r.achieved_rate, "submissions/s", std::nullopt, "higher", extra);
    std::cerr << "latency_bench: " << sc.name << ": p50 " << Percentile(r.ready_ms, 0.5) << " ms, p99 "
              << Percentile(r.ready_ms, 0.99) << " ms over " << r.jobs << " jobs\n";
  }
  std::cerr << "latency_bench: scenarios done after " << since() << " s; stopping\n";
  (*pipeline)->Stop();
  pipeline->reset();
  std::cerr << "latency_bench: " << backend << " pipeline stopped after " << since() << " s\n";
  fs::remove_all(dir);
}

bool BrokerAnswers(const std::string& bootstrap) {
  const std::string cmd = "kcat -b '" + bootstrap + "' -L -m 3 >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      g_flags.quick = true;
    } else if (a == "--no-kafka") {
      g_flags.no_kafka = true;
    } else if (a == "--only" && i + 1 < argc) {
      g_flags.only = argv[++i];
    } else if (a == "--rate" && i + 1 < argc) {
      g_flags.rate = std::stod(argv[++i]);
    } else if (a == "--seconds" && i + 1 < argc) {
      g_flags.seconds = std::stod(argv[++i]);
    } else {
      std::cerr << "usage: latency_bench [--quick] [--only S] [--no-kafka] [--rate N] [--seconds S]\n";
      return 2;
    }
  }
  const std::string source_dir =
      std::getenv("FAXFLOW_SOURCE_DIR") ? std::getenv("FAXFLOW_SOURCE_DIR") : FAXFLOW_SOURCE_DIR_DEFAULT;
  const std::string document = ReadFile(source_dir + "/tests/data/fax-page.tif");
  if (document.empty()) {
    std::cerr << "latency_bench: cannot read " << source_dir << "/tests/data/fax-page.tif\n";
    return 1;
  }
  const double main_seconds = g_flags.seconds > 0 ? g_flags.seconds : (g_flags.quick ? 2.5 : 15);
  const double scale_seconds = g_flags.quick ? 1 : 6;
  auto scenarios = [&](const std::string& backend, double target) {
    std::vector<Scenario> v = {
        {"latency." + backend + ".ready_to_dial", 1, 1, g_flags.rate, main_seconds, target}};
    // How the cost grows: pages and recipients at three sizes each, at a lower rate.
    for (int p : {1, 3, 10})
      v.push_back({"latency." + backend + ".ready_to_dial.pages" + std::to_string(p), p, 1, 50, scale_seconds,
                   std::nullopt});
    for (int r : {1, 10, 100})
      v.push_back({"latency." + backend + ".ready_to_dial.recipients" + std::to_string(r), 1, r,
                   r >= 100 ? 10.0 : 50.0, scale_seconds, std::nullopt});
    return v;
  };
  RunBackend("embedded", scenarios("embedded", 10), document);
  const std::string bootstrap =
      std::getenv("FAXFLOW_KAFKA_BOOTSTRAP") ? std::getenv("FAXFLOW_KAFKA_BOOTSTRAP") : "127.0.0.1:9092";
  auto kafka = scenarios("kafka", 50);
  if (g_flags.no_kafka) {
    if (Selected(kafka[0].name)) Skip(kafka[0].name + ".p99", "disabled with --no-kafka");
  } else if (!BrokerAnswers(bootstrap)) {
    if (Selected(kafka[0].name)) Skip(kafka[0].name + ".p99", "no Kafka broker at " + bootstrap);
  } else {
    kafka.resize(1);  // the scaling rows are measured on the embedded bus only (time budget)
    // --quick: a shorter burst (the bench must stay within its share of bench/run --quick).
    if (g_flags.quick && g_flags.seconds <= 0) kafka[0].seconds = 1.5;
    RunBackend("kafka", kafka, document);
  }
  return 0;
}
