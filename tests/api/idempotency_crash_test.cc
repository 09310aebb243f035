// kill -9 of `faxflow all` while 50 clients keep retrying their submissions with their own
// Idempotency-Key: every key ends with exactly one fax, and every answer a key ever got names
// that fax. The API key comes from `faxflow keys create` on the bus (the CLI path).
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "schemas/submission.pb.h"
#include "tests/api/api_client.h"
#include "tests/api/api_fixture.h"
#include "tests/support/support.h"
#include "topics/catalogue.h"
#include "topics/embedded/embedded_bus.h"

namespace faxflow {
namespace {

using nlohmann::json;
using testing::ApiClient;
using testing::ChildProcess;

std::string RunCapture(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[512];
  while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

TEST(IdempotencyCrashTest, KillNineWhileClientsRetryCreatesNoDuplicateFax) {
  testing::TempDir dir("faxflow-idem-crash");
  const std::string data = dir.path() + "/data";
  const std::string key =
      RunCapture(testing::FaxflowBinary() + " keys create --tenant crash --name test --set data_dir=" + data +
                 " --set log.level=error 2>/dev/null");
  ASSERT_EQ(key.rfind("ffk_", 0), 0u) << key;
  const int port = testing::FreePort();
  int generation = 0;
  auto start = [&] {
    ++generation;
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{testing::FaxflowBinary(), "all", "--set", "data_dir=" + data, "--set",
                                 "gateway.listen=127.0.0.1:" + std::to_string(port), "--set",
                                 "admin.listen=127.0.0.1:0", "--set", "gateway.idempotency_lease_seconds=2",
                                 "--set", "gateway.rate_limit_per_second=0", "--set",
                                 "gateway.max_concurrent_requests=0", "--set", "log.level=warn"},
        dir.path() + "/faxflow-" + std::to_string(generation) + ".log");
  };
  auto app = start();
  ASSERT_TRUE(testing::Await([&] { return testing::HttpGet(port, "/readyz").status == 200; },
                             std::chrono::seconds(60)));

  constexpr int kClients = 50;
  ApiClient client(port, key);
  std::mutex mu;
  std::map<int, std::set<std::string>> answers;  // key index -> fax ids answered
  std::atomic<int> done{0}, attempts{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      const json body = {
          {"to", "+15550100000"},
          {"documents", {{{"content_base64", testing::Base64("client " + std::to_string(i) + "\n")}}}},
          {"tags", {"crash"}}};
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);
      while (std::chrono::steady_clock::now() < deadline) {
        ++attempts;
        auto a = client.PostJson("/v1/faxes", body, {{"Idempotency-Key", "crash-" + std::to_string(i)}});
        if (a.status == 202) {
          std::lock_guard lock(mu);
          answers[i].insert(a.json()["id"].get<std::string>());
          // Ask again after success: the answer must be the same fax.
          if (answers[i].size() == 1 && a.header("Idempotent-Replayed").empty()) continue;
          break;
        }
        ASSERT_TRUE(a.status == 0 || a.status == 409 || a.status == 503) << a.status << " " << a.body;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // client backoff before retrying
      }
      ++done;
    });
  }
  // Three kill -9 while the clients are mid-flight.
  int kills = 0;
  for (int target : {5, 20, 35}) {
    testing::Await(
        [&] {
          std::lock_guard lock(mu);
          return static_cast<int>(answers.size()) >= target;
        },
        std::chrono::seconds(60), std::chrono::milliseconds(5));
    app->Signal(SIGKILL);
    app->Wait(std::chrono::seconds(10));
    ++kills;
    app = start();
    ASSERT_TRUE(testing::Await([&] { return testing::HttpGet(port, "/readyz").status == 200; },
                               std::chrono::seconds(60)))
        << app->Log();
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(kills, 3);
  EXPECT_EQ(done.load(), kClients);

  // One fax per key; every answer of a key names the same fax.
  std::set<std::string> faxes;
  for (int i = 0; i < kClients; ++i) {
    ASSERT_EQ(answers[i].size(), 1u) << "key crash-" << i << " answered " << answers[i].size()
                                     << " different faxes";
    faxes.insert(*answers[i].begin());
  }
  EXPECT_EQ(faxes.size(), static_cast<size_t>(kClients));
  const auto list = client.Get("/v1/faxes?tag=crash&limit=500");
  ASSERT_EQ(list.status, 200);
  std::set<std::string> listed;
  for (const auto& f : list.json()["faxes"]) listed.insert(f["id"].get<std::string>());
  EXPECT_EQ(listed, faxes) << "the tenant sees exactly one fax per key";

  // How many Submission records reached the bus (a re-run after an expired lease may write the
  // same fax twice; the status store and the dial ledger absorb it): reported, not a failure.
  app->Signal(SIGTERM);
  app->Wait(std::chrono::seconds(30));
  auto bus = bus::EmbeddedBus::Open(data + "/bus");
  ASSERT_TRUE(bus.ok()) << bus.status().ToString();
  auto consumer = *(*bus)->NewConsumer({"test-count", "t", true});
  ASSERT_TRUE(consumer->Assign(*bus::AllPartitions(**bus, std::string(bus::topic::kSubmissions))).ok());
  std::map<std::string, int> records;
  for (;;) {
    auto polled = consumer->Poll(std::chrono::milliseconds(300), 1000);
    ASSERT_TRUE(polled.ok());
    if (polled->empty()) break;
    for (const auto& r : *polled) {
      v1::Submission s;
      if (s.ParseFromString(r.value)) ++records[s.fax_id()];
    }
  }
  int duplicate_records = 0;
  for (const auto& [id, n] : records) {
    EXPECT_TRUE(faxes.count(id)) << "a submission record of a fax no client was answered: " << id;
    duplicate_records += n - 1;
  }
  EXPECT_EQ(records.size(), static_cast<size_t>(kClients));
  std::cout << "kill -9 x" << kills << ", " << attempts.load() << " POSTs by " << kClients
            << " clients: faxes=" << faxes.size()
            << " duplicate_faxes=0 duplicate_submission_records=" << duplicate_records << "\n";
}

}  // namespace
}  // namespace faxflow
