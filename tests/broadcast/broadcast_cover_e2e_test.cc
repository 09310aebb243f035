// Broadcast cover pages end to end on `faxflow all` (embedded bus, real Ghostscript, SpanDSP sim
// line): a 2-page document to 5 recipients in chunks of 2 (3 chunk faxes) with a cover template,
// per-recipient `name`/`company` columns and shared fields. Every recipient is delivered; the
// RECEIVED page 1 (the cover) differs between recipients whose fields differ and is identical
// for two recipients with identical fields; pages 2-3 are pixel-identical for everyone and equal
// the document rendered once; imaging rendered the document once and each distinct cover once.
// Also: a recipient whose merged cover is invalid is refused at the gateway (422, nothing
// written), and the CLI's --cover / --cover-field options.
// broadcast_cover_kafka_test compiles this file with FAXFLOW_BROADCAST_TEST_KAFKA: the first test
// then runs on a private single-node Kafka broker (tests/broadcast/broadcast_e2e_util.h).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "pages/pages.h"
#include "tests/api/api_client.h"
#include "tests/broadcast/broadcast_e2e_util.h"
#include "tests/e2e/e2e_util.h"

namespace faxflow::testing {
namespace {

using namespace std::chrono_literals;

std::string Number(int i) { return PhoneNumber(410, i); }

// Pages the far end received for a job, in order over all calls.
std::vector<pages::Bitmap> Received(FaxflowAll& app, const std::string& job_id) {
  std::vector<pages::Bitmap> out;
  for (const auto& call : app.Calls()) {
    if (call.value("job_id", "") != job_id || call.value("received_path", "").empty()) continue;
    auto decoded = pages::DecodeFile(call.at("received_path").get<std::string>());
    EXPECT_TRUE(decoded.ok()) << decoded.status().ToString();
    if (decoded.ok()) out.insert(out.end(), decoded->begin(), decoded->end());
  }
  return out;
}

bool Same(const pages::Bitmap& a, const pages::Bitmap& b) { return pages::ComparePages({a}, {b}).ok(); }

TEST(BroadcastCoverE2E, OwnCoverPerRecipientSharedPagesRenderedOnce) {
  TempDir dir("faxflow-broadcast-cover");
  // Chunks of 2 recipients (broadcast chunk size = gateway.max_recipients, at most 100).
  FaxflowAll app(dir.path(), OnTestBus({"modem.channels=3", "gateway.max_recipients=2"}));
  const std::string doc = WriteNumberedPostScript(dir.path() + "/two.ps", 2);
  // Recipients 1 and 3 have identical cover fields (the account column is not a cover field).
  const std::vector<std::pair<std::string, std::string>> people = {{"Alice Smith", "Acme"},
                                                                   {"Bob Jones", "Acme"},
                                                                   {"Alice Smith", "Acme"},
                                                                   {"Carol White", ""},
                                                                   {"Dave Brown", "Initech"}};
  std::string csv = "to,name,company,account\n";
  for (size_t i = 0; i < people.size(); ++i)
    csv += Number(static_cast<int>(i)) + "," + people[i].first + "," + people[i].second + ",A-" +
           std::to_string(i + 1) + "\n";
  auto r = PostBroadcast(
      app.port(), csv, ReadFileOrDie(doc), "two.ps",
      R"({"max_dials":2,"cover":{"template":"confidential","fields":{"from_name":"Acme Billing","subject":"Your invoice","message":"Please find your invoice attached."}}})");
  ASSERT_EQ(r.status, 202) << r.body;
  const std::string id = nlohmann::json::parse(r.body).at("id");

  nlohmann::json p;
  ASSERT_TRUE(Await([&] { return GetBroadcast(app.port(), id, p) && p.at("state") == "done"; }, 240s, 250ms))
      << p.dump();
  EXPECT_EQ(p.at("counts").value("delivered", 0), 5) << p.dump();
  ASSERT_TRUE(p.contains("queued_ms")) << p.dump();
  EXPECT_GE(p.at("queued_ms").get<int64_t>(), p.at("created_ms").get<int64_t>());

  auto res = HttpGet(app.port(), "/v1/broadcasts/" + id + "/results.csv");
  ASSERT_EQ(res.status, 200);
  const auto rows = CsvRecords(res.body);
  ASSERT_EQ(rows.size(), people.size()) << res.body;
  std::set<std::string> faxes;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    EXPECT_EQ(row.at("to"), Number(static_cast<int>(i)));
    EXPECT_EQ(row.at("name"), people[i].first);
    EXPECT_EQ(row.at("account"), "A-" + std::to_string(i + 1));
    EXPECT_EQ(row.at("state"), "delivered") << res.body;
    EXPECT_EQ(row.at("pages_sent"), "3") << "cover + 2 pages: " << res.body;
    EXPECT_EQ(row.at("pages_total"), "3") << res.body;
    faxes.insert(row.at("fax_id"));
  }
  EXPECT_EQ(faxes.size(), 3u) << "5 recipients in chunks of 2";

  // What the far end received.
  std::vector<std::vector<pages::Bitmap>> got;
  for (const auto& row : rows) {
    got.push_back(Received(app, row.at("recipient_id")));
    ASSERT_EQ(got.back().size(), 3u) << row.at("recipient_id");
  }
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_GT(got[i][0].BlackPixels(), 1000u) << "cover of recipient " << i + 1 << " is blank";
    EXPECT_FALSE(Same(got[i][0], got[i][1])) << "page 1 of recipient " << i + 1 << " is not a cover";
    for (size_t j = 0; j < got.size(); ++j) {
      const bool same_fields = people[i] == people[j];
      EXPECT_EQ(Same(got[i][0], got[j][0]), same_fields)
          << "covers of recipients " << i + 1 << " and " << j + 1;
    }
    for (size_t page = 1; page < 3; ++page)
      EXPECT_TRUE(Same(got[i][page], got[0][page]))
          << "shared page " << page + 1 << " of recipient " << i + 1;
  }
  // The shared pages are the document as rendered for chunk 0 (its preview pages).
  const std::string fax0 = rows[0].at("fax_id");
  for (int n = 1; n <= 2; ++n) {
    auto page = HttpGet(app.port(), "/v1/faxes/" + fax0 + "/pages/" + std::to_string(n) + "?format=tiff");
    ASSERT_EQ(page.status, 200) << page.body;
    auto bm = pages::DecodePages(page.body);
    ASSERT_TRUE(bm.ok() && bm->size() == 1u);
    EXPECT_TRUE(Same((*bm)[0], got[0][static_cast<size_t>(n)])) << "preview page " << n;
  }
  // Each recipient's own previews (GET /v1/faxes/{id}/recipients/{rid}/pages/{n}): page 1 is the
  // cover it received, the same image for identical fields and a different one otherwise; pages
  // 2-3 are the shared previews; page 4 and unknown or foreign recipients answer 404.
  auto preview = [&](const std::string& fax, const std::string& rid, int n, const std::string& query = "") {
    return HttpGet(app.port(),
                   "/v1/faxes/" + fax + "/recipients/" + rid + "/pages/" + std::to_string(n) + query);
  };
  const auto shared1 = HttpGet(app.port(), "/v1/faxes/" + fax0 + "/pages/1");
  const auto shared2 = HttpGet(app.port(), "/v1/faxes/" + fax0 + "/pages/2");
  ASSERT_EQ(shared1.status, 200);
  ASSERT_EQ(shared2.status, 200);
  std::vector<std::string> cover_png;
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string& fax = rows[i].at("fax_id");
    const std::string& rid = rows[i].at("recipient_id");
    auto p1 = preview(fax, rid, 1);
    ASSERT_EQ(p1.status, 200) << p1.body;
    ASSERT_EQ(p1.body.substr(1, 3), "PNG") << "recipient " << i + 1;
    cover_png.push_back(p1.body);
    auto t1 = preview(fax, rid, 1, "?format=tiff");
    ASSERT_EQ(t1.status, 200) << t1.body;
    auto cover = pages::DecodePages(t1.body);
    ASSERT_TRUE(cover.ok() && cover->size() == 1u);
    EXPECT_TRUE(Same((*cover)[0], got[i][0])) << "preview page 1 of recipient " << i + 1 << " is its cover";
    auto p2 = preview(fax, rid, 2);
    auto p3 = preview(fax, rid, 3);
    ASSERT_EQ(p2.status, 200) << p2.body;
    ASSERT_EQ(p3.status, 200) << p3.body;
    EXPECT_TRUE(p2.body == shared1.body) << "recipient " << i + 1 << " page 2 = shared page 1";
    EXPECT_TRUE(p3.body == shared2.body) << "recipient " << i + 1 << " page 3 = shared page 2";
    auto p4 = preview(fax, rid, 4);
    EXPECT_EQ(p4.status, 404) << p4.body;
    EXPECT_NE(p4.body.find("\"not_found\""), std::string::npos) << p4.body;
    EXPECT_NE(p4.body.find("has 3 rendered pages"), std::string::npos) << p4.body;
    EXPECT_EQ(preview(fax, rid, 0).status, 404);
  }
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = 0; j < rows.size(); ++j)
      EXPECT_EQ(cover_png[i] == cover_png[j], people[i] == people[j])
          << "preview covers of recipients " << i + 1 << " and " << j + 1;
  auto unknown = preview(fax0, "rcp_unknown", 1);
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_NE(unknown.body.find("\"not_found\""), std::string::npos) << unknown.body;
  ASSERT_NE(rows[4].at("fax_id"), fax0);
  EXPECT_EQ(preview(fax0, rows[4].at("recipient_id"), 1).status, 404) << "a recipient of another chunk fax";
  EXPECT_EQ(preview("fax_unknown", rows[0].at("recipient_id"), 1).status, 404);
  // The fax-level preview of a chunk fax shows the shared pages only, and says so.
  auto beyond = HttpGet(app.port(), "/v1/faxes/" + fax0 + "/pages/3");
  EXPECT_EQ(beyond.status, 404) << beyond.body;
  EXPECT_NE(beyond.body.find("shared by its recipients"), std::string::npos) << beyond.body;

  // GET /v1/faxes/{id}: 3 pages per recipient (the cover counts).
  auto st = app.Status(fax0);
  EXPECT_EQ(st.value("pages", 0), 3) << st.dump();
  for (const auto& rcp : st.at("recipients")) EXPECT_EQ(rcp.value("pages_total", 0), 3) << st.dump();

  // Rendered once: one gs render of the document, one per distinct cover (4), the second
  // identical cover reused; three chunk submissions went through imaging.
  EXPECT_EQ(MetricSeries(app.port(), "faxflow_imaging_covers_total{outcome=\"rendered\"}"), 4);
  EXPECT_EQ(MetricSeries(app.port(), "faxflow_imaging_covers_total{outcome=\"reused\"}"), 1);
  EXPECT_EQ(MetricSeries(app.port(), "faxflow_imaging_covers_total{outcome=\"document_error\"}"), 0);
  EXPECT_EQ(MetricSeries(app.port(), "faxflow_imaging_document_renders_total{outcome=\"ok\"}"), 1 + 4);
  EXPECT_EQ(MetricSeries(app.port(), "faxflow_imaging_renders_total{outcome=\"ok\"}"), 3);
}

#if !defined(FAXFLOW_BROADCAST_TEST_KAFKA)  // the Kafka binary runs only the broadcast above
TEST(BroadcastCoverE2E, InvalidCoversAreRefusedBeforeAnythingIsWritten) {
  TempDir dir("faxflow-broadcast-cover-bad");
  FaxflowAll app(dir.path());
  const std::string pdf = ReadFileOrDie(DataFile("sample.pdf"));
  auto post = [&](const std::string& list, const std::string& options) {
    return PostBroadcast(app.port(), list, pdf, "a.pdf", options);
  };
  const std::string cover = R"({"cover":{"template":"basic","fields":{"from_name":"Acme"}}})";
  // A recipient's name that is not printable ASCII: 422 naming the recipient.
  auto bad_name = post("to,name\n+15550100000,Ann\n+15550100001,Bj\xc3\xb6rn\n", cover);
  EXPECT_EQ(bad_name.status, 422) << bad_name.body;
  EXPECT_NE(bad_name.body.find("invalid_cover"), std::string::npos) << bad_name.body;
  EXPECT_NE(bad_name.body.find("recipient 2"), std::string::npos) << bad_name.body;
  // A too long company, through the alias.
  auto long_company = post("to,company\n+15550100000," + std::string(600, 'x') + "\n", cover);
  EXPECT_EQ(long_company.status, 422) << long_company.body;
  EXPECT_NE(long_company.body.find("to_company"), std::string::npos) << long_company.body;
  // The shared part: unknown template, unknown field.
  auto bad_template = post("to\n+15550100000\n", R"({"cover":{"template":"fancy"}})");
  EXPECT_EQ(bad_template.status, 400) << bad_template.body;
  auto bad_field = post("to\n+15550100000\n", R"({"cover":{"fields":{"shoe_size":"9"}}})");
  EXPECT_EQ(bad_field.status, 400) << bad_field.body;
  EXPECT_NE(bad_field.body.find("shoe_size"), std::string::npos) << bad_field.body;
  // Nothing was accepted.
  EXPECT_EQ(MetricSeries(app.port(), "faxflow_broadcasts_created_total"), 0);
}

// With API keys: a recipient's preview is scoped to the tenant exactly like the fax-level one
// (another tenant gets 404 not_found for the same URLs), and the answers say which part of the
// recipient's fax a page is (X-Faxflow-Preview-Scope: cover / shared).
TEST(BroadcastCoverE2E, RecipientPreviewsAreScopedToTheTenant) {
  TempDir dir("faxflow-broadcast-cover-tenants");
  const std::string admin_token = "preview-admin-token";
  FaxflowAll app(dir.path(), {"gateway.auth=keys", "gateway.admin_token=" + admin_token,
                              "gateway.rate_limit_per_second=0", "gateway.max_concurrent_requests=0",
                              "modem.channels=2"});
  auto key_of = [&](const std::string& tenant) {
    auto a = ApiClient(app.port(), admin_token)
                 .PostJson("/v1/admin/keys", nlohmann::json{{"tenant", tenant}, {"name", "preview"}});
    EXPECT_EQ(a.status, 201) << a.body;
    return a.json().value("key", "");
  };
  const ApiClient acme(app.port(), key_of("acme"));
  const ApiClient other(app.port(), key_of("other"));
  const std::string doc = WriteNumberedPostScript(dir.path() + "/one.ps", 1);
  httplib::MultipartFormDataItems items = {
      {"recipients", "to,name\n" + Number(30) + ",Grace\n" + Number(31) + ",Heidi\n", "recipients.csv",
       "text/csv"},
      {"file", ReadFileOrDie(doc), "one.ps", "application/postscript"},
      {"options", R"({"cover":{"template":"basic","fields":{"from_name":"Acme"}}})", "", ""}};
  auto created = acme.PostForm("/v1/broadcasts", items);
  ASSERT_EQ(created.status, 202) << created.body;
  const std::string fax = created.json().value("fax_id", "");
  ASSERT_FALSE(fax.empty()) << created.body;

  // The recipient ids, once the fax is rendered (the cover pages are recorded with the render).
  std::vector<std::string> rids;
  ASSERT_TRUE(Await(
      [&] {
        auto st = acme.Get("/v1/faxes/" + fax);
        if (st.status != 200 || st.json().value("pages", 0) != 2) return false;
        rids.clear();
        for (const auto& r : st.json().at("recipients")) rids.push_back(r.value("id", ""));
        return rids.size() == 2u;
      },
      120s, 200ms));
  const std::string page1 = "/v1/faxes/" + fax + "/recipients/" + rids[0] + "/pages/1";
  auto mine = acme.Get(page1);
  ASSERT_EQ(mine.status, 200) << mine.body;
  EXPECT_EQ(mine.header("Content-Type"), "image/png");
  EXPECT_EQ(mine.header("X-Faxflow-Preview-Scope"), "cover");
  auto shared = acme.Get("/v1/faxes/" + fax + "/recipients/" + rids[0] + "/pages/2");
  ASSERT_EQ(shared.status, 200) << shared.body;
  EXPECT_EQ(shared.header("X-Faxflow-Preview-Scope"), "shared");
  auto fax_page = acme.Get("/v1/faxes/" + fax + "/pages/1");
  ASSERT_EQ(fax_page.status, 200) << fax_page.body;
  EXPECT_EQ(fax_page.header("X-Faxflow-Preview-Scope"), "shared");
  EXPECT_TRUE(fax_page.body == shared.body);
  EXPECT_FALSE(acme.Get("/v1/faxes/" + fax + "/recipients/" + rids[1] + "/pages/1").body == mine.body)
      << "Grace's and Heidi's covers differ";

  // Another tenant: 404 not_found, exactly as for an id that does not exist.
  for (const std::string& path : {page1, "/v1/faxes/" + fax + "/pages/1", "/v1/faxes/" + fax}) {
    auto theirs = other.Get(path);
    EXPECT_EQ(theirs.status, 404) << path << " " << theirs.body;
    EXPECT_EQ(theirs.error_code(), "not_found") << path;
    EXPECT_EQ(theirs.body.find(rids[0]), std::string::npos) << "nothing about the recipient leaks";
  }
  auto missing = other.Get("/v1/faxes/fax_missing/recipients/" + rids[0] + "/pages/1");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.error_code(), "not_found");
  // The owner's own errors: unknown recipient, page out of range; no key: 401.
  auto unknown = acme.Get("/v1/faxes/" + fax + "/recipients/rcp_unknown/pages/1");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.error_code(), "not_found");
  auto beyond = acme.Get("/v1/faxes/" + fax + "/recipients/" + rids[0] + "/pages/3");
  EXPECT_EQ(beyond.status, 404);
  EXPECT_EQ(beyond.error_code(), "not_found");
  EXPECT_EQ(ApiClient(app.port()).Get(page1).status, 401);
}

TEST(BroadcastCoverE2E, CliSendsCoverTemplateAndFields) {
  TempDir dir("faxflow-broadcast-cover-cli");
  FaxflowAll app(dir.path(), {"modem.channels=2"});
  const std::string list = dir.path() + "/recipients.csv";
  { std::ofstream(list) << "to,name\n" << Number(20) << ",Erin\n" << Number(21) << ",Frank\n"; }
  const std::string doc = WriteNumberedPostScript(dir.path() + "/one.ps", 1);
  std::string log;
  ASSERT_NO_FATAL_FAILURE(RunBroadcastCli(
      app.port(), list, doc,
      {"--cover", "basic", "--cover-field", "from_name=Acme Billing", "--cover-field", "subject=Hello"}, 2,
      dir.path() + "/cli.log", &log));
  EXPECT_EQ(MetricSeries(app.port(), "faxflow_imaging_covers_total{outcome=\"rendered\"}"), 2);
  // A one-page document: each recipient got 2 pages (cover + page).
  int calls = 0;
  for (const auto& call : app.Calls())
    if (!call.value("received_path", "").empty()) {
      ++calls;
      EXPECT_EQ(call.value("pages_received", 0), 2) << call.dump();
    }
  EXPECT_EQ(calls, 2);
}
#endif

}  // namespace
}  // namespace faxflow::testing
