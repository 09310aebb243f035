// The REST API's building blocks on the real embedded bus: API keys (hash only, revocation),
// idempotency records shared by two "nodes" following one topic (the multi-node race), the
// per-tenant limiter, PNG previews and cover pages.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "common/clock.h"
#include "pages/pages.h"
#include "producers/gateway/api_keys.h"
#include "producers/gateway/cover.h"
#include "producers/gateway/idempotency.h"
#include "producers/gateway/png.h"
#include "producers/gateway/rate_limit.h"
#include "storage/status_store.h"
#include "tests/support/support.h"
#include "topics/catalogue.h"
#include "topics/embedded/embedded_bus.h"

namespace faxflow {
namespace {

using testing::TempDir;

class BusFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    auto b = bus::EmbeddedBus::Open(dir_.path() + "/bus");
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    bus_ = std::move(*b);
    ASSERT_TRUE(bus_->EnsureTopics(bus::Catalogue()).ok());
  }
  TempDir dir_;
  std::unique_ptr<bus::EmbeddedBus> bus_;
};

using ApiKeyStoreTest = BusFixture;

TEST_F(ApiKeyStoreTest, StoresOnlyTheHashAndAuthenticatesUntilRevoked) {
  ApiKeyStore store(*bus_, SystemClock::Instance());
  ASSERT_TRUE(store.Start().ok());
  auto created = store.Create("acme", "ci");
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  const std::string key = created->second;
  EXPECT_EQ(key.rfind("ffk_" + created->first.key_id + "_", 0), 0u);
  auto caller = store.Authenticate(key);
  ASSERT_TRUE(caller.ok());
  EXPECT_EQ(caller->tenant, "acme");
  EXPECT_EQ(caller->key_id, created->first.key_id);

  // Nothing on the topic contains the key text: only its SHA-256.
  auto consumer = *bus_->NewConsumer({"test-keys", "t", true});
  ASSERT_TRUE(consumer->Assign(*bus::AllPartitions(*bus_, std::string(bus::topic::kApiKeys))).ok());
  auto records = *consumer->Poll(std::chrono::seconds(1), 100);
  ASSERT_FALSE(records.empty());
  for (const auto& r : records) {
    EXPECT_EQ(r.value.find(key.substr(21)), std::string::npos);
    EXPECT_NE(r.value.find(Sha256Hex(key)), std::string::npos);
  }

  // Wrong secret, malformed, other tenants' ids: refused.
  std::string wrong = key;
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  EXPECT_EQ(store.Authenticate(wrong).status().code(), Code::kUnauthenticated);
  EXPECT_EQ(store.Authenticate("ffk_nothex").status().code(), Code::kUnauthenticated);
  EXPECT_EQ(store.Authenticate("").status().code(), Code::kUnauthenticated);
  EXPECT_FALSE(store.Create("Bad Tenant!", "").ok());

  // A second node (another follower of the same topic) sees the key, then its revocation.
  ApiKeyStore other(*bus_, SystemClock::Instance());
  ASSERT_TRUE(other.Start().ok());
  EXPECT_TRUE(other.Authenticate(key).ok());
  ASSERT_TRUE(store.Revoke(created->first.key_id).ok());
  EXPECT_EQ(store.Authenticate(key).status().code(), Code::kUnauthenticated);
  EXPECT_TRUE(testing::Await([&] { return !other.Authenticate(key).ok(); }, std::chrono::seconds(5)));
  ASSERT_EQ(store.List("acme").size(), 1u);
  EXPECT_NE(store.List("acme")[0].revoked_at_ms, 0);
  EXPECT_TRUE(store.List("other").empty());
}

using IdempotencyTest = BusFixture;

TEST_F(IdempotencyTest, FirstAnswerReplayedMismatchRefusedInFlightConflicts) {
  IdempotencyStore store(*bus_, SystemClock::Instance(), {});
  ASSERT_TRUE(store.Start().ok());
  auto first = store.Begin("acme", "k1", "fp-a");
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->verdict, IdempotencyStore::Verdict::kProceed);
  // While it runs: same request 409, other request 422.
  EXPECT_EQ(store.Begin("acme", "k1", "fp-a")->verdict, IdempotencyStore::Verdict::kInFlight);
  EXPECT_EQ(store.Begin("acme", "k1", "fp-b")->verdict, IdempotencyStore::Verdict::kMismatch);
  // Another tenant's identical key is independent.
  EXPECT_EQ(store.Begin("other", "k1", "fp-a")->verdict, IdempotencyStore::Verdict::kProceed);
  ASSERT_TRUE(
      store.Complete("acme", "k1", first->claim_id, "fp-a", {202, "{\"id\":\"fax_1\"}", "/v1/faxes/fax_1"})
          .ok());
  auto again = store.Begin("acme", "k1", "fp-a");
  ASSERT_EQ(again->verdict, IdempotencyStore::Verdict::kReplay);
  EXPECT_EQ(again->answer.http_status, 202);
  EXPECT_EQ(again->answer.body, "{\"id\":\"fax_1\"}");
  EXPECT_EQ(store.Begin("acme", "k1", "fp-b")->verdict, IdempotencyStore::Verdict::kMismatch);

  // A released claim (validation error) lets the key be used again.
  auto c2 = store.Begin("acme", "k2", "fp");
  ASSERT_EQ(c2->verdict, IdempotencyStore::Verdict::kProceed);
  ASSERT_TRUE(store.Release("acme", "k2", c2->claim_id).ok());
  EXPECT_EQ(store.Begin("acme", "k2", "fp-other")->verdict, IdempotencyStore::Verdict::kProceed);

  // A restarted node rebuilds the same view from the topic.
  IdempotencyStore restarted(*bus_, SystemClock::Instance(), {});
  ASSERT_TRUE(restarted.Start().ok());
  EXPECT_EQ(restarted.Begin("acme", "k1", "fp-a")->verdict, IdempotencyStore::Verdict::kReplay);
}

TEST_F(IdempotencyTest, ExpiredLeaseOfADeadNodeCanBeTakenOver) {
  ManualClock clock;
  IdempotencyOptions o;
  o.lease = std::chrono::seconds(5);
  {
    IdempotencyStore dead(*bus_, clock, o);
    ASSERT_TRUE(dead.Start().ok());
    ASSERT_EQ(dead.Begin("acme", "k", "fp")->verdict, IdempotencyStore::Verdict::kProceed);
  }  // the node dies without an answer
  IdempotencyStore node(*bus_, clock, o);
  ASSERT_TRUE(node.Start().ok());
  EXPECT_EQ(node.Begin("acme", "k", "fp")->verdict, IdempotencyStore::Verdict::kInFlight);
  clock.Advance(std::chrono::seconds(6));
  EXPECT_EQ(node.Begin("acme", "k", "fp")->verdict, IdempotencyStore::Verdict::kProceed);
}

TEST_F(IdempotencyTest, TwoNodesRacingOnOneKeyAgreeOnExactlyOneWinner) {
  IdempotencyStore a(*bus_, SystemClock::Instance(), {});
  IdempotencyStore b(*bus_, SystemClock::Instance(), {});
  ASSERT_TRUE(a.Start().ok());
  ASSERT_TRUE(b.Start().ok());
  for (int round = 0; round < 20; ++round) {
    const std::string key = "race-" + std::to_string(round);
    std::atomic<int> winners{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        IdempotencyStore& node = t % 2 == 0 ? a : b;
        auto d = node.Begin("acme", key, "fp");
        ASSERT_TRUE(d.ok());
        if (d->verdict == IdempotencyStore::Verdict::kProceed) ++winners;
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(winners.load(), 1) << key;
  }
}

TEST(TenantLimiterTest, TokenBucketAndConcurrencyPerTenantWithRetryAfter) {
  ManualClock clock;
  TenantLimiter limiter({2, 3, 2}, clock);  // 2/s, burst 3, 2 in flight
  std::vector<std::optional<TenantLimiter::Permit>> held(5);
  EXPECT_FALSE(limiter.Admit("a", held[0]));
  EXPECT_FALSE(limiter.Admit("a", held[1]));
  auto refused = limiter.Admit("a", held[2]);  // third in flight
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->reason, "concurrency");
  held[0].reset();
  EXPECT_FALSE(limiter.Admit("a", held[2]));  // 3rd token
  held[1].reset();
  held[2].reset();
  refused = limiter.Admit("a", held[3]);  // bucket empty
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->reason, "rate");
  EXPECT_GE(refused->retry_after_seconds, 1);
  EXPECT_FALSE(limiter.Admit("b", held[4]));  // other tenants are not affected
  held[4].reset();
  clock.Advance(std::chrono::milliseconds(600));  // > 1 token
  EXPECT_FALSE(limiter.Admit("a", held[3]));
}

TEST(PngTest, EncodesABilevelPageThatDecodesBack) {
  pages::Bitmap page;
  page.width = 20;
  page.length = 3;
  page.stride = 3;
  page.bits = {0xff, 0x00, 0xf0, 0x00, 0x00, 0x00, 0x80, 0x00, 0x10};
  const std::string png = EncodePng(page);
  ASSERT_GT(png.size(), 8u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_NE(png.find("IHDR"), std::string::npos);
  EXPECT_NE(png.find("IEND"), std::string::npos);
  // Stored deflate block: the inverted scanlines follow the zlib and block headers.
  const auto idat = png.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  EXPECT_EQ(static_cast<unsigned char>(png[idat + 4 + 2 + 5 + 1]), 0x00);  // ~0xff: black pixels
  EXPECT_EQ(static_cast<unsigned char>(png[idat + 4 + 2 + 5 + 2]), 0xff);  // ~0x00: white
}

TEST(CoverPageTest, ValidatesTemplatesAndFieldsAndEscapesPostScript) {
  v1::CoverPage c;
  c.set_template_("basic");
  (*c.mutable_fields())["subject"] = "Invoice (final) \\ 42";
  (*c.mutable_fields())["message"] = "Hello,\nplease sign.";
  EXPECT_TRUE(ValidateCoverPage(c).ok());
  const std::string ps = RenderCoverPage(c, {"+15550100000"}, "2026-11-22 08:00 UTC");
  EXPECT_EQ(ps.rfind("%!PS", 0), 0u);
  EXPECT_NE(ps.find("Invoice \\(final\\) \\\\ 42"), std::string::npos);
  EXPECT_NE(ps.find("+15550100000"), std::string::npos);
  c.set_template_("fancy");
  EXPECT_FALSE(ValidateCoverPage(c).ok());
  c.set_template_("confidential");
  (*c.mutable_fields())["colour"] = "red";
  EXPECT_FALSE(ValidateCoverPage(c).ok());
}

}  // namespace
}  // namespace faxflow

namespace faxflow {
namespace {

TEST(StatusQueryTest, TimeAndTagIndexesPageNewestFirstPerTenant) {
  testing::TempDir dir;
  auto store = std::move(*OpenRocksStatusStore(dir.path() + "/status"));
  for (int i = 0; i < 7; ++i) {
    v1::Submission s;
    s.set_fax_id("fax_" + std::to_string(100 + i));
    s.set_tenant(i == 3 ? "other" : "acme");
    s.set_submitted_at_ms(1000 + i);
    s.mutable_options()->add_tags(i % 2 ? "odd" : "even");
    auto* r = s.add_recipients();
    r->set_recipient_id("rcp_" + std::to_string(i));
    r->set_number("+15550100000");
    ASSERT_TRUE(store->RecordSubmission(s).ok());
    ASSERT_TRUE(store->RecordSubmission(s).ok());  // idempotent
  }
  FaxQuery q;
  q.tenant = "acme";
  q.limit = 4;
  auto p1 = store->Query(q);
  ASSERT_TRUE(p1.ok()) << p1.status().ToString();
  ASSERT_EQ(p1->faxes.size(), 4u);
  EXPECT_EQ(p1->faxes[0].fax_id(), "fax_106");
  ASSERT_FALSE(p1->next_cursor.empty());
  q.cursor = p1->next_cursor;
  auto p2 = store->Query(q);
  ASSERT_EQ(p2->faxes.size(), 2u);
  EXPECT_EQ(p2->faxes[1].fax_id(), "fax_100");
  EXPECT_TRUE(p2->next_cursor.empty());
  FaxQuery t;
  t.tenant = "acme";
  t.tag = "odd";
  EXPECT_EQ(store->Query(t)->faxes.size(), 2u);  // 101, 105 (103 is another tenant's)
  FaxQuery range;
  range.tenant = "acme";
  range.from_ms = 1002;
  range.to_ms = 1005;
  EXPECT_EQ(store->Query(range)->faxes.size(), 2u);  // 1002, 1004
}

}  // namespace
}  // namespace faxflow
