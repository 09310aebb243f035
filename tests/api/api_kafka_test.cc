// Two gateway nodes on a real Kafka broker (the shared one): API keys created on one node work on
// the other and a revocation reaches both; 100 concurrent POSTs with one Idempotency-Key spread
// over both nodes create exactly one fax (the claim race is decided by the order of the log).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <thread>

#include "app/pipeline.h"
#include "tests/api/api_client.h"
#include "tests/api/api_fixture.h"
#include "tests/bus_kafka/kafka_test_env.h"
#include "tests/support/support.h"

FAXFLOW_KAFKA_TEST_ENVIRONMENT();

namespace faxflow {
namespace {

using nlohmann::json;
using testing::ApiAnswer;
using testing::ApiClient;

constexpr const char* kAdmin = "kafka-admin-token";

std::unique_ptr<Pipeline> GatewayNode(const std::string& dir) {
  auto config = LoadConfig(std::nullopt,
                           {{"data_dir", dir},
                            {"bus.backend", "kafka"},
                            {"kafka.bootstrap", bus::kafka_test::KafkaBootstrap()},
                            {"gateway.listen", "127.0.0.1:0"},
                            {"admin.listen", "127.0.0.1:0"},
                            {"gateway.admin_token", kAdmin},
                            {"gateway.rate_limit_per_second", "0"},
                            {"gateway.max_concurrent_requests", "0"},
                            {"log.level", "warn"}},
                           false);
  if (!config.ok()) throw std::runtime_error(config.status().ToString());
  Roles roles;
  roles.gateway = true;
  auto p = Pipeline::Start(*config, roles, SystemClock::Instance());
  if (!p.ok()) throw std::runtime_error(p.status().ToString());
  return std::move(*p);
}

TEST(ApiKafkaTest, TwoNodesShareKeysAndAgreeOnOneFaxPerIdempotencyKey) {
  testing::TempDir dir("faxflow-api-kafka");
  auto a = GatewayNode(dir.path() + "/a");
  auto b = GatewayNode(dir.path() + "/b");
  std::string tenant = bus::kafka_test::UniqueName("t");
  std::transform(tenant.begin(), tenant.end(), tenant.begin(),
                 [](unsigned char c) { return std::isalnum(c) ? static_cast<char>(std::tolower(c)) : '-'; });
  tenant = tenant.substr(0, 64);

  auto created = ApiClient(a->http_port(), kAdmin).PostJson("/v1/admin/keys", json{{"tenant", tenant}});
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string key = created.json()["key"];
  ApiClient on_a(a->http_port(), key), on_b(b->http_port(), key);
  EXPECT_EQ(on_a.Get("/v1/faxes").status, 200);
  ASSERT_TRUE(testing::Await([&] { return on_b.Get("/v1/faxes").status == 200; }, std::chrono::seconds(10)))
      << "a key created on node A authenticates on node B";

  const json body = {{"to", "+15550100000"},
                     {"documents", {{{"content_base64", testing::Base64("kafka race\n")}}}}};
  std::vector<ApiAnswer> answers(100);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < answers.size(); ++i) {
    threads.emplace_back([&, i] {
      const ApiClient& node = i % 2 == 0 ? on_a : on_b;
      for (int attempt = 0; attempt < 5 && answers[i].status == 0; ++attempt)
        answers[i] = node.PostJson("/v1/faxes", body, {{"Idempotency-Key", "race-1"}});
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> ids;
  int accepted = 0;
  for (const auto& r : answers) {
    ASSERT_TRUE(r.status == 202 || r.status == 409) << r.status << " " << r.body;
    if (r.status == 202) {
      ++accepted;
      ids.insert(r.json()["id"].get<std::string>());
    }
  }
  EXPECT_GE(accepted, 1);
  EXPECT_EQ(ids.size(), 1u) << "one fax for one key across both nodes";
  // Afterwards both nodes answer with that fax.
  ASSERT_TRUE(testing::Await(
      [&] {
        auto ra = on_a.PostJson("/v1/faxes", body, {{"Idempotency-Key", "race-1"}});
        auto rb = on_b.PostJson("/v1/faxes", body, {{"Idempotency-Key", "race-1"}});
        return ra.status == 202 && rb.status == 202 && ra.json()["id"] == *ids.begin() &&
               rb.json()["id"] == *ids.begin();
      },
      std::chrono::seconds(20), std::chrono::milliseconds(200)));
  json other = body;
  other["tags"] = {"different"};
  EXPECT_EQ(on_b.PostJson("/v1/faxes", other, {{"Idempotency-Key", "race-1"}}).status, 422);

  // Revoked on A: refused on B too.
  ASSERT_EQ(ApiClient(a->http_port(), kAdmin)
                .Delete("/v1/admin/keys/" + created.json()["key_id"].get<std::string>())
                .status,
            204);
  EXPECT_EQ(on_a.Get("/v1/faxes").status, 401);
  EXPECT_TRUE(testing::Await([&] { return on_b.Get("/v1/faxes").status == 401; }, std::chrono::seconds(10)));
  b->Stop();
  a->Stop();
}

}  // namespace
}  // namespace faxflow
