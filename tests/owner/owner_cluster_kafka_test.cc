// Two gateway nodes (in-process pipelines, gateway role) with owner routing in proxy mode on the
// shared Kafka broker (docs/owners.md, docs/webhooks.md):
//   - per-tenant rate limits are counted once, at the tenant's owner: a tenant limited to R/s
//     gets about burst + R*T accepted in T seconds whichever node the requests reach (a request
//     routed through the other node is not counted there too), and 429 carries Retry-After;
//   - every webhook event is delivered by exactly one node (the notifier partitions of
//     fax.submissions/fax.events are split between the nodes), counted by webhook-id at a local
//     receiver; when a node stops, the survivor takes its partitions and delivers the events that
//     follow, to endpoints it knows from fax.webhooks;
//   - a webhook endpoint created through node A is in node B's own store (fax.webhooks), and a
//     broadcast created on A reads on B;
//   - the delivery log is shared (fax.webhook-log): each node's log lists the attempts of both
//     nodes, and after node A stops B still lists the deliveries A made.
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tests/api/api_client.h"
#include "tests/api/api_fixture.h"
#include "tests/bus_kafka/kafka_test_env.h"
#include "tests/owner/gateway_node.h"
#include "tests/support/loopback_server.h"
#include "tests/support/support.h"

FAXFLOW_KAFKA_TEST_ENVIRONMENT();

namespace faxflow {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::ApiAnswer;
using testing::ApiClient;
using testing::Await;

constexpr const char* kAdmin = "cluster-admin-token";

std::string UniqueTenant(const std::string& prefix) {
  std::string t = bus::kafka_test::UniqueName(prefix);
  std::transform(t.begin(), t.end(), t.begin(),
                 [](unsigned char c) { return std::isalnum(c) ? static_cast<char>(std::tolower(c)) : '-'; });
  return t.substr(0, 60);
}

using Node = testing::GatewayNode;

Node StartNode(const std::string& dir, const testing::Settings& extra) {
  testing::Settings sets = {{"gateway.owner_mode", "proxy"},
                            {"net.allowed_private_networks", "127.0.0.1/32"},
                            {"webhooks.initial_backoff_seconds", "0.5"}};
  sets.insert(sets.end(), extra.begin(), extra.end());
  return testing::StartGatewayNode(dir, bus::kafka_test::KafkaBootstrap(), kAdmin, sets);
}

// Both nodes see each other, and the 12 notifier partitions are split between them (no overlap).
void AwaitCluster(const Node& a, const Node& b) {
  ASSERT_TRUE(Await(
      [&] {
        return Metric(a, "faxflow_gateway_owner_members") == 2 &&
               Metric(b, "faxflow_gateway_owner_members") == 2;
      },
      30s))
      << "the two gateway nodes did not see each other in fax.gateways";
  ASSERT_TRUE(Await(
      [&] {
        const double pa = Metric(a, "faxflow_webhook_partitions"),
                     pb = Metric(b, "faxflow_webhook_partitions");
        return pa > 0 && pb > 0 && pa + pb == 12;
      },
      30s))
      << "notifier partitions: A " << Metric(a, "faxflow_webhook_partitions") << ", B "
      << Metric(b, "faxflow_webhook_partitions");
}

std::string WebhookMetrics(const Node& n) {
  std::string out;
  const std::string text = SerializeMetrics(n.pipeline->registry());
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    if (line.rfind("faxflow_webhook", 0) == 0 && line.find("_bucket") == std::string::npos)
      out += line + "\n";
    pos = end + 1;
  }
  return out;
}

// A tenant owned by `owner` (the other node proxies its requests, X-Faxflow-Served-By). The two
// nodes of these tests are started alike, so when the tenant found belongs to `other` the two
// swap names (a node can own none of the 12 slots: testing::TenantOwnedBy).
std::pair<std::string, std::string> TenantOwnedBy(Node& owner, Node& other) {
  const auto owned = testing::TenantOwnedByEither(
      owner, other, kAdmin, [](int) { return UniqueTenant("t"); }, "/v1/faxes", 15s);
  if (owned.second_owns) std::swap(owner, other);
  return {owned.tenant, owned.key};
}

TEST(OwnerClusterKafkaTest, RateLimitIsCountedOnceAtTheOwner) {
  testing::TempDir dir("faxflow-owner-cluster");
  const double rate = 5, burst = 5;
  const std::vector<std::pair<std::string, std::string>> limits = {{"gateway.rate_limit_per_second", "5"},
                                                                   {"gateway.rate_limit_burst", "5"},
                                                                   {"webhooks.enabled", "false"}};
  Node a = StartNode(dir.path() + "/a", limits);
  Node b = StartNode(dir.path() + "/b", limits);
  ASSERT_TRUE(Await(
      [&] {
        return Metric(a, "faxflow_gateway_owner_members") == 2 &&
               Metric(b, "faxflow_gateway_owner_members") == 2;
      },
      30s));
  auto [tenant, key] = TenantOwnedBy(a, b);
  // Let the bucket refill after the probing above (burst / rate seconds), awaited on the owner.
  ApiClient on_a(a.port, key), on_b(b.port, key);
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(1000 * burst / rate) + 200));

  // Four clients, two on the owner and two on the other node, as fast as they can for ~4 s.
  std::atomic<int> accepted{0}, limited{0}, other{0}, missing_retry_after{0};
  std::atomic<bool> stop{false};
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      const ApiClient& cl = c % 2 == 0 ? on_a : on_b;
      while (!stop) {
        ApiAnswer r = cl.Get("/v1/faxes?limit=1");
        if (r.status == 200) {
          ++accepted;
        } else if (r.status == 429) {
          ++limited;
          if (r.header("Retry-After").empty()) ++missing_retry_after;
        } else {
          ++other;
        }
      }
    });
  }
  std::this_thread::sleep_for(4s);  // the measurement window itself, not a wait for a condition
  stop = true;
  for (auto& t : clients) t.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double expected = burst + rate * secs;
  EXPECT_EQ(other.load(), 0);
  EXPECT_GT(limited.load(), 0) << "the clients went beyond the limit";
  EXPECT_EQ(missing_retry_after.load(), 0) << "every 429 carries Retry-After";
  EXPECT_GE(accepted.load(), 0.8 * expected) << "a routed request must be counted once (accepted " << accepted
                                             << " in " << secs << " s, expected ~" << expected << ")";
  EXPECT_LE(accepted.load(), 1.2 * expected + 2) << "the limit is cluster-wide for routed requests";
  // Node B never admits (counts) this tenant's routed requests: every 429 came from the owner A,
  // relayed by B's proxy; B's own limiter refused nothing.
  const std::string refused = "faxflow_gateway_rate_limited_total{limit=\"rate\"}";
  EXPECT_GT(Metric(a, refused), 0);
  EXPECT_EQ(Metric(b, refused), 0) << "a proxied request was counted by the receiving node too";
  b.pipeline->Stop();
  a.pipeline->Stop();
}

// Receives webhooks and counts them by webhook-id.
class Receiver {
 public:
  Receiver() {
    http_.server().Post(R"(/(ep|cb)/.*)", [this](const httplib::Request& req, httplib::Response& res) {
      const json body = json::parse(req.body, nullptr, false);
      std::lock_guard l(mu_);
      const std::string target = req.path.substr(1, 2);
      const std::string fax = body.is_object() ? body["data"].value("fax_id", "") : "";
      const std::string type = body.is_object() ? body.value("type", "") : "";
      const std::string id = req.get_header_value("webhook-id");
      ++by_id_[id];
      ids_by_target_fax_[target + "/" + fax + "/" + type].insert(id);
      res.status = 204;
    });
    http_.Start();
  }
  int port() const { return http_.port(); }
  // Distinct webhook-ids received for target ("ep"/"cb") and fax, of the fax's queued event
  // (the only event of these faxes here, unless an imaging worker of another process on the
  // shared broker renders them: its fax.rendered webhooks are not counted).
  size_t Distinct(const std::string& target, const std::string& fax) {
    std::lock_guard l(mu_);
    return ids_by_target_fax_[target + "/" + fax + "/fax.queued"].size();
  }

 private:
  std::mutex mu_;
  std::map<std::string, int> by_id_;
  std::map<std::string, std::set<std::string>> ids_by_target_fax_;
  testing::LoopbackServer http_;  // last: stops before the counts go
};

TEST(OwnerClusterKafkaTest, EveryWebhookIsDeliveredByOneNodeAndEndpointsLiveOnEveryNode) {
  testing::TempDir dir("faxflow-owner-cluster");
  const std::vector<std::pair<std::string, std::string>> opts = {{"gateway.rate_limit_per_second", "0"}};
  Node a = StartNode(dir.path() + "/a", opts);
  Node b = StartNode(dir.path() + "/b", opts);
  AwaitCluster(a, b);
  Receiver rx;
  // A tenant owned by B: what is created through A is proxied to B, request body included.
  const auto [tenant, key] = TenantOwnedBy(b, a);
  ApiClient on_a(a.port, key), on_b(b.port, key);

  // The endpoint, created through node A (served by its owner B), is in both nodes' stores.
  auto ep = on_a.PostJson("/v1/webhooks/endpoints",
                          json{{"url", "http://127.0.0.1:" + std::to_string(rx.port()) + "/ep/1"},
                               {"events", json::array({"fax.queued"})}});
  ASSERT_EQ(ep.status, 201) << ep.body;
  const std::string ep_id = ep.json()["id"];
  for (const Node* n : {&a, &b}) {
    httplib::Client local("127.0.0.1", n->port);
    // A forwarded request is served where it lands: this reads the node's own store.
    const httplib::Headers h = {{"Authorization", "Bearer " + key}, {"X-Faxflow-Forwarded-By", "test"}};
    EXPECT_TRUE(Await(
        [&] {
          auto r = local.Get("/v1/webhooks/endpoints/" + ep_id, h);
          return r && r->status == 200;
        },
        15s))
        << "endpoint " << ep_id << " is not in the store of " << n->url;
  }

  // N faxes through both nodes, each with a callback_url: 2 deliveries per fax (endpoint, callback).
  auto submit = [&](int n, const std::string& tag) {
    std::vector<std::string> faxes;
    for (int i = 0; i < n; ++i) {
      const ApiClient& node = i % 2 == 0 ? on_a : on_b;
      json body = {
          {"to", "+15550100000"},
          {"documents", {{{"content_base64", testing::Base64("cluster " + tag + std::to_string(i) + "\n")}}}},
          {"callback_url", "http://127.0.0.1:" + std::to_string(rx.port()) + "/cb/" + tag}};
      auto r = node.PostJson("/v1/faxes", body);
      if (r.status != 202) throw std::runtime_error("submit: " + std::to_string(r.status) + " " + r.body);
      faxes.push_back(r.json()["id"]);
    }
    return faxes;
  };
  auto Missing = [&](const std::vector<std::string>& list) {
    std::string out;
    for (const auto& f : list) {
      if (rx.Distinct("ep", f) < 1) out += f + " (endpoint) ";
      if (rx.Distinct("cb", f) < 1) out += f + " (callback) ";
    }
    return out;
  };
  auto all_received = [&](const std::vector<std::string>& faxes) {
    for (const auto& f : faxes)
      if (rx.Distinct("ep", f) < 1 || rx.Distinct("cb", f) < 1) return false;
    return true;
  };
  const int n = 24;
  const double delivered_before =
      Metric(a, "faxflow_webhook_delivered_total") + Metric(b, "faxflow_webhook_delivered_total");
  std::vector<std::string> faxes = submit(n, "s");
  ASSERT_TRUE(Await([&] { return all_received(faxes); }, 60s))
      << "not every queued event was delivered: " << Missing(faxes) << "\nA:\n"
      << WebhookMetrics(a) << "B:\n"
      << WebhookMetrics(b);
  // Then both notifiers are idle: nothing pending anywhere, so no duplicate is still on its way.
  ASSERT_TRUE(Await(
      [&] {
        return Metric(a, "faxflow_webhook_pending") == 0 && Metric(b, "faxflow_webhook_pending") == 0 &&
               Metric(a, "faxflow_webhook_delivered_total") + Metric(b, "faxflow_webhook_delivered_total") -
                       delivered_before >=
                   2 * n;
      },
      30s));
  // Exactly one node delivered each (event, target): the delivery logs of both nodes' own stores
  // (read locally) hold one delivered attempt per fax and target, and the receiver saw one
  // webhook-id per fax and target. (Receipts are counted by webhook-id, not by request: another
  // process on the shared broker running a notifier without owner routing would deliver the same
  // webhook-id again, which receivers de-duplicate.)
  auto local = [&](const Node& node_of, const std::string& path) {
    httplib::Client c("127.0.0.1", node_of.port);
    const httplib::Headers h = {{"Authorization", "Bearer " + key}, {"X-Faxflow-Forwarded-By", "test"}};
    auto r = c.Get(path, h);
    return r && r->status == 200 ? json::parse(r->body) : json();
  };
  // The delivery log is shared (fax.webhook-log, docs/webhooks.md): each node's own store holds
  // the attempts of both nodes, so the log read on any node (the routed read is served by the
  // owner B) lists every delivery, including those node A made.
  auto delivered_by_event = [&](const json& log) {
    std::map<std::string, int> out;
    for (const auto& d : log.value("deliveries", json::array()))
      if (d.value("state", "") == "delivered") ++out[d.value("event_id", "")];
    return out;
  };
  auto ep_log_complete = [&](const json& log) {
    auto delivered = delivered_by_event(log);
    for (const auto& f : faxes)
      if (delivered["queued_" + f] < 1) return false;
    return true;
  };
  for (const Node* node : {&a, &b})
    ASSERT_TRUE(Await(
        [&] { return ep_log_complete(local(*node, "/v1/webhooks/endpoints/" + ep_id + "?limit=500")); }, 30s))
        << node->url << ": the endpoint's delivery log misses the other node's deliveries";
  for (const Node* node : {&a, &b}) {
    auto ep_delivered = delivered_by_event(local(*node, "/v1/webhooks/endpoints/" + ep_id + "?limit=500"));
    for (const auto& f : faxes) {
      EXPECT_EQ(ep_delivered["queued_" + f], 1)
          << f << ": endpoint delivery made by exactly one node (log of " << node->url << ")";
      json cb_log;
      ASSERT_TRUE(Await(
          [&] {
            cb_log = local(*node, "/v1/webhooks/callbacks/" + f);
            return delivered_by_event(cb_log)["queued_" + f] >= 1;
          },
          30s))
          << f << ": callback log on " << node->url << ": " << cb_log.dump();
      EXPECT_EQ(delivered_by_event(cb_log)["queued_" + f], 1)
          << f << ": callback delivery made by exactly one node";
    }
  }
  for (const ApiClient* via : {&on_a, &on_b}) {  // the routed read (served by the owner B)
    auto r = via->Get("/v1/webhooks/endpoints/" + ep_id + "?limit=500");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_TRUE(ep_log_complete(r.json())) << r.body;
  }
  for (const auto& f : faxes) {
    EXPECT_EQ(rx.Distinct("ep", f), 1u) << f << ": one webhook-id per endpoint delivery";
    EXPECT_EQ(rx.Distinct("cb", f), 1u) << f << ": one webhook-id per callback delivery";
  }
  EXPECT_GT(Metric(a, "faxflow_webhook_delivered_total"), 0) << "node A delivers its partitions' events";
  EXPECT_GT(Metric(b, "faxflow_webhook_delivered_total"), 0) << "node B delivers its partitions' events";

  // A broadcast created on A reads on B (routed to the tenant's owner).
  httplib::MultipartFormDataItems items = {
      {"recipients", "to,name\n+15550100001,Ann\n+15550100002,Bob\n", "r.csv", "text/csv"},
      {"file", "broadcast document\n", "doc.txt", "text/plain"}};
  auto bc = on_a.PostForm("/v1/broadcasts", items);
  ASSERT_EQ(bc.status, 202) << bc.body << " (created through A, proxied to B with its multipart body)";
  const std::string bc_id = bc.json()["id"];
  auto bc_b = on_b.Get("/v1/broadcasts/" + bc_id);
  EXPECT_EQ(bc_b.status, 200) << bc_b.body;

  // Node A leaves: B takes all 12 partitions and alone delivers what follows, to the endpoint it
  // knows from fax.webhooks. A rebalance may redeliver with the same webhook-id (documented):
  // the receiver sees each event under one webhook-id.
  a.pipeline->Stop();
  ASSERT_TRUE(Await([&] { return Metric(b, "faxflow_webhook_partitions") == 12; }, 30s));
  EXPECT_EQ(on_b.Get("/v1/webhooks/endpoints/" + ep_id).status, 200) << "the endpoint outlives node A";
  std::vector<std::string> later;
  for (int i = 0; i < 6; ++i) {
    json body = {{"to", "+15550100000"},
                 {"documents", {{{"content_base64", testing::Base64("after " + std::to_string(i) + "\n")}}}},
                 {"callback_url", "http://127.0.0.1:" + std::to_string(rx.port()) + "/cb/l"}};
    auto r = on_b.PostJson("/v1/faxes", body);
    ASSERT_EQ(r.status, 202) << r.body;
    later.push_back(r.json()["id"]);
  }
  ASSERT_TRUE(Await([&] { return all_received(later); }, 60s)) << "node B did not take over the deliveries";
  for (const auto& f : later) {
    EXPECT_EQ(rx.Distinct("ep", f), 1u) << f;
    EXPECT_EQ(rx.Distinct("cb", f), 1u) << f;
  }
  // Node A is gone: B's log still lists the deliveries A made, with the new ones.
  faxes.insert(faxes.end(), later.begin(), later.end());
  json after_a;
  EXPECT_TRUE(Await(
      [&] {
        after_a = on_b.Get("/v1/webhooks/endpoints/" + ep_id + "?limit=500").json();
        return ep_log_complete(after_a);
      },
      30s))
      << after_a.dump();
  b.pipeline->Stop();
}

}  // namespace
}  // namespace faxflow
