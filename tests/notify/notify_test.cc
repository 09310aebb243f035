// Webhooks: signatures (checked against an independent Python reference verifier), tamper and
// replay rejection, the retry/backoff/dead-letter schedule on a ManualClock, de-duplication of
// redelivered events, secret rotation on the wire, and the SSRF guard on the webhook path
// (zero connections to forbidden addresses, proved with listening sockets).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/registry.h>
#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "common/clock.h"
#include "producers/ingest/url_fetcher.h"
#include "tests/support/catalogue_bus.h"
#include "tests/support/loopback_server.h"
#include "tests/support/support.h"
#include "topics/catalogue.h"
#include "topics/embedded/embedded_bus.h"
#include "workers/notify/notifier.h"
#include "workers/notify/notify_store.h"
#include "workers/notify/replica.h"
#include "workers/notify/signature.h"

namespace faxflow::notify {
namespace {

using namespace std::chrono_literals;
using faxflow::testing::Await;
using faxflow::testing::TempDir;
using testing::CountingListener;

// Independent receiver-side implementation (Python stdlib), as a customer would write it.
constexpr char kPythonVerifier[] = R"PY(
import base64, hashlib, hmac, json, sys, time
req = json.load(open(sys.argv[1]))
def key(secret):
    return base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
ts = int(req["timestamp"])
if abs(int(req["now"]) - ts) > 300:
    print("replay"); sys.exit(0)
content = (req["id"] + "." + req["timestamp"] + ".").encode() + base64.b64decode(req["body_b64"])
expected = base64.b64encode(hmac.new(key(req["secret"]), content, hashlib.sha256).digest()).decode()
for part in req["signature"].split(" "):
    version, _, sig = part.partition(",")
    if version == "v1" and hmac.compare_digest(sig, expected):
        print("ok"); sys.exit(0)
print("bad")
)PY";

std::string RunPython(const std::string& dir, const nlohmann::json& req) {
  const std::string script = dir + "/verify.py", input = dir + "/req.json";
  std::ofstream(script) << kPythonVerifier;
  std::ofstream(input) << req.dump();
  FILE* p = popen(("python3 " + script + " " + input).c_str(), "r");
  if (!p) return "popen failed";
  char buf[64] = {};
  std::string out;
  while (fgets(buf, sizeof(buf), p)) out += buf;
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

TEST(SignatureTest, ReferenceVerifierAcceptsBothRotationSignaturesAndRejectsOthers) {
  TempDir dir;
  const std::string a = NewSecret(), b = NewSecret(), other = NewSecret();
  const std::string body =
      R"({"type":"fax.delivered","data":{"fax_id":"fax_1","pages":3}})" + std::string("\x01\xff", 2);
  const int64_t ts = 1'700'000'000;
  auto header = SignatureHeader({a, b}, "msg_abc", ts, body);
  ASSERT_TRUE(header.ok()) << header.status().ToString();
  EXPECT_NE(header->find(' '), std::string::npos) << "two signatures during rotation";
  nlohmann::json req{{"id", "msg_abc"},
                     {"timestamp", std::to_string(ts)},
                     {"now", ts + 10},
                     {"body_b64", Base64Encode(body)},
                     {"signature", *header}};
  for (const auto& s : {a, b}) {
    req["secret"] = s;
    EXPECT_EQ(RunPython(dir.path(), req), "ok");
  }
  req["secret"] = other;
  EXPECT_EQ(RunPython(dir.path(), req), "bad");
  req["secret"] = a;
  req["now"] = ts + 301;
  EXPECT_EQ(RunPython(dir.path(), req), "replay");

  // And the C++ verifier agrees.
  EXPECT_TRUE(Verify({a}, "msg_abc", std::to_string(ts), *header, body, ts).ok());
  EXPECT_TRUE(Verify({b}, "msg_abc", std::to_string(ts), *header, body, ts).ok());
  EXPECT_FALSE(Verify({other}, "msg_abc", std::to_string(ts), *header, body, ts).ok());
}

TEST(SignatureTest, TenThousandSingleByteMutationsAreRejected) {
  const std::string secret = NewSecret();
  const std::string id = "msg_0123456789abcdef01234567";
  const int64_t ts = 1'700'000'000;
  const std::string body =
      nlohmann::json{{"type", "fax.page"}, {"data", {{"fax_id", "fax_x"}, {"page", 2}}}}.dump();
  const std::string sig = *SignatureHeader({secret}, id, ts, body);
  const std::string tss = std::to_string(ts);
  ASSERT_TRUE(Verify({secret}, id, tss, sig, body, ts).ok());
  std::mt19937 rng(42);
  int rejected = 0;
  for (int i = 0; i < 10'000; ++i) {
    std::string m_id = id, m_ts = tss, m_sig = sig, m_body = body;
    std::string* field = nullptr;
    switch (i % 4) {
      case 0:
        field = &m_body;
        break;
      case 1:
        field = &m_sig;
        break;
      case 2:
        field = &m_id;
        break;
      default:
        field = &m_ts;
        break;
    }
    const size_t pos = rng() % field->size();
    const char old = (*field)[pos];
    char now = old;
    while (now == old) now = static_cast<char>(rng() % 256);
    (*field)[pos] = now;
    if (!Verify({secret}, m_id, m_ts, m_sig, m_body, ts).ok())
      ++rejected;
    else
      ADD_FAILURE() << "mutation accepted: field " << i % 4 << " pos " << pos;
  }
  EXPECT_EQ(rejected, 10'000);
}

TEST(SignatureTest, ReplaysOutsideTheToleranceAreRejected) {
  const std::string secret = NewSecret();
  const int64_t now = 1'700'000'000;
  for (int64_t age : {-301, 301, 3600, 86400}) {
    const int64_t ts = now - age;
    auto sig = *SignatureHeader({secret}, "msg_1", ts, "{}");
    EXPECT_FALSE(Verify({secret}, "msg_1", std::to_string(ts), sig, "{}", now).ok()) << age;
  }
  for (int64_t age : {-299, 0, 299}) {
    const int64_t ts = now - age;
    auto sig = *SignatureHeader({secret}, "msg_1", ts, "{}");
    EXPECT_TRUE(Verify({secret}, "msg_1", std::to_string(ts), sig, "{}", now).ok()) << age;
  }
}

class NotifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = NotifyStore::Open(dir_.path() + "/notify");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }
  Endpoint AddEndpoint(const std::string& url, std::vector<std::string> events = {"*"},
                       const std::string& tenant = "t1") {
    Endpoint e;
    e.id = "whe_" + std::to_string(++n_);
    e.tenant = tenant;
    e.url = url;
    e.events = std::move(events);
    e.secrets = {{NewSecret(), 0}};
    EXPECT_TRUE(store_->PutEndpoint(e).ok());
    return e;
  }
  static NotifyEvent Event(const std::string& id, const std::string& type = "fax.delivered",
                           const std::string& tenant = "t1") {
    NotifyEvent ev;
    ev.event_id = id;
    ev.type = type;
    ev.tenant = tenant;
    ev.fax_id = "fax_1";
    ev.at_ms = 1'700'000'000'000;
    ev.data = {{"fax_id", "fax_1"}};
    return ev;
  }
  TempDir dir_;
  std::unique_ptr<NotifyStore> store_;
  prometheus::Registry registry_;
  ManualClock clock_;
  int n_ = 0;
};

TEST_F(NotifierTest, RetriesWithExponentialBackoffForADayThenDeadLetters) {
  const Endpoint ep = AddEndpoint("https://hooks.example.com/fax");
  std::vector<int64_t> attempts_at;
  std::mutex mu;
  WebhookSender sender = [&](const ingest::OutboundRequest& req) -> Result<ingest::OutboundResponse> {
    std::lock_guard l(mu);
    attempts_at.push_back(clock_.NowMillis());
    EXPECT_EQ(req.method, "POST");
    ingest::OutboundResponse r;
    r.status = 503;
    return r;
  };
  NotifierOptions o;  // defaults: 5 s doubling, capped at 1 h, for 24 h
  Notifier notifier(o, nullptr, *store_, sender, registry_, clock_);
  ASSERT_TRUE(notifier.Publish(Event("evt_1")).ok());
  const int64_t start = clock_.NowMillis();
  for (int guard = 0; guard < 1000; ++guard) {
    auto n = notifier.DeliverDue();
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    auto pending = store_->PendingCount();
    ASSERT_TRUE(pending.ok());
    if (*pending == 0) break;
    clock_.Advance(1s);
    if (*n == 0) {  // jump to the next due time quickly
      auto due = store_->Due(clock_.NowMillis() + 3600'000, 1);
      ASSERT_TRUE(due.ok());
      if (!due->empty() && due->front().next_ms > clock_.NowMillis())
        clock_.Advance(std::chrono::milliseconds(due->front().next_ms - clock_.NowMillis()));
    }
  }
  ASSERT_GE(attempts_at.size(), 10u);
  // Gaps: 5, 10, 20, 40, ... seconds, capped at one hour.
  int64_t expect = 5000;
  for (size_t i = 1; i < attempts_at.size(); ++i) {
    EXPECT_EQ(attempts_at[i] - attempts_at[i - 1], expect) << "gap before attempt " << i + 1;
    expect = std::min<int64_t>(expect * 2, 3600'000);
  }
  EXPECT_LE(attempts_at.back() - start, 24LL * 3600 * 1000);
  EXPECT_GT(attempts_at.back() - start + 3600'000, 24LL * 3600 * 1000)
      << "retried until the last slot of the day";
  auto log = store_->Log("ep:" + ep.id, 1000);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), attempts_at.size());
  EXPECT_EQ(log->front().state, "dead");
  EXPECT_EQ(log->front().status, 503);
  for (size_t i = 1; i < log->size(); ++i) EXPECT_EQ((*log)[i].state, "pending");
}

TEST_F(NotifierTest, DeliversOnceAfterTransientFailuresAndDeduplicatesRedeliveredEvents) {
  const Endpoint ep = AddEndpoint("https://hooks.example.com/a", {"delivered", "fax.failed"});
  const Endpoint other_tenant = AddEndpoint("https://hooks.example.com/b", {"*"}, "t2");
  const Endpoint not_subscribed = AddEndpoint("https://hooks.example.com/c", {"fax.page"});
  std::atomic<int> calls{0};
  std::vector<std::string> urls;
  std::mutex mu;
  WebhookSender sender = [&](const ingest::OutboundRequest& req) -> Result<ingest::OutboundResponse> {
    std::lock_guard l(mu);
    urls.push_back(req.url);
    ingest::OutboundResponse r;
    r.status = ++calls <= 2 ? 500 : 204;
    if (calls == 1) return Status::Retryable(Code::kUnavailable, "url unreachable: connection refused");
    return r;
  };
  Notifier notifier(NotifierOptions{}, nullptr, *store_, sender, registry_, clock_);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(notifier.Publish(Event("evt_same")).ok());  // at-least-once input
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(notifier.DeliverDue().ok());
    clock_.Advance(60s);
  }
  EXPECT_EQ(calls.load(), 3);
  for (const auto& u : urls) EXPECT_EQ(u, ep.url);
  auto log = store_->Log("ep:" + ep.id, 10);
  ASSERT_TRUE(log.ok());
  ASSERT_EQ(log->size(), 3u);
  EXPECT_EQ(log->front().state, "delivered");
  EXPECT_EQ(log->front().status, 204);
  EXPECT_NE((*log)[2].error.find("connection refused"), std::string::npos);
  EXPECT_EQ(*store_->PendingCount(), 0);
}

// A loopback HTTP receiver that records what it gets.
class Receiver {
 public:
  explicit Receiver(const std::string& host = "127.0.0.1") : http_(host) {
    http_.server().Get(R"(/to)", [](const httplib::Request& req, httplib::Response& res) {
      res.set_redirect(req.get_param_value("u"), 307);
    });
    http_.server().Post(R"(/to)", [](const httplib::Request& req, httplib::Response& res) {
      res.set_redirect(req.get_param_value("u"), 307);
    });
    http_.server().Post(R"(/chain/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
      const int n = std::stoi(req.matches[1]);
      if (n == 0) {
        std::lock_guard l(mu_);
        received_.push_back(req);
        res.status = 200;
        return;
      }
      res.set_redirect("/chain/" + std::to_string(n - 1), 307);
    });
    http_.server().Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard l(mu_);
      received_.push_back(req);
      res.status = 200;
    });
    http_.Start();
  }
  std::string Url(const std::string& path) const { return http_.Url(path); }
  std::vector<httplib::Request> Received() {
    std::lock_guard l(mu_);
    return received_;
  }

 private:
  std::mutex mu_;
  std::vector<httplib::Request> received_;
  testing::LoopbackServer http_;  // last: stops before what its handlers use
};

TEST_F(NotifierTest, RotatedEndpointSignsWithBothSecretsOnTheWire) {
  Receiver receiver;
  ingest::UrlFetcherOptions fo;
  fo.allowed_networks = {"127.0.0.1/32"};  // the documented private-deployment allow-list
  fo.timeout = 5s;
  ingest::UrlFetcher fetcher(fo);
  Endpoint ep = AddEndpoint(receiver.Url("/hook"));
  const std::string old_secret = ep.secrets[0].value, new_secret = NewSecret();
  ep.secrets = {{old_secret, clock_.NowMillis() + 3600'000}, {new_secret, 0}};
  ASSERT_TRUE(store_->PutEndpoint(ep).ok());
  Notifier notifier(
      NotifierOptions{}, nullptr, *store_, [&](const auto& r) { return fetcher.Send(r); }, registry_, clock_);
  ASSERT_TRUE(notifier.Publish(Event("evt_rot")).ok());
  ASSERT_TRUE(notifier.DeliverDue().ok());
  auto got = receiver.Received();
  ASSERT_EQ(got.size(), 1u);
  const auto& r = got[0];
  const std::string id = r.get_header_value("webhook-id"), ts = r.get_header_value("webhook-timestamp"),
                    sig = r.get_header_value("webhook-signature");
  EXPECT_EQ(ts, std::to_string(clock_.NowMillis() / 1000));
  EXPECT_TRUE(Verify({old_secret}, id, ts, sig, r.body, clock_.NowMillis() / 1000).ok()) << sig;
  EXPECT_TRUE(Verify({new_secret}, id, ts, sig, r.body, clock_.NowMillis() / 1000).ok()) << sig;
  auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["type"], "fax.delivered");
  EXPECT_EQ(body["data"]["fax_id"], "fax_1");

  // After the old secret expires only the new one signs.
  clock_.Advance(2h);
  ASSERT_TRUE(notifier.Publish(Event("evt_rot2")).ok());
  ASSERT_TRUE(notifier.DeliverDue().ok());
  got = receiver.Received();
  ASSERT_EQ(got.size(), 2u);
  const auto& r2 = got[1];
  const int64_t now_s = clock_.NowMillis() / 1000;
  EXPECT_FALSE(Verify({old_secret}, r2.get_header_value("webhook-id"),
                      r2.get_header_value("webhook-timestamp"), r2.get_header_value("webhook-signature"),
                      r2.body, now_s)
                   .ok());
  EXPECT_TRUE(Verify({new_secret}, r2.get_header_value("webhook-id"),
                     r2.get_header_value("webhook-timestamp"), r2.get_header_value("webhook-signature"),
                     r2.body, now_s)
                  .ok());
}

// Without an allow-list nothing on loopback or in private space is reachable, in any spelling.
TEST_F(NotifierTest, SsrfBatteryMakesZeroConnectionsToForbiddenAddresses) {
  CountingListener loopback("127.0.0.1");
  const std::string p = std::to_string(loopback.port());
  ingest::UrlFetcherOptions fo;
  fo.timeout = 3s;
  ingest::UrlFetcher fetcher(fo);
  std::vector<std::string> urls = {"http://127.0.0.1:" + p + "/",
                                   "http://localhost:" + p + "/",
                                   "http://[::ffff:127.0.0.1]:" + p + "/",
                                   "http://[::1]:" + p + "/",
                                   "http://2130706433:" + p + "/",
                                   "http://0177.0.0.1:" + p + "/",
                                   "http://0x7f000001:" + p + "/",
                                   "http://127.1:" + p + "/",
                                   "HTTP://127.0.0.1:" + p + "/",
                                   "http://10.0.0.1:" + p + "/",
                                   "http://172.16.0.1:" + p + "/",
                                   "http://192.168.0.1:" + p + "/",
                                   "http://169.254.169.254/latest/meta-data/",
                                   "http://[fd00::1]:" + p + "/",
                                   "http://100.64.0.1:" + p + "/",
                                   "file:///etc/passwd",
                                   "gopher://127.0.0.1:" + p + "/"};
  std::vector<Endpoint> eps;
  for (const auto& u : urls) eps.push_back(AddEndpoint(u));
  std::vector<Result<ingest::OutboundResponse>> results;
  std::mutex mu;
  Notifier notifier(
      NotifierOptions{}, nullptr, *store_,
      [&](const auto& r) {
        auto res = fetcher.Send(r);
        std::lock_guard l(mu);
        results.push_back(res);
        return res;
      },
      registry_, clock_);
  ASSERT_TRUE(notifier.Publish(Event("evt_ssrf")).ok());
  ASSERT_TRUE(notifier.DeliverDue().ok());
  ASSERT_EQ(results.size(), urls.size());
  for (const auto& r : results) {
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("url refused"), std::string::npos) << r.status().message();
  }
  for (const auto& e : eps) {
    auto log = store_->Log("ep:" + e.id, 5);
    ASSERT_TRUE(log.ok());
    ASSERT_EQ(log->size(), 1u) << e.url;
    EXPECT_NE(log->front().error.find("url refused"), std::string::npos)
        << e.url << ": " << log->front().error;
  }
  EXPECT_EQ(loopback.accepted(), 0);
}

// With 127.0.0.1 allow-listed (private deployment), redirects to anything else are still refused
// hop by hop, and more than 5 redirects are refused.
TEST_F(NotifierTest, RedirectsAreRecheckedAndCappedOnTheWebhookPath) {
  Receiver receiver("127.0.0.1");
  CountingListener internal("127.0.0.2");
  const std::string ip = std::to_string(internal.port());
  ingest::UrlFetcherOptions fo;
  fo.timeout = 5s;
  fo.allowed_networks = {"127.0.0.1/32"};
  ingest::UrlFetcher fetcher(fo);
  auto send = [&](const std::string& url) {
    ingest::OutboundRequest r;
    r.method = "POST";
    r.url = url;
    r.body = "{}";
    return fetcher.Send(r);
  };
  for (const std::string& to : {"http://127.0.0.2:" + ip + "/", "http://[::ffff:127.0.0.2]:" + ip + "/",
                                "http://2130706434:" + ip + "/", "http://0177.0.0.2:" + ip + "/",
                                std::string("file:///etc/passwd")}) {
    auto r = send(receiver.Url("/to?u=" + httplib::detail::encode_query_param(to)));
    ASSERT_FALSE(r.ok()) << to;
    EXPECT_NE(r.status().message().find("url refused"), std::string::npos) << r.status().message();
  }
  auto five = send(receiver.Url("/chain/5"));
  ASSERT_TRUE(five.ok()) << five.status().ToString();
  EXPECT_EQ(five->status, 200);
  EXPECT_EQ(five->redirects, 5);
  auto six = send(receiver.Url("/chain/6"));
  ASSERT_FALSE(six.ok());
  EXPECT_NE(six.status().message().find("too many redirects"), std::string::npos) << six.status().message();
  EXPECT_EQ(internal.accepted(), 0);
  // The POST body survived the 307 hops to the receiver.
  bool saw_body = false;
  for (const auto& r : receiver.Received()) saw_body = saw_body || (r.path == "/chain/0" && r.body == "{}");
  EXPECT_TRUE(saw_body);
}

// The broker behind a store's log or delivery mirror: refuses while `down`, else keeps what it
// was handed, in order.
struct BrokerStandIn {
  std::vector<std::pair<std::string, std::string>> published;
  bool down = true;
  NotifyStore::LogMirror Mirror() {
    return [this](const std::vector<std::pair<std::string, std::string>>& entries) -> Status {
      if (down) return Status::Retryable(Code::kUnavailable, "broker down");
      published.insert(published.end(), entries.begin(), entries.end());
      return Status::Ok();
    };
  }
};

// Several gateway nodes (docs/webhooks.md): the delivering node's log entries go through its
// outbox to the log mirror (fax.webhook-log); a failed publish keeps them for the next round; a
// second node's store applying what was published lists the same attempts, and applying one
// twice (a re-publish after a crash) does not duplicate it.
TEST_F(NotifierTest, DeliveryLogIsPublishedThroughTheOutboxAndAppliedOnOtherNodes) {
  const Endpoint ep = AddEndpoint("https://hooks.example.com/shared");
  BrokerStandIn broker;  // down at first
  store_->SetLogMirror(broker.Mirror());
  auto& published = broker.published;
  bool& fail_publish = broker.down;
  int calls = 0;
  WebhookSender sender = [&](const ingest::OutboundRequest&) -> Result<ingest::OutboundResponse> {
    ingest::OutboundResponse r;
    r.status = ++calls == 1 ? 500 : 204;  // first attempt fails, the retry delivers
    return r;
  };
  NotifierOptions o;
  Notifier notifier(o, nullptr, *store_, sender, registry_, clock_);
  ASSERT_TRUE(notifier.Publish(Event("evt_shared")).ok());
  ASSERT_EQ(*notifier.DeliverDue(), 1);
  auto failed = store_->PublishLog();
  EXPECT_FALSE(failed.ok()) << "a failed publish is reported";
  EXPECT_TRUE(published.empty());
  fail_publish = false;
  clock_.Advance(5s);
  ASSERT_EQ(*notifier.DeliverDue(), 1);
  auto n = store_->PublishLog();
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 2u) << "both attempts, the one kept from the failed round included";
  ASSERT_EQ(published.size(), 2u);
  EXPECT_EQ(*store_->PublishLog(), 0u) << "the outbox is empty once published";

  // Another node applies the published entries (twice: idempotent) and reads the same log.
  auto other = NotifyStore::Open(dir_.path() + "/other");
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  for (int round = 0; round < 2; ++round)
    for (const auto& [key, value] : published) {
      EXPECT_EQ(key.rfind("log/ep:" + ep.id + "/", 0), 0u) << key;
      ASSERT_TRUE((*other)->ApplyMirrored(key, value).ok()) << key;
    }
  auto here = store_->Log("ep:" + ep.id, 10);
  auto there = (*other)->Log("ep:" + ep.id, 10);
  ASSERT_TRUE(here.ok() && there.ok());
  ASSERT_EQ(there->size(), 2u);
  ASSERT_EQ(here->size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ((*there)[i].delivery_id, (*here)[i].delivery_id);
    EXPECT_EQ((*there)[i].attempt, (*here)[i].attempt);
    EXPECT_EQ((*there)[i].state, (*here)[i].state);
    EXPECT_EQ((*there)[i].status, (*here)[i].status);
  }
  EXPECT_EQ(there->front().state, "delivered");
  EXPECT_EQ(there->back().status, 500);
  EXPECT_FALSE((*other)->ApplyMirrored("log/ep:x/1/y/1", "not json").ok()) << "a bad entry is refused";
}

// Several gateway nodes (docs/webhooks.md, "Pending deliveries move with their partition"): two
// nodes on the embedded bus, each with its store, replica (fax.webhooks, fax.webhook-deliveries)
// and notifier. Node A owns partition 5 and its endpoint is down: A's first attempt fails. A stops;
// B becomes the owner of partition 5 and makes the retry at the due time A scheduled, with the same
// webhook-id and attempt number 2. B never attempts while A owns the partition. When A comes back
// (and owns the partition again) it learns that B delivered, and does not deliver its own copy.
TEST_F(NotifierTest, PendingDeliveryIsTakenOverByTheNextOwnerOfItsPartition) {
  std::unique_ptr<bus::Bus> bus = testing::OpenCatalogueBus(dir_.path() + "/bus");
  ASSERT_TRUE(bus);
  auto opened_b = NotifyStore::Open(dir_.path() + "/notify-b");
  ASSERT_TRUE(opened_b.ok()) << opened_b.status().ToString();
  std::unique_ptr<NotifyStore> store_b = std::move(*opened_b);
  auto replica_a = std::make_unique<WebhookReplica>(*bus, *store_);
  WebhookReplica replica_b(*bus, *store_b);
  for (auto* r : {replica_a.get(), &replica_b}) {
    r->ShareDeliveryLog();
    r->ShareDeliveries();
    ASSERT_TRUE(r->Start().ok());
  }
  const Endpoint ep = AddEndpoint("https://hooks.example.com/down-then-up");
  ASSERT_TRUE(Await([&] { return store_b->GetEndpoint(ep.id).ok() && *store_b->GetEndpoint(ep.id); }, 10s));

  std::atomic<int> owner{0};  // 0: node A owns every partition, 1: node B
  std::mutex mu;
  std::vector<std::pair<char, std::string>> sent;  // node, webhook-id
  auto sender_of = [&](char node, int status) {
    return [&, node, status](const ingest::OutboundRequest& req) -> Result<ingest::OutboundResponse> {
      std::lock_guard l(mu);
      for (const auto& [k, v] : req.headers)
        if (k == "webhook-id") sent.emplace_back(node, v);
      ingest::OutboundResponse r;
      r.status = status;
      return r;
    };
  };
  prometheus::Registry registry_b;
  Notifier a(NotifierOptions{}, nullptr, *store_, sender_of('A', 503), registry_, clock_);
  Notifier b(NotifierOptions{}, nullptr, *store_b, sender_of('B', 204), registry_b, clock_);
  a.SetOwnership([&](int32_t) { return owner == 0; }, "unused");
  b.SetOwnership([&](int32_t) { return owner == 1; }, "unused");

  NotifyEvent ev = Event("evt_takeover");
  ev.partition = 5;
  ASSERT_TRUE(a.Publish(ev).ok());
  ASSERT_EQ(*a.DeliverDue(), 1) << "A's endpoint is down: first attempt fails";
  auto published = store_->PublishDeliveries();
  ASSERT_TRUE(published.ok()) << published.status().ToString();
  EXPECT_GE(*published, 1u);
  ASSERT_EQ(sent.size(), 1u);
  const std::string webhook_id = sent[0].second;
  std::optional<Delivery> on_b;
  ASSERT_TRUE(Await(
      [&] {
        auto d = store_b->GetDelivery(webhook_id);
        if (d.ok() && *d && (*d)->attempts == 1) on_b = **d;
        return on_b.has_value();
      },
      10s))
      << "the pending state reaches node B";
  EXPECT_EQ(on_b->state, "pending");
  EXPECT_EQ(on_b->partition, 5);
  EXPECT_EQ(on_b->next_ms, clock_.NowMillis() + 5000) << "the due time A scheduled";

  clock_.Advance(5s);
  EXPECT_EQ(*b.DeliverDue(), 0) << "B does not attempt while A owns the partition";

  // A stops (its replica no longer follows); B owns partition 5 now.
  replica_a->Stop();
  replica_a.reset();
  owner = 1;
  ASSERT_EQ(*b.DeliverDue(), 1);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1], (std::pair<char, std::string>('B', webhook_id))) << "same webhook-id, from B";
  auto log_b = store_b->Log("ep:" + ep.id, 10);
  ASSERT_TRUE(log_b.ok());
  ASSERT_FALSE(log_b->empty());
  EXPECT_EQ(log_b->front().attempt, 2) << "B's attempt continues A's count";
  EXPECT_EQ(log_b->front().state, "delivered");
  ASSERT_TRUE(store_b->PublishDeliveries().ok());

  // A comes back and owns the partition again: it catches up first, and its copy is not delivered.
  replica_a = std::make_unique<WebhookReplica>(*bus, *store_);
  replica_a->ShareDeliveryLog();
  replica_a->ShareDeliveries();
  ASSERT_TRUE(replica_a->Start().ok());
  owner = 0;
  auto on_a = store_->GetDelivery(webhook_id);
  ASSERT_TRUE(on_a.ok() && *on_a);
  EXPECT_EQ((*on_a)->state, "delivered") << "A learned B's delivery while catching up";
  EXPECT_EQ((*on_a)->attempts, 2);
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(60s);
    EXPECT_EQ(*a.DeliverDue(), 0);
  }
  EXPECT_EQ(sent.size(), 2u) << "A's copy was never delivered again";
  EXPECT_EQ(*store_->PendingCount(), 0);

  // Merge rules: an older state applied late does not step back; a bad record is refused.
  Delivery stale = *on_b;
  nlohmann::json j = {{"id", stale.id},           {"target", stale.target},
                      {"tenant", stale.tenant},   {"url", stale.url},
                      {"type", stale.type},       {"event_id", stale.event_id},
                      {"body", stale.body},       {"first_ms", stale.first_ms},
                      {"next_ms", stale.next_ms}, {"attempts", 1},
                      {"state", "pending"},       {"last_status", 503},
                      {"last_error", "HTTP 503"}, {"partition", 5}};
  ASSERT_TRUE(store_b->ApplyMirrored("dl/" + stale.id, j.dump()).ok());
  EXPECT_EQ((*store_b->GetDelivery(stale.id))->state, "delivered");
  EXPECT_EQ(*store_b->PendingCount(), 0);
  EXPECT_FALSE(store_b->ApplyMirrored("dl/msg_x", "not json").ok());
  replica_a->Stop();
  replica_b.Stop();
}

// Shared deliveries without a bus: a failed publish keeps the changed deliveries in the outbox
// (only their latest state), and an attempt that ran while another node's further state arrived
// (an ownership overlap: the other node delivered) does not step the delivery back to pending.
TEST_F(NotifierTest, SharedDeliveryOutboxKeepsLatestStateAndNeverStepsBack) {
  const Endpoint ep = AddEndpoint("https://hooks.example.com/overlap");
  BrokerStandIn broker;  // down at first
  store_->SetDeliveryMirror(broker.Mirror());
  auto& published = broker.published;
  bool& fail_publish = broker.down;
  std::function<void()> during_send;
  WebhookSender sender = [&](const ingest::OutboundRequest&) -> Result<ingest::OutboundResponse> {
    if (during_send) during_send();
    ingest::OutboundResponse r;
    r.status = 503;
    return r;
  };
  Notifier notifier(NotifierOptions{}, nullptr, *store_, sender, registry_, clock_);
  NotifyEvent ev = Event("evt_overlap");
  ev.partition = 3;
  ASSERT_TRUE(notifier.Publish(ev).ok());
  ASSERT_EQ(*notifier.DeliverDue(), 1);
  EXPECT_FALSE(store_->PublishDeliveries().ok()) << "a failed publish is reported";
  fail_publish = false;
  auto n = store_->PublishDeliveries();
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  ASSERT_EQ(*n, 1u) << "one entry per delivery: its latest state";
  const auto first = nlohmann::json::parse(published.at(0).second);
  EXPECT_EQ(first["attempts"], 1);
  EXPECT_EQ(first["state"], "pending");
  EXPECT_EQ(first["partition"], 3);
  EXPECT_EQ(*store_->PublishDeliveries(), 0u) << "the outbox is empty once published";

  // While the second attempt is on the wire, the other node's "delivered" arrives.
  const std::string id = first["id"];
  during_send = [&] {
    nlohmann::json done = first;
    done["attempts"] = 2;
    done["state"] = "delivered";
    done["last_status"] = 204;
    ASSERT_TRUE(store_->ApplyMirrored("dl/" + id, done.dump()).ok());
  };
  clock_.Advance(5s);
  ASSERT_EQ(*notifier.DeliverDue(), 1);
  auto d = store_->GetDelivery(id);
  ASSERT_TRUE(d.ok() && *d);
  EXPECT_EQ((*d)->state, "delivered") << "the failed overlapping attempt did not step back";
  EXPECT_EQ(*store_->PendingCount(), 0);
  during_send = nullptr;
  clock_.Advance(60s);
  EXPECT_EQ(*notifier.DeliverDue(), 0);
  auto log = store_->Log("ep:" + ep.id, 10);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(log->size(), 2u) << "both of this node's attempts are logged";
}

// Retention of finished deliveries (docs/webhooks.md, webhooks.finished_retention_hours): two
// nodes on the embedded bus sharing deliveries; node A owns every partition. Two deliveries finish
// at T0, one is still pending (its endpoint is down; a long max_age keeps it retrying), one more
// finishes at T0 + 48 h. At T0 + 72 h + 1 min, B (not the owner) prunes nothing; A prunes the two
// old finished ones, one per round (prune_per_round = 1), with tombstones on
// fax.webhook-deliveries: both nodes' stores lose them (B also while its follower was stopped:
// it applies the tombstone when it catches up), the pending and the young finished one stay
// everywhere, the delivery log keeps their attempts, and a node started after the prune (topic
// compacted) does not bring them back.
TEST_F(NotifierTest, FinishedDeliveriesAreTombstonedAfterTheRetentionOnEveryNode) {
  std::unique_ptr<bus::EmbeddedBus> bus = testing::OpenCatalogueBus(dir_.path() + "/bus");
  ASSERT_TRUE(bus);
  auto opened_b = NotifyStore::Open(dir_.path() + "/notify-b");
  ASSERT_TRUE(opened_b.ok()) << opened_b.status().ToString();
  std::unique_ptr<NotifyStore> store_b = std::move(*opened_b);
  auto share = [](WebhookReplica& r) {
    r.ShareDeliveryLog();
    r.ShareDeliveries();
    return r.Start();
  };
  WebhookReplica replica_a(*bus, *store_);
  auto replica_b = std::make_unique<WebhookReplica>(*bus, *store_b);
  ASSERT_TRUE(share(replica_a).ok());
  ASSERT_TRUE(share(*replica_b).ok());
  const Endpoint ep = AddEndpoint("https://hooks.example.com/retention");
  ASSERT_TRUE(Await([&] { return store_b->GetEndpoint(ep.id).ok() && *store_b->GetEndpoint(ep.id); }, 10s));

  WebhookSender sender = [&](const ingest::OutboundRequest& req) -> Result<ingest::OutboundResponse> {
    ingest::OutboundResponse r;
    r.status = req.body.find("evt_pending") != std::string::npos ? 503 : 204;
    return r;
  };
  NotifierOptions o;
  o.finished_retention = 72h;
  o.prune_per_round = 1;
  o.max_age = 24h * 30;  // the pending one keeps retrying past the retention
  prometheus::Registry registry_b;
  Notifier a(o, nullptr, *store_, sender, registry_, clock_);
  Notifier b(o, nullptr, *store_b, sender, registry_b, clock_);
  a.SetOwnership([](int32_t) { return true; }, "unused");
  b.SetOwnership([](int32_t) { return false; }, "unused");
  auto publish = [&](const std::string& event_id) {
    NotifyEvent ev = Event(event_id);
    ev.partition = 2;
    Status s = a.Publish(ev);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return s.ok();
  };
  auto id_of = [&](const std::string& event_id) {
    std::string id;
    auto log = store_->Log("ep:" + ep.id, 100);
    if (log.ok())
      for (const auto& e : *log)
        if (e.event_id == event_id) id = e.delivery_id;
    return id;
  };
  auto has = [](NotifyStore& s, const std::string& id) {
    auto d = s.GetDelivery(id);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() && d->has_value();
  };

  const int64_t t0 = clock_.NowMillis();
  ASSERT_TRUE(publish("evt_old1") && publish("evt_old2") && publish("evt_pending"));
  ASSERT_EQ(*a.DeliverDue(), 3);
  ASSERT_TRUE(store_->PublishDeliveries().ok());
  ASSERT_TRUE(store_->PublishLog().ok());
  clock_.Advance(48h);
  ASSERT_TRUE(publish("evt_young"));
  ASSERT_EQ(*a.DeliverDue(), 2) << "the young one delivered, the pending one failed again";
  ASSERT_TRUE(store_->PublishDeliveries().ok());
  ASSERT_TRUE(store_->PublishLog().ok());
  const std::string old1 = id_of("evt_old1"), old2 = id_of("evt_old2"), young = id_of("evt_young"),
                    pending = id_of("evt_pending");
  ASSERT_FALSE(old1.empty() || old2.empty() || young.empty() || pending.empty());
  ASSERT_EQ((*store_->GetDelivery(old1))->finished_ms, t0);
  ASSERT_TRUE(Await(
      [&] {
        auto p = store_b->GetDelivery(pending);
        return has(*store_b, old1) && has(*store_b, old2) && has(*store_b, young) && p.ok() && *p &&
               (*p)->attempts == 2;
      },
      10s))
      << "every delivery reaches node B";

  // Just before the retention: nothing goes.
  clock_.Advance(24h - 1min);
  EXPECT_EQ(*a.PruneFinished(), 0u);
  clock_.Advance(2min);
  EXPECT_EQ(*b.PruneFinished(), 0u) << "B does not own partition 2: it writes no tombstone";
  EXPECT_TRUE(has(*store_b, old1));
  replica_b->Stop();  // B is down while A prunes
  replica_b.reset();
  auto first = a.PruneFinished();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(*first, 1u) << "at most prune_per_round per round";
  EXPECT_EQ(*a.PruneFinished(), 1u);
  EXPECT_EQ(*a.PruneFinished(), 0u);
  for (const auto& id : {old1, old2}) EXPECT_FALSE(has(*store_, id)) << id << " pruned on A";
  EXPECT_TRUE(has(*store_, young)) << "finished less than the retention ago";
  ASSERT_TRUE(has(*store_, pending));
  EXPECT_EQ((*store_->GetDelivery(pending))->state, "pending") << "a pending delivery is never pruned";
  EXPECT_EQ(*store_->PendingCount(), 1);
  auto log = store_->Log("ep:" + ep.id, 100);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(log->size(), 5u) << "the delivery log keeps every attempt, the pruned ones' included";

  // B comes back: catching up, it applies the tombstones to its own copies.
  replica_b = std::make_unique<WebhookReplica>(*bus, *store_b);
  ASSERT_TRUE(share(*replica_b).ok());
  for (const auto& id : {old1, old2}) EXPECT_FALSE(has(*store_b, id)) << id << " still on B";
  EXPECT_TRUE(has(*store_b, young));
  EXPECT_TRUE(has(*store_b, pending));
  EXPECT_EQ(*store_b->PendingCount(), 1) << "B's due index keeps the pending one";

  // A node started after the prune, on a compacted topic, reads only what is left.
  ASSERT_TRUE(bus->Compact().ok());
  auto opened_c = NotifyStore::Open(dir_.path() + "/notify-c");
  ASSERT_TRUE(opened_c.ok()) << opened_c.status().ToString();
  WebhookReplica replica_c(*bus, **opened_c);
  ASSERT_TRUE(share(replica_c).ok());
  for (const auto& id : {old1, old2}) EXPECT_FALSE(has(**opened_c, id)) << id << " resurrected";
  EXPECT_TRUE(has(**opened_c, young));
  EXPECT_TRUE(has(**opened_c, pending));
  auto log_c = (*opened_c)->Log("ep:" + ep.id, 100);
  ASSERT_TRUE(log_c.ok());
  EXPECT_EQ(log_c->size(), 5u) << "fax.webhook-log is untouched";
  replica_c.Stop();
  replica_b->Stop();
  replica_a.Stop();
}

// One node (no shared deliveries): a finished delivery older than the retention leaves the local
// store, including one written before the fin/ index existed (indexed when the store opens).
TEST_F(NotifierTest, SingleNodePrunesFinishedDeliveriesLocally) {
  AddEndpoint("https://hooks.example.com/one");
  WebhookSender ok = [](const ingest::OutboundRequest&) -> Result<ingest::OutboundResponse> {
    ingest::OutboundResponse r;
    r.status = 204;
    return r;
  };
  NotifierOptions o;
  o.finished_retention = 72h;
  std::string id;
  {
    Notifier n(o, nullptr, *store_, ok, registry_, clock_);
    ASSERT_TRUE(n.Publish(Event("evt_single")).ok());
    ASSERT_EQ(*n.DeliverDue(), 1);
    auto due = store_->Due(clock_.NowMillis() + 1, 10);
    ASSERT_TRUE(due.ok() && due->empty());
  }
  // Simulate a store from before the index: drop the fin/ entries and the marker, then reopen.
  store_.reset();
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir_.path() + "/notify", &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    std::vector<std::string> drop = {"meta/fin_index"};
    for (it->Seek("fin/"); it->Valid() && it->key().starts_with("fin/"); it->Next())
      drop.push_back(it->key().ToString());
    for (it->Seek("dl/"); it->Valid() && it->key().starts_with("dl/"); it->Next())
      id = it->key().ToString().substr(3);
    ASSERT_EQ(drop.size(), 2u) << "one fin/ entry for the delivered delivery";
    for (const auto& k : drop) ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), k).ok());
  }
  auto reopened = NotifyStore::Open(dir_.path() + "/notify");
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  store_ = std::move(*reopened);
  ASSERT_FALSE(id.empty());
  Notifier n(o, nullptr, *store_, ok, registry_, clock_);
  clock_.Advance(72h - 1s);
  EXPECT_EQ(*n.PruneFinished(), 0u);
  clock_.Advance(2s);
  EXPECT_EQ(*n.PruneFinished(), 1u);
  auto d = store_->GetDelivery(id);
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->has_value());
  EXPECT_EQ(*n.PruneFinished(), 0u);
}

// webhooks.finished_retention_hours reaches the notifier, and a retention that does not outlast
// the retry window plus the replay tolerance is refused.
TEST(NotifierOptionsTest, FinishedRetentionComesFromConfigAndMustOutlastTheRetryWindow) {
  auto defaults = LoadConfig(std::nullopt, {}, false);
  ASSERT_TRUE(defaults.ok()) << defaults.status().ToString();
  EXPECT_EQ(NotifierOptions::FromConfig(*defaults).finished_retention, std::chrono::hours(72));
  auto set = LoadConfig(std::nullopt, {{"webhooks.finished_retention_hours", "100"}}, false);
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(NotifierOptions::FromConfig(*set).finished_retention, std::chrono::hours(100));
  EXPECT_FALSE(LoadConfig(std::nullopt, {{"webhooks.finished_retention_hours", "24"}}, false).ok())
      << "24 h does not outlast the 24 h retry window plus the replay tolerance";
  EXPECT_FALSE(
      LoadConfig(std::nullopt,
                 {{"webhooks.finished_retention_hours", "72"}, {"webhooks.max_age_seconds", "259200"}}, false)
          .ok());
}

TEST(IpNetworkTest, ParsesAndMatchesIncludingMappedAddresses) {
  auto n = ingest::IpNetwork::Parse("127.0.0.1/32");
  ASSERT_TRUE(n);
  EXPECT_TRUE(n->Contains(*ingest::IpAddress::Parse("127.0.0.1")));
  EXPECT_TRUE(n->Contains(*ingest::IpAddress::Parse("::ffff:127.0.0.1")));
  EXPECT_FALSE(n->Contains(*ingest::IpAddress::Parse("127.0.0.2")));
  auto ten = ingest::IpNetwork::Parse("10.0.0.0/8");
  EXPECT_TRUE(ten->Contains(*ingest::IpAddress::Parse("10.255.1.2")));
  EXPECT_FALSE(ten->Contains(*ingest::IpAddress::Parse("11.0.0.1")));
  auto v6 = ingest::IpNetwork::Parse("fd00::/8");
  EXPECT_TRUE(v6->Contains(*ingest::IpAddress::Parse("fd12::1")));
  EXPECT_FALSE(v6->Contains(*ingest::IpAddress::Parse("fe80::1")));
  EXPECT_FALSE(ingest::IpNetwork::Parse("10.0.0.0/33"));
  EXPECT_FALSE(ingest::IpNetwork::Parse("nonsense"));
}

}  // namespace
}  // namespace faxflow::notify
