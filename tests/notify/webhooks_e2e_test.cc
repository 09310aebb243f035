// Webhooks end to end: a `faxflow all` process (embedded bus, real imaging and sim modem) with
// loopback allow-listed through the documented private-deployment key
// (net.allowed_private_networks), a tenant endpoint created over REST, and a local receiver.
// A delivered fax produces signed webhooks (queued, rendered, attempt, page, delivered) that
// verify with the endpoint's secret; the endpoint's delivery log shows them.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/wait.h>

#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "tests/e2e/e2e_util.h"
#include "workers/notify/signature.h"

namespace faxflow::testing {
namespace {

using namespace std::chrono_literals;

class Receiver {
 public:
  Receiver() {
    server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard l(mu_);
      received_.push_back(req);
      res.status = 204;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    EXPECT_TRUE(Await([this] { return server_.is_running(); }, 5s));
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }
  std::string Url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::vector<httplib::Request> Received() {
    std::lock_guard l(mu_);
    return received_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::mutex mu_;
  std::vector<httplib::Request> received_;
  std::thread thread_;
};

TEST(WebhooksE2E, DeliveredFaxProducesSignedWebhooksAtALocalReceiver) {
  TempDir dir("faxflow-webhooks-e2e");
  Receiver receiver;
  FaxflowAll app(dir.path(), {"net.allowed_private_networks=127.0.0.1/32", "modem.channels=1"});
  httplib::Client client("127.0.0.1", app.port());
  auto created =
      client.Post("/v1/webhooks/endpoints", nlohmann::json{{"url", receiver.Url()}, {"events", {"*"}}}.dump(),
                  "application/json");
  ASSERT_TRUE(created);
  ASSERT_EQ(created->status, 201) << created->body;
  const auto ep = nlohmann::json::parse(created->body);
  const std::string secret = ep.at("secret");
  const std::string ep_id = ep.at("id");

  const std::string fax_id = app.SubmitOk({DataFile("sample.pdf")}, {"+15550100000"});
  auto st = app.AwaitDone(fax_id);
  ASSERT_EQ(st.at("state"), "delivered") << st.dump();

  auto types_for_fax = [&] {
    std::multiset<std::string> types;
    for (const auto& r : receiver.Received()) {
      if (r.path != "/hook") continue;
      auto body = nlohmann::json::parse(r.body, nullptr, false);
      if (!body.is_discarded() && body["data"].value("fax_id", "") == fax_id)
        types.insert(body.value("type", ""));
    }
    return types;
  };
  ASSERT_TRUE(Await([&] { return types_for_fax().count("fax.delivered") == 1; }, 30s))
      << "received " << receiver.Received().size() << " webhooks\n"
      << app.process().Log();
  const auto types = types_for_fax();
  for (const char* t : {"fax.queued", "fax.rendered", "fax.attempt", "fax.page", "fax.delivered"})
    EXPECT_GE(types.count(t), 1u) << t;
  EXPECT_EQ(types.count("fax.page"), 4u) << "one per confirmed page of the 4-page sample";

  std::set<std::string> ids;
  for (const auto& r : receiver.Received()) {
    if (r.path != "/hook") continue;
    const std::string id = r.get_header_value("webhook-id");
    const std::string ts = r.get_header_value("webhook-timestamp");
    const int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    EXPECT_TRUE(notify::Verify({secret}, id, ts, r.get_header_value("webhook-signature"), r.body, now).ok())
        << id << " " << r.body;
    EXPECT_TRUE(ids.insert(id).second) << "duplicate webhook-id " << id;
  }

  // The delivery log records each attempt right after the receiver answered it.
  nlohmann::json j;
  ASSERT_TRUE(Await(
      [&] {
        auto log = client.Get("/v1/webhooks/endpoints/" + ep_id);
        if (!log || log->status != 200) return false;
        j = nlohmann::json::parse(log->body);
        size_t hooks = 0;
        for (const auto& r : receiver.Received()) hooks += r.path == "/hook";
        return j.at("deliveries").size() >= hooks;
      },
      10s))
      << j.dump();
  for (const auto& d : j.at("deliveries")) EXPECT_EQ(d.at("state"), "delivered") << d.dump();

  // The CLI lists the endpoint and verifies a received webhook.
  {
    ChildProcess list(
        {FaxflowBinary(), "webhooks", "list", "--server", "http://127.0.0.1:" + std::to_string(app.port())},
        dir.path() + "/cli-list.log");
    ASSERT_NE(list.Wait(60s), -1);
    EXPECT_NE(list.Log().find(ep_id), std::string::npos) << list.Log();
    const auto first = receiver.Received().front();
    const std::string body_file = dir.path() + "/body.json";
    { std::ofstream(body_file, std::ios::binary) << first.body; }
    ChildProcess verify(
        {FaxflowBinary(), "webhooks", "verify", "--secret", secret, "--webhook-id",
         first.get_header_value("webhook-id"), "--timestamp", first.get_header_value("webhook-timestamp"),
         "--signature", first.get_header_value("webhook-signature"), "--body", body_file},
        dir.path() + "/cli-verify.log");
    const int vst = verify.Wait(60s);
    EXPECT_TRUE(WIFEXITED(vst) && WEXITSTATUS(vst) == 0) << verify.Log();
    EXPECT_NE(verify.Log().find("valid"), std::string::npos) << verify.Log();
  }

  // A per-fax callback_url gets the fax's events, signed with the tenant's callback secret.
  auto cs = client.Get("/v1/webhooks/callback-secret");
  ASSERT_TRUE(cs);
  ASSERT_EQ(cs->status, 200) << cs->body;
  const std::string cb_secret = nlohmann::json::parse(cs->body).at("secrets").at(0).at("secret");
  const std::string fax2 = app.SubmitOk({DataFile("sample.pdf")}, {"+15550100000"},
                                        nlohmann::json{{"callback_url", receiver.Url("/cb")}}.dump());
  ASSERT_EQ(app.AwaitDone(fax2).at("state"), "delivered");
  auto cb_types = [&] {
    std::multiset<std::string> t;
    for (const auto& r : receiver.Received()) {
      if (r.path != "/cb") continue;
      auto body = nlohmann::json::parse(r.body);
      EXPECT_EQ(body["data"].value("fax_id", ""), fax2);
      const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
      EXPECT_TRUE(notify::Verify({cb_secret}, r.get_header_value("webhook-id"),
                                 r.get_header_value("webhook-timestamp"),
                                 r.get_header_value("webhook-signature"), r.body, now)
                      .ok());
      t.insert(body.value("type", ""));
    }
    return t;
  };
  ASSERT_TRUE(Await([&] { return cb_types().count("fax.delivered") == 1; }, 30s));
  EXPECT_EQ(cb_types().count("fax.queued"), 1u);
}

}  // namespace
}  // namespace faxflow::testing
