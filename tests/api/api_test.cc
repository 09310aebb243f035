// The REST API v1 on the real embedded pipeline: every submission field and error path, keys and
// tenants, idempotency, listing with filters and cursors, cancel, events, report, previews,
// limits. docs/api.md is the specification these tests hold the gateway to.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "pages/pages.h"
#include "schemas/control.pb.h"
#include "tests/api/api_fixture.h"
#include "topics/catalogue.h"

namespace faxflow {
namespace {

using nlohmann::json;
using testing::ApiAnswer;
using testing::ApiClient;
using testing::Base64;
using testing::EmbeddedApi;

constexpr const char* kAnswer = "+15550100000";  // the sim far end answers and receives

std::string SamplePdf() { return testing::ReadFileOrDie(testing::DataFile("sample.pdf")); }

json PdfDoc() { return json{{"content_base64", Base64(SamplePdf())}, {"filename", "sample.pdf"}}; }
json TextDoc(const std::string& text = "hello fax\n") {
  return json{{"content_base64", Base64(text)}, {"filename", "note.txt"}};
}

int64_t NowMs() { return SystemClock::Instance().NowMillis(); }

json AwaitDone(const ApiClient& c, const std::string& id,
               std::chrono::seconds timeout = std::chrono::seconds(120)) {
  json last;
  testing::Await(
      [&] {
        auto a = c.Get("/v1/faxes/" + id);
        if (a.status != 200) return false;
        last = a.json();
        return last.value("done", false);
      },
      timeout, std::chrono::milliseconds(100));
  return last;
}

class ApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    api_ = new EmbeddedApi({{"gateway.max_upload_bytes", "2000000"},
                            {"gateway.max_recipients", "5"},
                            {"gateway.max_documents", "3"},
                            {"gateway.max_pages", "6"}});
  }
  static void TearDownTestSuite() {
    delete api_;
    api_ = nullptr;
  }
  static EmbeddedApi* api_;
};
EmbeddedApi* ApiTest::api_ = nullptr;

TEST_F(ApiTest, KeysAuthenticateTenantsAndRevocationIsImmediate) {
  auto anon = api_->Anonymous();
  auto r = anon.Get("/v1/faxes");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.error_code(), "unauthenticated");
  EXPECT_NE(r.header("WWW-Authenticate").find("Bearer"), std::string::npos);
  EXPECT_EQ(anon.WithKey("ffk_000000000000_" + std::string(40, '0')).Get("/v1/faxes").status, 401);
  EXPECT_EQ(anon.WithKey("not-a-key").Get("/v1/faxes").status, 401);

  // The admin API needs the admin token; tenant keys are not admin tokens.
  auto acme = api_->Tenant("acme-auth");
  EXPECT_EQ(acme.Get("/v1/admin/keys").status, 401);
  EXPECT_EQ(anon.PostJson("/v1/admin/keys", json{{"tenant", "x"}}).status, 401);
  EXPECT_EQ(api_->Admin().PostJson("/v1/admin/keys", json{{"tenant", "Bad Tenant"}}).status, 400);
  EXPECT_EQ(acme.Get("/v1/faxes").status, 200);

  auto created = api_->Admin().PostJson("/v1/admin/keys", json{{"tenant", "acme-auth"}, {"name", "second"}});
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string key = created.json()["key"];
  const std::string key_id = created.json()["key_id"];
  auto listed = api_->Admin().Get("/v1/admin/keys?tenant=acme-auth").json()["keys"];
  ASSERT_EQ(listed.size(), 2u);
  for (const auto& k : listed) EXPECT_FALSE(k.contains("key")) << "the key text is shown once only";
  EXPECT_EQ(anon.WithKey(key).Get("/v1/faxes").status, 200);
  EXPECT_EQ(api_->Admin().Delete("/v1/admin/keys/" + key_id).status, 204);
  auto revoked = anon.WithKey(key).Get("/v1/faxes");
  EXPECT_EQ(revoked.status, 401);
  EXPECT_EQ(revoked.json()["error"]["message"], "API key revoked");
  EXPECT_EQ(acme.Get("/v1/faxes").status, 200) << "other keys of the tenant still work";
  EXPECT_EQ(api_->Admin().Delete("/v1/admin/keys/0123456789ab").status, 404);
}

TEST_F(ApiTest, JsonSubmissionWithEveryFieldIsDeliveredReportedAndPreviewed) {
  auto c = api_->Tenant("acme-fields");
  json body = {
      {"to", json::array({kAnswer, "(555) 010-0012"})},  // national number read in gateway.default_region
      {"documents", json::array({PdfDoc()})},
      {"header_text", "ACME Corp"},
      {"tsi", "+1 555 0100"},
      {"caller_id", "+15550109999"},
      {"resolution", "normal"},
      {"paper", "letter"},
      {"priority", 7},
      {"send_at", NowMs()},
      {"expires_at", "2099-01-01T00:00:00Z"},
      {"retry", {{"busy_seconds", 60}, {"max_dials", 2}}},
      {"tags", json::array({"invoice", "batch:42"})},
      {"callback_url", "https://hooks.example.com/fax"},
      {"cover", {{"template", "basic"}, {"fields", {{"to_name", "Bob"}, {"subject", "Invoice 42"}}}}}};
  auto a = c.PostJson("/v1/faxes", body);
  ASSERT_EQ(a.status, 202) << a.body;
  const std::string id = a.json()["id"];
  EXPECT_EQ(a.header("Location"), "/v1/faxes/" + id);
  ASSERT_EQ(a.json()["recipients"].size(), 2u);
  EXPECT_EQ(a.json()["recipients"][0]["to"], kAnswer);
  EXPECT_EQ(a.json()["recipients"][1]["to"], "+15550100012");
  EXPECT_NE(a.json()["recipients"][0]["id"], a.json()["recipients"][1]["id"]);

  json st = AwaitDone(c, id);
  ASSERT_TRUE(st.value("done", false)) << st.dump();
  EXPECT_EQ(st["pages"], 5) << "cover page + 4 pages";
  EXPECT_EQ(st["tags"], json::array({"invoice", "batch:42"}));
  for (const auto& r : st["recipients"]) {
    EXPECT_EQ(r["state"], "delivered") << st.dump();
    EXPECT_EQ(r["pages_sent"], 5);
    EXPECT_GE(r["attempts"].get<int>(), 1);
    EXPECT_EQ(r["reason"], "");
  }

  auto events = c.Get("/v1/faxes/" + id + "/events");
  ASSERT_EQ(events.status, 200);
  std::set<std::string> types;
  for (const auto& e : events.json()["events"]) types.insert(e["type"]);
  for (const char* t : {"queued", "rendered", "attempt_started", "page_confirmed", "result"})
    EXPECT_TRUE(types.count(t)) << t << " in " << events.body;

  auto report = c.Get("/v1/faxes/" + id + "/report");
  ASSERT_EQ(report.status, 200);
  for (const auto& r : report.json()["recipients"]) {
    ASSERT_FALSE(r["attempt_log"].empty()) << report.body;
    EXPECT_EQ(r["attempt_log"].back()["outcome"], "delivered");
    EXPECT_EQ(r["attempt_log"].back()["pages_confirmed"].size(), 5u);
  }

  auto png = c.Get("/v1/faxes/" + id + "/pages/1");
  ASSERT_EQ(png.status, 200);
  EXPECT_EQ(png.header("Content-Type"), "image/png");
  EXPECT_EQ(png.body.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  auto tiff = c.Get("/v1/faxes/" + id + "/pages/2?format=tiff");
  ASSERT_EQ(tiff.status, 200);
  auto fmt = pages::ValidateFaxPage(tiff.body);
  ASSERT_TRUE(fmt.ok()) << fmt.status().ToString();
  EXPECT_NEAR(fmt->y_dpi, 98, 5) << "resolution normal";
  EXPECT_EQ(c.Get("/v1/faxes/" + id + "/pages/6").status, 404);
  EXPECT_EQ(c.Get("/v1/faxes/fax_doesnotexist").status, 404);
}

TEST_F(ApiTest, MultipartSubmissionsWithOptionsBlobIdsAndGuardedContentUrls) {
  auto c = api_->Tenant("acme-multipart");
  httplib::MultipartFormDataItems items = {
      {"file", "hello multipart\n", "note.txt", "text/plain"},
      {"to", std::string(kAnswer) + ", +15550100013", "", ""},
      {"options", json{{"resolution", "fine"}, {"header_text", "Multi"}, {"tags", {"mp"}}}.dump(), "", ""}};
  auto a = c.PostForm("/v1/faxes", items);
  ASSERT_EQ(a.status, 202) << a.body;
  EXPECT_EQ(a.json()["recipients"].size(), 2u);

  // A document already in the blob store, by id.
  auto blob = api_->pipeline().blobs().Put("blob document\n");
  ASSERT_TRUE(blob.ok());
  auto b = c.PostJson("/v1/faxes", json{{"to", kAnswer}, {"documents", {{{"blob_id", *blob}}}}});
  EXPECT_EQ(b.status, 202) << b.body;
  auto unknown =
      c.PostJson("/v1/faxes", json{{"to", kAnswer}, {"documents", {{{"blob_id", std::string(64, 'a')}}}}});
  EXPECT_EQ(unknown.status, 400);
  EXPECT_EQ(unknown.error_code(), "unknown_blob");

  // content_url goes through the SSRF guard: loopback, private, metadata and file:// are refused.
  for (const char* url :
       {"http://127.0.0.1:1/doc.pdf", "http://10.0.0.1/doc.pdf", "http://169.254.169.254/latest",
        "http://[::ffff:127.0.0.1]/x", "http://2130706433/x", "file:///etc/passwd"}) {
    auto r = c.PostJson("/v1/faxes", json{{"to", kAnswer}, {"documents", {{{"content_url", url}}}}});
    EXPECT_EQ(r.status, 422) << url << ": " << r.body;
    EXPECT_EQ(r.error_code(), "content_url_refused") << url;
    EXPECT_EQ(r.json()["error"]["field"], "documents[0].content_url");
  }
  httplib::MultipartFormDataItems by_url = {{"content_url", "http://127.0.0.1:1/x.pdf", "", ""},
                                            {"to", kAnswer, "", ""}};
  EXPECT_EQ(c.PostForm("/v1/faxes", by_url).status, 422);
}

struct ErrorCase {
  std::string name;
  json body;
  int status;
  std::string code;
  std::string field;
};

TEST_F(ApiTest, EveryValidationErrorIsTypedWithItsField) {
  auto c = api_->Tenant("acme-errors");
  const json doc = TextDoc();
  auto with = [&](json extra) {
    json b = {{"to", kAnswer}, {"documents", {doc}}};
    for (auto it = extra.begin(); it != extra.end(); ++it) b[it.key()] = *it;
    return b;
  };
  const std::vector<ErrorCase> cases = {
      {"no recipient", json{{"documents", {doc}}}, 400, "missing_recipient", "to"},
      {"no document", json{{"to", kAnswer}}, 400, "missing_document", "file"},
      {"bad number", with({{"to", "call me"}}), 400, "invalid_number", "to[0]"},
      {"second number bad", with({{"to", {kAnswer, "+1 555"}}}), 400, "invalid_number", "to[1]"},
      {"header too long", with({{"header_text", std::string(51, 'x')}}), 400, "invalid_option",
       "header_text"},
      {"header not ascii", with({{"header_text", "caf\xc3\xa9"}}), 400, "invalid_option", "header_text"},
      {"tsi too long", with({{"tsi", std::string(21, '1')}}), 400, "invalid_option", "tsi"},
      {"priority", with({{"priority", 10}}), 400, "invalid_option", "priority"},
      {"resolution", with({{"resolution", "ultra"}}), 400, "invalid_option", "resolution"},
      {"paper", with({{"paper", "a3"}}), 400, "invalid_option", "paper"},
      {"caller id", with({{"caller_id", "nope"}}), 400, "invalid_option", "caller_id"},
      {"tag chars", with({{"tags", {"a/b"}}}), 400, "invalid_option", "tags"},
      {"too many tags", with({{"tags", json(std::vector<std::string>(21, "t"))}}), 400, "invalid_option",
       "tags"},
      {"send_at format", with({{"send_at", "tomorrow"}}), 400, "invalid_option", "send_at"},
      {"send_at far", with({{"send_at", "2099-01-01T00:00:00Z"}}), 400, "invalid_option", "send_at"},
      {"expired", with({{"expires_at", "2001-01-01T00:00:00Z"}}), 400, "invalid_option", "expires_at"},
      {"expires before send", with({{"send_at", NowMs() + 3600000}, {"expires_at", NowMs() + 60000}}), 400,
       "invalid_option", "expires_at"},
      {"retry range", with({{"retry", {{"busy_seconds", -1}}}}), 400, "invalid_option", "retry.busy_seconds"},
      {"retry unknown", with({{"retry", {{"forever", 1}}}}), 400, "unknown_field", "retry.forever"},
      {"callback scheme", with({{"callback_url", "ftp://x/y"}}), 400, "invalid_option", "callback_url"},
      {"cover template", with({{"cover", {{"template", "fancy"}}}}), 400, "invalid_option", "cover"},
      {"cover field", with({{"cover", {{"fields", {{"shoe_size", "9"}}}}}}), 400, "invalid_option", "cover"},
      {"unknown field", with({{"colour", "blue"}}), 400, "unknown_field", "colour"},
      {"wrong type", with({{"priority", "high"}}), 400, "invalid_option", ""},
      {"document kinds", with({{"documents", {{{"blob_id", "x"}, {"content_url", "http://a/b"}}}}}), 400,
       "invalid_document", "documents[0]"},
      {"bad base64", with({{"documents", {{{"content_base64", "!!!"}}}}}), 400, "invalid_document",
       "documents[0].content_base64"},
      {"empty document", with({{"documents", {{{"content_base64", ""}}}}}), 400, "empty_document", "file[0]"},
      {"unsupported document",
       with({{"documents",
              {{{"content_base64", Base64(std::string("\x7f"
                                                      "ELF\x01\x02\x03",
                                                      7))}}}}}),
       415, "unsupported_document", "file[0]"},
      {"bad blob id", with({{"documents", {{{"blob_id", "xyz"}}}}}), 400, "invalid_blob_id", "file[0]"},
      {"too many recipients", with({{"to", {kAnswer, kAnswer, kAnswer, kAnswer, kAnswer, kAnswer}}}), 422,
       "too_many_recipients", "to"},
      {"too many documents", with({{"documents", {doc, doc, doc, doc}}}), 422, "too_many_documents", "file"},
      {"too many pages", with({{"documents", {PdfDoc(), PdfDoc()}}}), 422, "too_many_pages", "file"},
  };
  for (const auto& tc : cases) {
    auto a = c.PostJson("/v1/faxes", tc.body);
    EXPECT_EQ(a.status, tc.status) << tc.name << ": " << a.body;
    EXPECT_EQ(a.error_code(), tc.code) << tc.name << ": " << a.body;
    if (!tc.field.empty()) {
      EXPECT_EQ(a.json()["error"].value("field", ""), tc.field) << tc.name;
    }
    EXPECT_FALSE(a.json()["error"].value("message", "").empty()) << tc.name;
  }
  // Transport-level errors.
  EXPECT_EQ(c.PostRaw("/v1/faxes", "to=x", "application/x-www-form-urlencoded").error_code(),
            "unsupported_media_type");
  EXPECT_EQ(c.PostJson("/v1/faxes", std::string("{not json")).error_code(), "invalid_json");
  EXPECT_EQ(c.PostJson("/v1/faxes", std::string("[1,2]")).status, 400);
  // A document above gateway.max_upload_bytes (2 MB here): 413 for the document, and for a
  // request body above the HTTP limit (max_upload_bytes + 1 MiB).
  auto big = c.PostForm(
      "/v1/faxes", {{"file", std::string(2'100'000, 'a'), "big.txt", "text/plain"}, {"to", kAnswer, "", ""}});
  EXPECT_EQ(big.status, 413);
  EXPECT_EQ(big.error_code(), "document_too_large");
  auto huge = c.PostForm("/v1/faxes", {{"file", std::string(3'200'000, 'a'), "huge.txt", "text/plain"},
                                       {"to", kAnswer, "", ""}});
  EXPECT_EQ(huge.status, 413);
  EXPECT_EQ(huge.error_code(), "request_too_large");
  // Nothing above created a fax.
  EXPECT_TRUE(c.Get("/v1/faxes").json()["faxes"].empty());
}

TEST_F(ApiTest, IdempotencyKeyReplaysRefusesOtherBodiesAndCreatesOneFaxUnderConcurrency) {
  auto c = api_->Tenant("acme-idem");
  const json body = {{"to", kAnswer}, {"documents", {TextDoc("idempotent\n")}}, {"tags", {"idem"}}};
  auto first = c.PostJson("/v1/faxes", body, {{"Idempotency-Key", "order-1"}});
  ASSERT_EQ(first.status, 202) << first.body;
  auto again = c.PostJson("/v1/faxes", body, {{"Idempotency-Key", "order-1"}});
  EXPECT_EQ(again.status, 202);
  EXPECT_EQ(again.body, first.body);
  EXPECT_EQ(again.header("Idempotent-Replayed"), "true");
  // The same request as multipart is the same request.
  auto mp = c.PostForm("/v1/faxes",
                       {{"file", "idempotent\n", "note.txt", "text/plain"},
                        {"to", kAnswer, "", ""},
                        {"options", json{{"tags", {"idem"}}}.dump(), "", ""}},
                       {{"Idempotency-Key", "order-1"}});
  EXPECT_EQ(mp.status, 202) << mp.body;
  EXPECT_EQ(mp.json()["id"], first.json()["id"]);
  json other = body;
  other["tags"] = {"changed"};
  auto mismatch = c.PostJson("/v1/faxes", other, {{"Idempotency-Key", "order-1"}});
  EXPECT_EQ(mismatch.status, 422);
  EXPECT_EQ(mismatch.error_code(), "idempotency_key_reused");
  // Keys are per tenant: another tenant's same key is a new request.
  auto other_tenant =
      api_->Tenant("acme-idem-2").PostJson("/v1/faxes", body, {{"Idempotency-Key", "order-1"}});
  EXPECT_EQ(other_tenant.status, 202);
  EXPECT_NE(other_tenant.json()["id"], first.json()["id"]);
  // A refused request is not remembered: fixing it under the same key works.
  json bad = body;
  bad["to"] = "nope";
  EXPECT_EQ(c.PostJson("/v1/faxes", bad, {{"Idempotency-Key", "order-2"}}).status, 400);
  EXPECT_EQ(c.PostJson("/v1/faxes", body, {{"Idempotency-Key", "order-2"}}).status, 202);
  EXPECT_EQ(c.PostJson("/v1/faxes", body, {{"Idempotency-Key", std::string(256, 'k')}}).error_code(),
            "invalid_idempotency_key");

  // 100 concurrent POSTs with one key: exactly one fax.
  const json burst = {{"to", kAnswer}, {"documents", {TextDoc("burst\n")}}, {"tags", {"burst"}}};
  std::vector<ApiAnswer> answers(100);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < answers.size(); ++i)
    threads.emplace_back([&, i] {
      // A client that loses the connection retries with its key, as clients should.
      for (int attempt = 0; attempt < 5 && answers[i].status == 0; ++attempt)
        answers[i] = c.PostJson("/v1/faxes", burst, {{"Idempotency-Key", "burst-1"}});
    });
  for (auto& t : threads) t.join();
  std::set<std::string> ids;
  int accepted = 0, conflicts = 0;
  for (const auto& a : answers) {
    if (a.status == 202) {
      ++accepted;
      ids.insert(a.json()["id"].get<std::string>());
    } else {
      ASSERT_EQ(a.status, 409) << a.body;
      EXPECT_EQ(a.error_code(), "idempotency_request_in_flight");
      EXPECT_FALSE(a.header("Retry-After").empty());
      ++conflicts;
    }
  }
  EXPECT_GE(accepted, 1);
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(accepted + conflicts, 100);
  auto listed = c.Get("/v1/faxes?tag=burst").json()["faxes"];
  EXPECT_EQ(listed.size(), 1u) << listed.dump();
  // After the race, the key answers the one fax.
  EXPECT_EQ(c.PostJson("/v1/faxes", burst, {{"Idempotency-Key", "burst-1"}}).json()["id"], *ids.begin());
}

TEST_F(ApiTest, ListingFiltersByStateTagAndTimeWithStableCursorPages) {
  auto c = api_->Tenant("acme-list");
  std::vector<std::string> ids;
  const int64_t before = NowMs();
  for (int i = 0; i < 7; ++i) {
    json body = {{"to", i == 6 ? "+15550100013" : kAnswer},
                 {"documents", {TextDoc("list " + std::to_string(i) + "\n")}},
                 {"tags", {i % 2 == 0 ? "even" : "odd"}}};
    if (i == 5) body["send_at"] = NowMs() + 3'600'000;  // stays queued
    auto a = c.PostJson("/v1/faxes", body);
    ASSERT_EQ(a.status, 202) << a.body;
    ids.push_back(a.json()["id"]);
  }
  const int64_t after = NowMs() + 1;
  // Cursor pages, newest first, no duplicates, nothing missing.
  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto a = c.Get("/v1/faxes?limit=3" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(a.status, 200) << a.body;
    for (const auto& f : a.json()["faxes"]) seen.push_back(f["id"]);
    cursor = a.json().value("next_cursor", "");
    ++pages;
  } while (!cursor.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 7u);
  EXPECT_EQ(std::vector<std::string>(seen.rbegin(), seen.rend()), ids);

  auto even = c.Get("/v1/faxes?tag=even").json()["faxes"];
  EXPECT_EQ(even.size(), 4u);
  for (const auto& f : even) EXPECT_EQ(f["tags"][0], "even");
  EXPECT_EQ(c.Get("/v1/faxes?tag=odd&limit=2").json()["faxes"].size(), 2u);
  EXPECT_EQ(c.Get("/v1/faxes?since=" + std::to_string(before) + "&until=" + std::to_string(after))
                .json()["faxes"]
                .size(),
            7u);
  EXPECT_EQ(c.Get("/v1/faxes?until=" + std::to_string(before)).json()["faxes"].size(), 0u);
  EXPECT_EQ(c.Get("/v1/faxes?since=2099-01-01T00:00:00Z").json()["faxes"].size(), 0u);

  // State filter: every fax is delivered but #5 (queued until its send_at).
  ASSERT_TRUE(testing::Await([&] { return c.Get("/v1/faxes?state=delivered").json()["faxes"].size() == 6u; },
                             std::chrono::seconds(120), std::chrono::milliseconds(200)))
      << c.Get("/v1/faxes").body;
  auto queued = c.Get("/v1/faxes?state=queued,in_progress").json()["faxes"];
  ASSERT_EQ(queued.size(), 1u);
  EXPECT_EQ(queued[0]["id"], ids[5]);
  for (const char* bad : {"limit=abc", "state=happy", "cursor=garbage", "since=yesterday", "tag=a/b"})
    EXPECT_EQ(c.Get(std::string("/v1/faxes?") + bad).status, 400) << bad;
}

TEST_F(ApiTest, CancelStopsRecipientsNotYetDialledAndSendsAControlCommand) {
  auto c = api_->Tenant("acme-cancel");
  json body = {{"to", {kAnswer, "+15550100014", "+15550100015"}},
               {"documents", {TextDoc("cancel me\n")}},
               {"send_at", NowMs() + 3'600'000}};
  auto a = c.PostJson("/v1/faxes", body);
  ASSERT_EQ(a.status, 202) << a.body;
  const std::string id = a.json()["id"];
  const std::string first = a.json()["recipients"][0]["id"];
  // One recipient first, then the rest.
  auto one = c.PostJson("/v1/faxes/" + id + "/cancel", json{{"recipients", {first}}});
  ASSERT_EQ(one.status, 202) << one.body;
  ASSERT_EQ(one.json()["recipients"].size(), 1u);
  EXPECT_EQ(one.json()["recipients"][0]["cancel"], "cancelled");
  auto st = c.Get("/v1/faxes/" + id).json();
  EXPECT_EQ(st["recipients"][0]["state"], "cancelled");
  EXPECT_NE(st["recipients"][1]["state"], "cancelled");
  EXPECT_EQ(c.PostJson("/v1/faxes/" + id + "/cancel", json{{"recipients", {"rcp_nope"}}}).status, 404);
  EXPECT_EQ(c.PostJson("/v1/faxes/" + id + "/cancel", json{{"everything", true}}).status, 400);
  auto all = c.PostRaw("/v1/faxes/" + id + "/cancel", "", "application/json");
  ASSERT_EQ(all.status, 202) << all.body;
  EXPECT_EQ(all.json()["state"], "cancelled");
  EXPECT_EQ(all.json()["recipients"][0]["cancel"], "already_final");
  // Final: the modem workers drop the jobs; the state does not move.
  st = AwaitDone(c, id, std::chrono::seconds(10));
  EXPECT_EQ(st["state"], "cancelled") << st.dump();
  for (const auto& r : st["recipients"]) EXPECT_EQ(r["state"], "cancelled");
  bool cancelled_event = false;
  const auto cancel_events = c.Get("/v1/faxes/" + id + "/events");
  for (const auto& e : cancel_events.json()["events"])
    cancelled_event |= e["type"] == "result" && e["state"] == "cancelled";
  EXPECT_TRUE(cancelled_event);

  // The commands are on fax.control for the modem workers.
  auto& bus = api_->pipeline().bus();
  auto consumer = *bus.NewConsumer({"test-control-reader", "t", true});
  ASSERT_TRUE(consumer->Assign(*bus::AllPartitions(bus, std::string(bus::topic::kControl))).ok());
  int commands = 0;
  testing::Await(
      [&] {
        auto polled = consumer->Poll(std::chrono::milliseconds(200), 100);
        if (!polled.ok()) return false;
        const std::vector<bus::Record> records = std::move(*polled);
        for (const auto& r : records) {
          v1::ControlCommand cmd;
          if (cmd.ParseFromString(r.value) && cmd.fax_id() == id && cmd.kind() == v1::CONTROL_CANCEL)
            ++commands;
        }
        return commands >= 2;
      },
      std::chrono::seconds(10));
  EXPECT_EQ(commands, 2);
}

TEST_F(ApiTest, ATenantsKeyNeverReachesAnotherTenantsFaxes) {
  auto a = api_->Tenant("tenant-a");
  auto b = api_->Tenant("tenant-b");
  // Tenant B: real faxes through the API, plus accepted submissions recorded in the status store
  // (the same record the status worker writes), 1,000 ids in all.
  std::vector<std::string> b_ids;
  for (int i = 0; i < 10; ++i) {
    auto r = b.PostJson("/v1/faxes",
                        json{{"to", kAnswer}, {"documents", {TextDoc("b " + std::to_string(i) + "\n")}}});
    ASSERT_EQ(r.status, 202) << r.body;
    b_ids.push_back(r.json()["id"]);
  }
  StatusStore* store = api_->pipeline().status_store();
  const int64_t now = NowMs();
  for (int i = 0; b_ids.size() < 1000; ++i) {
    v1::Submission s;
    s.set_fax_id("fax_b" + std::to_string(100000 + i));
    s.set_tenant("tenant-b");
    s.set_submitted_at_ms(now + i);
    auto* r = s.add_recipients();
    r->set_recipient_id("rcp_b" + std::to_string(i));
    r->set_number(kAnswer);
    ASSERT_TRUE(store->RecordSubmission(s).ok());
    b_ids.push_back(s.fax_id());
  }
  const std::string unknown_body = a.Get("/v1/faxes/fax_unknown00000000").body;
  int leaks = 0;
  for (const auto& id : b_ids) {
    for (const std::string& path : {"/v1/faxes/" + id, "/v1/faxes/" + id + "/pages/1",
                                    "/v1/faxes/" + id + "/events", "/v1/faxes/" + id + "/report"}) {
      auto r = a.Get(path);
      if (r.status != 404 || r.error_code() != "not_found") ++leaks;
      if (r.body.find("tenant-b") != std::string::npos || r.body.find("rcp_") != std::string::npos) ++leaks;
    }
    auto cancel = a.PostRaw("/v1/faxes/" + id + "/cancel", "", "application/json");
    if (cancel.status != 404) ++leaks;
  }
  EXPECT_EQ(leaks, 0);
  // The 404 of another tenant's fax is the 404 of an id that does not exist (same shape).
  auto other = a.Get("/v1/faxes/" + b_ids[0]).json();
  EXPECT_EQ(other["error"]["code"], json::parse(unknown_body)["error"]["code"]);
  // A's list shows none of B's faxes; B's faxes were not cancelled by A.
  const auto a_list = a.Get("/v1/faxes?limit=500");
  ASSERT_EQ(a_list.status, 200);
  for (const auto& f : a_list.json()["faxes"])
    EXPECT_EQ(std::find(b_ids.begin(), b_ids.end(), f["id"].get<std::string>()), b_ids.end());
  for (const auto& id : b_ids) {
    auto st = store->Get(id);
    ASSERT_TRUE(st.ok() && st->has_value());
    for (const auto& r : (*st)->recipients()) ASSERT_NE(r.state(), v1::STATE_CANCELLED) << id;
  }
  EXPECT_EQ(b.Get("/v1/faxes/" + b_ids[0]).status, 200);
}

// Cost (pricing.rates): per recipient from the pages the far end confirmed and the connected
// time of the transmission report, tenant override, fax total; no cost without a price.
TEST(ApiCostTest, CostPerRecipientFromTheReportWithTenantOverrideAndTotal) {
  EmbeddedApi api({{"pricing.rates", "+1555=0.07/0.5,pricey@+1555=0.2/0"}, {"pricing.currency", "EUR"}});
  auto check = [&](const std::string& tenant, double per_page, double per_minute) {
    auto c = api.Tenant(tenant);
    auto a = c.PostJson("/v1/faxes", json{{"to", kAnswer}, {"documents", json::array({TextDoc("cost\n")})}});
    ASSERT_EQ(a.status, 202) << a.body;
    const std::string id = a.json()["id"];
    json st = AwaitDone(c, id);
    ASSERT_TRUE(st.value("done", false)) << st.dump();
    const json& r = st["recipients"][0];
    ASSERT_TRUE(r.contains("cost")) << st.dump();
    const json& cost = r["cost"];
    EXPECT_EQ(cost["currency"], "EUR");
    EXPECT_EQ(cost["pages"], r["pages_sent"]);
    EXPECT_GE(r["pages_sent"].get<int>(), 1);
    EXPECT_DOUBLE_EQ(cost["per_page"].get<double>(), per_page);
    EXPECT_TRUE(cost["final"].get<bool>());
    // Connected time = the call durations of the transmission report, per started second.
    auto report = c.Get("/v1/faxes/" + id + "/report");
    ASSERT_EQ(report.status, 200);
    int64_t ms = 0;
    for (const auto& at : report.json()["recipients"][0]["attempt_log"]) ms += at.value("duration_ms", int64_t{0});
    const double seconds = static_cast<double>((ms + 999) / 1000);
    EXPECT_NEAR(cost["minutes"].get<double>(), seconds / 60, 1e-4);
    const double want = per_page * r["pages_sent"].get<int>() + per_minute * seconds / 60;
    EXPECT_NEAR(cost["amount"].get<double>(), want, 1e-4) << cost.dump();
    ASSERT_TRUE(st.contains("cost")) << "every recipient is priced: the fax shows the total";
    EXPECT_NEAR(st["cost"]["amount"].get<double>(), cost["amount"].get<double>(), 1e-9);
    EXPECT_TRUE(st["cost"]["final"].get<bool>());
  };
  check("cost-default", 0.07, 0.5);
  check("pricey", 0.2, 0);

  // A number without a price: no cost for it, and no fax total.
  auto c = api.Tenant("cost-unpriced");
  auto a = c.PostJson("/v1/faxes", json{{"to", "+442071234567"}, {"documents", json::array({TextDoc()})}});
  ASSERT_EQ(a.status, 202) << a.body;
  auto g = c.Get("/v1/faxes/" + a.json()["id"].get<std::string>());
  ASSERT_EQ(g.status, 200);
  EXPECT_FALSE(g.json()["recipients"][0].contains("cost")) << g.body;
  EXPECT_FALSE(g.json().contains("cost")) << g.body;
}

TEST(ApiLimitsTest, PerTenantRateAndConcurrencyLimitsAnswer429WithRetryAfter) {
  EmbeddedApi api({{"gateway.rate_limit_per_second", "1"},
                   {"gateway.rate_limit_burst", "3"},
                   {"gateway.max_concurrent_requests", "5"}});
  auto a = api.Tenant("limited-a");
  auto b = api.Tenant("limited-b");
  int ok = 0;
  ApiAnswer refused;
  for (int i = 0; i < 6; ++i) {
    auto r = a.Get("/v1/faxes");
    if (r.status == 200) ++ok;
    if (r.status == 429) refused = r;
  }
  EXPECT_LE(ok, 4);  // the burst (3), plus at most one token refilled meanwhile
  ASSERT_EQ(refused.status, 429);
  EXPECT_EQ(refused.error_code(), "rate_limited");
  EXPECT_GE(std::stoi(refused.header("Retry-After")), 1);
  EXPECT_EQ(b.Get("/v1/faxes").status, 200) << "another tenant is not limited by A's traffic";
  // After Retry-After, A is admitted again.
  std::this_thread::sleep_for(
      std::chrono::seconds(std::stoi(refused.header("Retry-After"))));  // the API's own hint
  EXPECT_EQ(a.Get("/v1/faxes").status, 200);
}

}  // namespace
}  // namespace faxflow
