// Pending webhook deliveries survive the node that held them (docs/webhooks.md, "Pending
// deliveries move with their partition", fax.webhook-deliveries): two `faxflow gateway` processes
// with owner routing (proxy) on a private Kafka broker, and a local receiver that first answers
// 503 (the customer's endpoint is down). 24 faxes with a callback_url and an endpoint make 48
// deliveries, each attempted (and failed) by the node owning its fax's partition. Node A is
// killed with SIGKILL while it holds pending deliveries, and the endpoint recovers:
//   - node B delivers every pending delivery, A's included, exactly once per webhook-id
//     (receiver-side count of 2xx answers), within member timeout + max backoff + slack;
//   - node A restarted with the same data_dir (it owns its partitions again) delivers none of its
//     stale copies: it makes no attempt at all.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "tests/support/loopback_server.h"
#include "tests/support/support.h"

namespace faxflow::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::string Base64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16 | static_cast<unsigned char>(in[i + 1]) << 8 |
                       static_cast<unsigned char>(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += t[(v >> s) & 63];
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += t[(v >> 18) & 63];
    out += t[(v >> 12) & 63];
    out += i + 1 < in.size() ? t[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

constexpr int kMemberTimeoutSeconds = 4;
constexpr double kMaxBackoffSeconds = 1;

// The customer's endpoint: answers 503 until Up(), then 204; counts attempts and 2xx answers per
// webhook-id.
class Receiver {
 public:
  Receiver() {
    http_.server().Post(R"(/(ep|cb))", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string id = req.get_header_value("webhook-id");
      std::lock_guard l(mu_);
      ++attempts_[id];
      if (up_) {
        ++delivered_[id];
        res.status = 204;
      } else {
        res.status = 503;
      }
    });
    http_.Start();
  }
  int port() const { return http_.port(); }
  void Up() {
    std::lock_guard l(mu_);
    up_ = true;
  }
  size_t Attempted() {
    std::lock_guard l(mu_);
    return attempts_.size();
  }
  std::map<std::string, int> Delivered() {
    std::lock_guard l(mu_);
    return delivered_;
  }
  std::set<std::string> Ids() {
    std::lock_guard l(mu_);
    std::set<std::string> out;
    for (const auto& [id, n] : attempts_) out.insert(id);
    return out;
  }

 private:
  std::mutex mu_;
  bool up_ = false;
  std::map<std::string, int> attempts_, delivered_;
  LoopbackServer http_;  // last: stops before the counts go
};

httplib::Result Send(int port, const std::string& method, const std::string& path, const std::string& body,
                     bool local = false) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(2, 0);
  c.set_read_timeout(20, 0);
  httplib::Headers h;
  if (local) h.emplace("X-Faxflow-Forwarded-By", "test");  // served by this node's own store
  if (method == "GET") return c.Get(path, h);
  return c.Post(path, h, body, "application/json");
}

TEST(OwnerWebhookTakeover, PendingDeliveriesOfAKilledNodeAreDeliveredOnceByTheNextOwner) {
  TempDir dir("faxflow-hook-takeover");
  PrivateKafkaBroker broker(dir.path() + "/kafka");
  ASSERT_TRUE(broker.ok()) << "scripts/kafka could not start a private broker";
  Receiver rx;
  const int ports[2] = {FreePort(), FreePort()};
  int starts = 0;
  auto gateway = [&](int i) {
    const std::string name = "gw" + std::to_string(i);
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{
            FaxflowBinary(), "gateway",
            "--kafka",       broker.bootstrap(),
            "--set",         "data_dir=" + dir.path() + "/" + name,
            "--set",         "admin.listen=127.0.0.1:0",
            "--set",         "gateway.listen=127.0.0.1:" + std::to_string(ports[i]),
            "--set",         "gateway.auth=none",
            "--set",         "gateway.owner_mode=proxy",
            "--set",         "gateway.member_timeout_seconds=" + std::to_string(kMemberTimeoutSeconds),
            "--set",         "net.allowed_private_networks=127.0.0.1/32",
            "--set",         "webhooks.initial_backoff_seconds=0.5",
            "--set",         "webhooks.max_backoff_seconds=" + std::to_string(kMaxBackoffSeconds),
            "--set",         "log.level=info"},
        dir.path() + "/" + name + "-" + std::to_string(++starts) + ".log");
  };
  std::unique_ptr<ChildProcess> gw[2] = {gateway(0), gateway(1)};
  auto ready = [&](int i) {
    return Await([&] { return !gw[i]->Running() || HttpGet(ports[i], "/readyz").status == 200; }, 120s,
                 200ms) &&
           gw[i]->Running();
  };
  auto partitions = [&](int i) { return ScrapeMetric(ports[i], "faxflow_webhook_partitions"); };
  auto split = [&] {
    return Await(
        [&] {
          const double a = partitions(0), b = partitions(1);
          return ScrapeMetric(ports[0], "faxflow_gateway_owner_members") == 2 &&
                 ScrapeMetric(ports[1], "faxflow_gateway_owner_members") == 2 && a > 0 && b > 0 &&
                 a + b == 12;
        },
        60s, 200ms);
  };
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(ready(i)) << gw[i]->Log();
  ASSERT_TRUE(split()) << "partitions " << partitions(0) << " + " << partitions(1);

  // An endpoint (on both nodes' stores through fax.webhooks) and 24 faxes with a callback_url.
  const std::string base = "http://127.0.0.1:" + std::to_string(rx.port());
  auto ep = Send(ports[0], "POST", "/v1/webhooks/endpoints",
                 json{{"url", base + "/ep"}, {"events", json::array({"fax.queued"})}}.dump());
  ASSERT_TRUE(ep && ep->status == 201) << (ep ? ep->body : "no answer");
  const std::string ep_id = json::parse(ep->body).at("id");
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(Await(
        [&] {
          auto r = Send(ports[i], "GET", "/v1/webhooks/endpoints/" + ep_id, "", true);
          return r && r->status == 200;
        },
        20s))
        << "endpoint not on node " << i;
  const int n = 24;
  for (int i = 0; i < n; ++i) {
    json body = {{"to", "+15550100000"},
                 {"documents", {{{"content_base64", Base64("takeover " + std::to_string(i) + "\n")}}}},
                 {"callback_url", base + "/cb"}};
    auto r = Send(ports[i % 2], "POST", "/v1/faxes", body.dump());
    ASSERT_TRUE(r && r->status == 202) << (r ? std::to_string(r->status) + " " + r->body : "no answer");
  }
  // Every delivery was attempted (and failed: the endpoint is down) by the owner of its partition,
  // and node A holds some of them pending.
  ASSERT_TRUE(Await([&] { return rx.Attempted() >= 2u * n; }, 60s))
      << rx.Attempted() << " of " << 2 * n << " deliveries attempted\n"
      << gw[0]->Log().substr(0, 10000);
  EXPECT_EQ(rx.Attempted(), 2u * n) << "one webhook-id per (event, target)";
  const MetricLabels failed = {{"outcome", "http_error"}};
  double a_pending = 0;
  ASSERT_TRUE(Await(
      [&] {
        a_pending = ScrapeMetric(ports[0], "faxflow_webhook_pending");
        return ScrapeMetric(ports[0], "faxflow_webhook_attempts_total", failed) > 0 && a_pending > 0;
      },
      20s))
      << "node A made no failed attempt / holds nothing pending";
  std::cerr << "node A holds " << a_pending << " pending deliveries, node B "
            << ScrapeMetric(ports[1], "faxflow_webhook_pending") << " (failed attempts: A "
            << ScrapeMetric(ports[0], "faxflow_webhook_attempts_total", failed) << ", B "
            << ScrapeMetric(ports[1], "faxflow_webhook_attempts_total", failed) << ")\n";

  // kill -9 node A; the endpoint recovers.
  gw[0]->Signal(SIGKILL);
  gw[0]->Wait(10s);
  const auto killed_at = std::chrono::steady_clock::now();
  rx.Up();
  const std::set<std::string> ids = rx.Ids();
  auto all_delivered = [&] {
    auto d = rx.Delivered();
    for (const auto& id : ids)
      if (d[id] < 1) return false;
    return true;
  };
  ASSERT_TRUE(Await(all_delivered, 60s, 20ms))
      << rx.Delivered().size() << " of " << ids.size() << " delivered\n"
      << gw[1]->Log().substr(0, 20000);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  std::cerr << "every pending delivery delivered " << took << " s after node A's kill -9 (member timeout "
            << kMemberTimeoutSeconds << " s, max backoff " << kMaxBackoffSeconds << " s)\n";
  // Bound (docs/webhooks.md): member timeout + one dispatch round + the delivery's remaining
  // backoff (<= max backoff), plus slack for a loaded machine.
  EXPECT_LT(took, kMemberTimeoutSeconds + kMaxBackoffSeconds + 5.0);
  for (const auto& [id, count] : rx.Delivered()) EXPECT_EQ(count, 1) << id << " delivered more than once";
  EXPECT_GE(ScrapeMetric(ports[1], "faxflow_webhook_delivered_total"), 2.0 * n)
      << "node B delivered every delivery, node A's included";

  // Node A comes back with its data_dir (stale pending copies in its store) and owns its
  // partitions again: it learned from fax.webhook-deliveries that they were delivered.
  gw[0] = gateway(0);
  ASSERT_TRUE(ready(0)) << gw[0]->Log();
  ASSERT_TRUE(split()) << "partitions " << partitions(0) << " + " << partitions(1);
  ASSERT_TRUE(Await([&] { return ScrapeMetric(ports[0], "faxflow_webhook_pending") == 0; }, 20s));
  // An observation window of a few dispatch rounds: no second delivery may appear.
  EXPECT_FALSE(Await(
      [&] {
        for (const auto& [id, count] : rx.Delivered())
          if (count > 1) return true;
        return false;
      },
      3s))
      << "a delivery was made again after node A came back";
  EXPECT_EQ(ScrapeMetric(ports[0], "faxflow_webhook_attempts_total"), 0) << "node A attempted a stale copy";
}

}  // namespace
}  // namespace faxflow::testing
