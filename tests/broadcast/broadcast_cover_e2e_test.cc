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
