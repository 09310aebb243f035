// Submissions are owner-routed too (gateway.route_submissions, docs/owners.md), on a private Kafka
// broker with three in-process gateway nodes (A and B proxy, C redirects):
//   - a tenant limited to R/s with burst B, POSTing /v1/faxes as fast as it can through two nodes,
//     gets about B + R*T accepted in T seconds: the submission rate limit holds for the cluster
//     (the non-owner never admits, it forwards), and every 429 carries Retry-After;
//   - a multipart submission sent to a non-owner is proxied with its parts, accepted by the owner
//     and readable through every node;
//   - Idempotency-Key still holds across nodes: the same key and body through another node (a
//     307 from the redirecting node, followed with the same body) answers the first fax again,
//     and a different body with that key answers 422.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <thread>

#include "tests/api/api_client.h"
#include "tests/api/api_fixture.h"
#include "tests/owner/gateway_node.h"
#include "tests/support/support.h"

namespace faxflow {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::ApiAnswer;
using testing::ApiClient;
using testing::Await;

constexpr const char* kAdmin = "submissions-admin-token";

using Node = testing::GatewayNode;

Node StartNode(const std::string& dir, const std::string& bootstrap, const std::string& mode) {
  return testing::StartGatewayNode(dir, bootstrap, kAdmin,
                                   {{"gateway.owner_mode", mode},
                                    {"gateway.route_submissions", "true"},
                                    {"gateway.rate_limit_per_second", "5"},
                                    {"gateway.rate_limit_burst", "5"},
                                    {"webhooks.enabled", "false"}});
}

bool Status429(const ApiAnswer& r) { return r.status == 429; }
bool Status429(const httplib::Result& r) { return r && r->status == 429; }

// `call` again while the tenant's rate limit answers 429 (the limit is shared by every request of
// the tenant, reads included), up to 30 s.
template <typename F>
auto Admitted(F call) {
  auto r = call();
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (Status429(r) && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(250ms);  // below the limit's refill: one token per 200 ms
    r = call();
  }
  return r;
}

json OnePageFax(const std::string& text) {
  return {{"to", "+15550100000"}, {"documents", {{{"content_base64", testing::Base64(text + "\n")}}}}};
}

TEST(OwnerSubmissionsKafkaTest, SubmissionsAreRoutedSoTheRateLimitAndIdempotencyHoldForTheCluster) {
  testing::TempDir dir("faxflow-owner-submit");
  testing::PrivateKafkaBroker broker(dir.path() + "/kafka");
  ASSERT_TRUE(broker.ok()) << "scripts/kafka could not start a private broker";
  Node a = StartNode(dir.path() + "/a", broker.bootstrap(), "proxy");
  Node b = StartNode(dir.path() + "/b", broker.bootstrap(), "proxy");
  Node c = StartNode(dir.path() + "/c", broker.bootstrap(), "redirect");
  ASSERT_TRUE(Await(
      [&] {
        for (const Node* n : {&a, &b, &c})
          if (Metric(*n, "faxflow_gateway_owner_members") != 3) return false;
        return true;
      },
      60s))
      << "the three gateway nodes did not see each other in fax.gateways";

  // A tenant owned by A: its requests through B are served by A (X-Faxflow-Served-By). A and B
  // play interchangeable parts (both proxy), so when the tenant found is B's the two swap names:
  // a node can own none of the 12 slots (testing::TenantOwnedBy).
  const auto owned = testing::TenantOwnedByEither(
      a, b, kAdmin, [](int i) { return "tenant-" + std::to_string(i); }, "/v1/faxes?limit=1", 30s);
  if (owned.second_owns) std::swap(a, b);
  const std::string& tenant = owned.tenant;
  const std::string& key = owned.key;
  ApiClient on_a(a.port, key), on_b(b.port, key), on_c(c.port, key);
  const double rate = 5, burst = 5;
  // Let the owner's bucket refill after the probe above (burst / rate seconds).
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(1000 * burst / rate) + 300));

  // Four clients, two on the owner A and two on B, submitting as fast as they can for ~4 s.
  std::atomic<int> accepted{0}, limited{0}, missing_retry_after{0}, other{0}, via_b_served_by_a{0};
  std::string other_example;
  std::mutex mu;
  std::atomic<bool> stop{false};
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  for (int cl = 0; cl < 4; ++cl) {
    clients.emplace_back([&, cl] {
      const bool through_b = cl % 2 == 1;
      const ApiClient& api = through_b ? on_b : on_a;
      for (int i = 0; !stop; ++i) {
        ApiAnswer r =
            api.PostJson("/v1/faxes", OnePageFax("rate " + std::to_string(cl) + "/" + std::to_string(i)));
        if (r.status == 202) {
          ++accepted;
          if (through_b && r.header("X-Faxflow-Served-By") == a.url) ++via_b_served_by_a;
        } else if (r.status == 429) {
          ++limited;
          if (r.header("Retry-After").empty()) ++missing_retry_after;
        } else {
          ++other;
          std::lock_guard l(mu);
          other_example = std::to_string(r.status) + " " + r.body;
        }
      }
    });
  }
  std::this_thread::sleep_for(4s);  // the measurement window itself, not a wait for a condition
  stop = true;
  for (auto& t : clients) t.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double expected = burst + rate * secs;
  std::cerr << "accepted " << accepted << " submissions in " << secs << " s through two nodes (expected ~"
            << expected << "), " << limited << " answered 429\n";
  EXPECT_EQ(other.load(), 0) << other_example;
  EXPECT_GT(limited.load(), 0) << "the clients went beyond the limit";
  EXPECT_EQ(missing_retry_after.load(), 0) << "every 429 carries Retry-After";
  EXPECT_GE(accepted.load(), 0.8 * expected) << "a routed submission must be counted once";
  EXPECT_LE(accepted.load(), 1.2 * expected) << "the submission rate limit holds for the cluster";
  EXPECT_GT(via_b_served_by_a.load(), 0) << "submissions through B are served by the owner A";
  const std::string refused = "faxflow_gateway_rate_limited_total{limit=\"rate\"}";
  EXPECT_GT(Metric(a, refused), 0);
  EXPECT_EQ(Metric(b, refused), 0) << "B admitted (counted) a submission it forwarded";
  EXPECT_EQ(Metric(b, "faxflow_gateway_submissions_total{outcome=\"accepted\"}"), 0)
      << "B accepted a submission of a tenant it does not own";

  // A multipart submission with an Idempotency-Key through the non-owner B: proxied with its
  // parts (two recipients, one file), accepted by A, readable through every node.
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(1000 * burst / rate) + 300));
  const httplib::MultipartFormDataItems items = {
      {"file", "routed multipart document\n", "doc.txt", "text/plain"},
      {"to", "+15550100001", "", ""},
      {"to", "+15550100002", "", ""}};
  const httplib::Headers idem = {{"Idempotency-Key", "order-" + tenant}};
  ApiAnswer first = Admitted([&] { return on_b.PostForm("/v1/faxes", items, idem); });
  ASSERT_EQ(first.status, 202) << first.body;
  EXPECT_EQ(first.header("X-Faxflow-Served-By"), a.url);
  const std::string fax_id = first.json()["id"];
  ASSERT_EQ(first.json()["recipients"].size(), 2u) << first.body;
  for (const ApiClient* api : {&on_a, &on_b, &on_c}) {
    ApiAnswer got;
    ASSERT_TRUE(Await(
        [&] {
          got = Admitted([&] { return api->Get("/v1/faxes/" + fax_id); });
          if (got.status == 307) {  // C redirects: follow to the owner
            const std::string loc = got.header("Location");
            EXPECT_EQ(loc.rfind(a.url, 0), 0u) << loc;
            got = Admitted([&] { return on_a.Get(loc.substr(a.url.size())); });
          }
          return got.status == 200;
        },
        20s))
        << got.status << " " << got.body;
    EXPECT_EQ(got.json()["id"], fax_id);
    EXPECT_EQ(got.json()["recipients"].size(), 2u) << got.body;
  }

  // The same key and body through C: 307 to A (method and body kept by the client), and A
  // answers the first fax again.
  {
    httplib::Client cc("127.0.0.1", c.port);
    httplib::Headers h = idem;
    h.emplace("Authorization", "Bearer " + key);
    auto r = Admitted([&] { return cc.Post("/v1/faxes", h, items); });
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 307) << r->body;
    const std::string loc = r->get_header_value("Location");
    ASSERT_EQ(loc, a.url + "/v1/faxes");
    httplib::Client owner(a.url);
    auto again = Admitted([&] { return owner.Post("/v1/faxes", h, items); });
    ASSERT_TRUE(again);
    EXPECT_EQ(again->status, 202) << again->body;
    EXPECT_EQ(json::parse(again->body).value("id", ""), fax_id) << "one fax per Idempotency-Key";
    EXPECT_EQ(again->get_header_value("Idempotent-Replayed"), "true");
  }
  EXPECT_GT(Metric(c, "faxflow_gateway_owner_redirects_total"), 0);
  // And through B (proxied): the replay, with its header relayed; a different body: 422.
  ApiAnswer replay = Admitted([&] { return on_b.PostForm("/v1/faxes", items, idem); });
  EXPECT_EQ(replay.status, 202) << replay.body;
  EXPECT_EQ(replay.json().value("id", ""), fax_id);
  EXPECT_EQ(replay.header("Idempotent-Replayed"), "true");
  const httplib::MultipartFormDataItems changed = {{"file", "another document\n", "doc.txt", "text/plain"},
                                                   {"to", "+15550100001", "", ""}};
  ApiAnswer mismatch = Admitted([&] { return on_b.PostForm("/v1/faxes", changed, idem); });
  EXPECT_EQ(mismatch.status, 422) << mismatch.body;
  EXPECT_EQ(mismatch.error_code(), "idempotency_key_reused");

  c.pipeline->Stop();
  b.pipeline->Stop();
  a.pipeline->Stop();
}

}  // namespace
}  // namespace faxflow
