// gateway_bench: submissions per second through POST /v1/faxes (issue 6) against a raw HTTP
// server built on the same HTTP library (cpp-httplib, same 32-thread pool, TCP_NODELAY and
// keep-alive settings as the gateway) that answers 202 with
// a fixed body and does no work. Same client, same requests, same concurrency, same run.
//
// faxflow side: the gateway role only (REST API + status worker, no imaging, no modem) on the
// embedded bus (and on Kafka at kafka.bootstrap unless --no-kafka), with everything a real
// submission does: API-key authentication, a fresh Idempotency-Key per request (claim + stored
// answer on fax.idempotency), number validation (libphonenumber), type sniffing and the blob
// write of a small inline text document (distinct per request), the Submission produced and
// acknowledged (embedded: WAL synced; Kafka: acks=all) before the 202.
//
// Rows (JSON lines on stdout, progress on stderr):
//   gateway.submissions_per_s.<bus>   faxflow vs raw, ratio = faxflow / raw. No target is set by
//                                     the issue for this ratio (target null, informational).
//   gateway.submit_p50_ms.<bus>, gateway.submit_p99_ms.<bus>   latency per request (informational).
// Flags: --quick (fewer requests), --only SUBSTRING, --no-kafka, --concurrency N (default 16).
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "app/pipeline.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "workers/notify/signature.h"

namespace {

using Steady = std::chrono::steady_clock;
using nlohmann::json;

constexpr const char* kAdminToken = "bench-admin-token";

std::string Base64(const std::string& in) { return faxflow::notify::Base64Encode(in); }

struct RunResult {
  double per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  int failed = 0;
  std::string first_error;
};

// `total` POSTs of one-page submissions to 127.0.0.1:port from `concurrency` keep-alive clients.
RunResult Drive(int port, const std::string& key, int total, int concurrency, const std::string& tag) {
  std::atomic<int> next{0};
  std::atomic<int> failed{0};
  std::vector<std::vector<double>> lat(static_cast<size_t>(concurrency));
  std::string first_error;
  std::mutex err_mu;
  // Connections are opened before the clock starts (the listen backlog is small: 16 connects at
  // once can cost a 1 s SYN retransmit, which is not what this measures).
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  Steady::time_point t0;
  std::vector<std::thread> threads;
  for (int c = 0; c < concurrency; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", port);
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);
      client.set_read_timeout(60, 0);
      httplib::Headers base = {{"Authorization", "Bearer " + key}};
      (void)client.Get("/healthz");  // opens the keep-alive connection
      ++ready;
      while (!go) std::this_thread::yield();
      for (int i = next++; i < total; i = next++) {
        const json body = {
            {"to", "+15550100000"},
            {"documents",
             {{{"content_base64", Base64("gateway bench " + tag + " " + std::to_string(i) + "\n")}}}}};
        httplib::Headers h = base;
        h.emplace("Idempotency-Key", "bench-" + tag + "-" + std::to_string(i));
        const auto s = Steady::now();
        auto r = client.Post("/v1/faxes", h, body.dump(), "application/json");
        lat[static_cast<size_t>(c)].push_back(
            std::chrono::duration<double, std::milli>(Steady::now() - s).count());
        if (!r || r->status != 202) {
          ++failed;
          std::lock_guard<std::mutex> l(err_mu);
          if (first_error.empty())
            first_error =
                r ? std::to_string(r->status) + " " + r->body.substr(0, 200) : httplib::to_string(r.error());
        }
      }
    });
  }
  while (ready < concurrency) std::this_thread::yield();
  t0 = Steady::now();
  go = true;
  for (auto& t : threads) t.join();
  const double secs = std::chrono::duration<double>(Steady::now() - t0).count();
  std::vector<double> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  RunResult out;
  out.per_second = static_cast<double>(total - failed.load()) / secs;
  if (!all.empty()) {
    out.p50_ms = all[all.size() / 2];
    out.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  }
  out.failed = failed;
  out.first_error = first_error;
  return out;
}

void Row(const std::string& bench, double faxflow, std::optional<double> raw, const std::string& unit,
         const std::string& better) {
  json row{{"bench", bench},    {"faxflow", faxflow}, {"unit", unit},
           {"target", nullptr}, {"better", better},   {"compare", "ratio"}};
  if (raw && *raw > 0) {
    row["raw"] = *raw;
    row["ratio"] = faxflow / *raw;
  } else {
    row["raw"] = nullptr;
    row["ratio"] = nullptr;
  }
  std::cout << row.dump() << std::endl;
}

void Skip(const std::string& bench, const std::string& why) {
  std::cout << json{{"bench", bench}, {"skipped", why}}.dump() << std::endl;
}

void RunOne(const std::string& bus, bool quick, int concurrency) {
  const std::string name = "gateway.submissions_per_s." + bus;
  const int total = quick ? 300 : 3000;
  const auto dir = std::filesystem::temp_directory_path() /
                   ("faxflow-gateway-bench-" + bus + "-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::vector<std::pair<std::string, std::string>> sets = {{"data_dir", dir.string()},
                                                           {"gateway.listen", "127.0.0.1:0"},
                                                           {"admin.listen", "127.0.0.1:0"},
                                                           {"gateway.auth", "keys"},
                                                           {"gateway.admin_token", kAdminToken},
                                                           {"gateway.rate_limit_per_second", "0"},
                                                           {"gateway.max_concurrent_requests", "0"},
                                                           {"webhooks.enabled", "false"},
                                                           {"log.level", "warn"}};
  if (bus == "kafka") {
    sets.emplace_back("bus.backend", "kafka");
    const char* bootstrap = std::getenv("FAXFLOW_KAFKA_BOOTSTRAP");
    sets.emplace_back("kafka.bootstrap", bootstrap != nullptr && *bootstrap ? bootstrap : "127.0.0.1:9092");
  }
  auto config = faxflow::LoadConfig(std::nullopt, sets, false);
  if (!config.ok()) {
    Skip(name, config.status().ToString());
    return;
  }
  faxflow::Roles roles;
  roles.gateway = true;
  auto pipeline = faxflow::Pipeline::Start(*config, roles, faxflow::SystemClock::Instance());
  if (!pipeline.ok()) {
    Skip(name, "pipeline: " + pipeline.status().ToString());
    return;
  }
  const int port = (*pipeline)->http_port();
  httplib::Client admin("127.0.0.1", port);
  auto k = admin.Post("/v1/admin/keys", {{"Authorization", std::string("Bearer ") + kAdminToken}},
                      json{{"tenant", "bench"}, {"name", "gateway_bench"}}.dump(), "application/json");
  if (!k || k->status != 201) {
    Skip(name, "key creation failed: " + (k ? k->body : std::string("no answer")));
    return;
  }
  const std::string key = json::parse(k->body).at("key");

  // Raw server: same library, same pool size as the gateway, fixed 202 answer, no work.
  httplib::Server raw;
  raw.new_task_queue = [] { return new httplib::ThreadPool(32); };
  raw.set_tcp_nodelay(true);  // as the gateway (producers/gateway/gateway.cc)
  raw.set_keep_alive_max_count(1000);
  const std::string fixed = json{{"id", "fax_00000000000000000000000000"},
                                 {"recipients", {{{"id", "rcp_0"}, {"to", "+15550100000"}}}}}
                                .dump(2) +
                            "\n";
  raw.Post("/v1/faxes", [&fixed](const httplib::Request&, httplib::Response& res) {
    res.status = 202;
    res.set_content(fixed, "application/json");
  });
  const int raw_port = raw.bind_to_any_port("127.0.0.1");
  std::thread raw_thread([&raw] { raw.listen_after_bind(); });

  // Warm-up (connections, RocksDB, producer), not measured.
  (void)Drive(port, key, std::min(50, total), concurrency, bus + "-warm-" + std::to_string(getpid()));
  (void)Drive(raw_port, key, std::min(50, total), concurrency, "raw-warm");

  const std::string tag = bus + "-" + std::to_string(getpid()) + "-" +
                          std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  RunResult ff = Drive(port, key, total, concurrency, tag);
  RunResult rr = Drive(raw_port, key, total, concurrency, "raw");
  raw.stop();
  raw_thread.join();
  std::cerr << "gateway_bench " << bus << ": " << total << " submissions, concurrency " << concurrency
            << ": faxflow " << ff.per_second << "/s (p50 " << ff.p50_ms << " ms, p99 " << ff.p99_ms << " ms, "
            << ff.failed << " failed" << (ff.first_error.empty() ? "" : ": " + ff.first_error) << "), raw "
            << rr.per_second << "/s (p50 " << rr.p50_ms << " ms)\n";
  if (ff.failed > 0) {
    Skip(name, std::to_string(ff.failed) + " submissions failed: " + ff.first_error);
  } else {
    Row(name, ff.per_second, rr.per_second, "submissions/s", "higher");
    Row("gateway.submit_p50_ms." + bus, ff.p50_ms, rr.p50_ms, "ms", "lower");
    Row("gateway.submit_p99_ms." + bus, ff.p99_ms, rr.p99_ms, "ms", "lower");
  }
  (*pipeline)->Stop();
  pipeline->reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  bool kafka = true;
  int concurrency = 16;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0)
      quick = true;
    else if (std::strcmp(argv[i], "--no-kafka") == 0)
      kafka = false;
    else if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc)
      only = argv[++i];
    else if (std::strcmp(argv[i], "--concurrency") == 0 && i + 1 < argc)
      concurrency = std::max(1, std::atoi(argv[++i]));
  }
  faxflow::SetLogLevel("warn");
  auto selected = [&](const std::string& bus) {
    if (only.empty()) return true;
    for (const char* row : {"gateway.submissions_per_s.", "gateway.submit_p50_ms.", "gateway.submit_p99_ms."})
      if ((row + bus).find(only) != std::string::npos) return true;
    return false;
  };
  if (selected("embedded")) RunOne("embedded", quick, concurrency);
  if (selected("kafka")) {
    if (kafka)
      RunOne("kafka", quick, concurrency);
    else
      Skip("gateway.submissions_per_s.kafka", "--no-kafka");
  }
  return 0;
}
