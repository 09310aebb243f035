// The whole pipeline in one `faxflow all` process on the embedded bus: a fax submitted over
// REST is rendered by Ghostscript, queued, sent by SpanDSP over the simulated line and received
// by the simulated far end; every far-end behaviour ends in its typed state; bad input is
// rejected or ends as document_error while the service keeps serving.
#include <gtest/gtest.h>

#include <set>

#include "pages/pages.h"
#include "tests/e2e/e2e_util.h"

namespace faxflow::testing {
namespace {

constexpr char kAnswer[] = "+15550100000";
constexpr char kBusy[] = "+15550100001";
constexpr char kNoAnswer[] = "+15550100002";
constexpr char kVoice[] = "+15550100003";
constexpr char kSilence[] = "+15550100004";
constexpr char kDropAfter2[] = "+15550100005";

class PipelineE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("faxflow-e2e");
    // Tight document limits so the hostile-document cases finish quickly.
    app_ = new FaxflowAll(dir_->path(), {"imaging.cpu_seconds=3", "imaging.timeout_seconds=8", "modem.channels=2",
                                           "modem.retry.max_dials=1"});
  }
  static void TearDownTestSuite() {
    delete app_;
    delete dir_;
  }
  static const nlohmann::json& Recipient(const nlohmann::json& status, const std::string& number) {
    for (const auto& r : status.at("recipients"))
      if (r.at("to") == number) return r;
    throw std::runtime_error("no recipient " + number + " in " + status.dump());
  }
  // Pages the far end received for a job, in order over all calls.
  static std::vector<pages::Bitmap> Received(const std::string& job_id) {
    std::vector<pages::Bitmap> out;
    for (const auto& call : app_->Calls()) {
      if (call.value("job_id", "") != job_id || call.value("received_path", "").empty()) continue;
      auto decoded = pages::DecodeFile(call.at("received_path").get<std::string>());
      EXPECT_TRUE(decoded.ok()) << decoded.status().ToString();
      if (decoded.ok()) out.insert(out.end(), decoded->begin(), decoded->end());
    }
    return out;
  }
  // The rendered pages as the gateway serves them (GET /v1/faxes/{id}/pages/{n}).
  static std::vector<pages::Bitmap> Rendered(const std::string& fax_id, int count) {
    std::vector<pages::Bitmap> out;
    for (int n = 1; n <= count; ++n) {
      auto r = HttpGet(app_->port(), "/v1/faxes/" + fax_id + "/pages/" + std::to_string(n) + "?format=tiff");
      EXPECT_EQ(r.status, 200) << r.body;
      auto decoded = pages::DecodePages(r.body);
      EXPECT_TRUE(decoded.ok()) << decoded.status().ToString();
      if (decoded.ok()) out.insert(out.end(), decoded->begin(), decoded->end());
    }
    return out;
  }
  static inline TempDir* dir_ = nullptr;
  static inline FaxflowAll* app_ = nullptr;
};

TEST_F(PipelineE2E, DeliversMultiPagePdfWithPixelIdenticalPages) {
  const std::string id = app_->SubmitOk({DataFile("sample.pdf")}, {kAnswer}, R"({"tsi":"faxflow e2e"})");
  auto st = app_->AwaitDone(id);
  ASSERT_EQ(st.at("state"), "delivered") << st.dump();
  const auto& r = Recipient(st, kAnswer);
  EXPECT_EQ(r.at("state"), "delivered");
  EXPECT_EQ(r.at("pages_total"), 4);
  EXPECT_EQ(r.at("pages_sent"), 4);
  EXPECT_EQ(r.at("attempts"), 1);
  EXPECT_EQ(r.at("completion"), "T30_ERR_OK");

  const auto rendered = Rendered(id, 4);
  const auto received = Received(r.at("id"));
  ASSERT_EQ(rendered.size(), 4u);
  for (const auto& page : rendered) EXPECT_GT(page.BlackPixels(), 1000u) << "rendered page is blank";
  EXPECT_TRUE(pages::ComparePages(rendered, received).ok()) << pages::ComparePages(rendered, received).ToString();
}

TEST_F(PipelineE2E, NormalResolutionAndSeveralRecipients) {
  const std::string id =
      app_->SubmitOk({DataFile("hello.txt")}, {kAnswer, "+1 555 010 0000"}, R"({"resolution":"normal"})");
  auto st = app_->AwaitDone(id);
  // The same number twice is two recipients, two jobs, both delivered.
  ASSERT_EQ(st.at("recipients").size(), 2u);
  for (const auto& r : st.at("recipients")) {
    EXPECT_EQ(r.at("state"), "delivered") << st.dump();
    EXPECT_EQ(r.at("pages_sent"), r.at("pages_total"));
    EXPECT_EQ(r.at("to"), kAnswer);
    const int total = r.at("pages_total");
    EXPECT_EQ(Received(r.at("id")).size(), static_cast<size_t>(total));
  }
  // 204x98: half the rows of a fine A4 page.
  auto page = HttpGet(app_->port(), "/v1/faxes/" + id + "/pages/1?format=tiff");
  auto fmt = pages::ValidateFaxPage(page.body);
  ASSERT_TRUE(fmt.ok()) << fmt.status().ToString();
  EXPECT_NEAR(fmt->y_dpi, 98, 5);
}

TEST_F(PipelineE2E, EveryFarEndBehaviourEndsInItsTypedState) {
  const std::string five = WriteNumberedPostScript(dir_->path() + "/five.ps", 5);
  const std::string id = app_->SubmitOk({five}, {kBusy, kNoAnswer, kVoice, kSilence, kDropAfter2});
  auto st = app_->AwaitDone(id);
  EXPECT_EQ(st.at("pages"), 5);
  struct Expect {
    const char* number;
    const char* state;
    const char* reason;
    int pages_sent;
  };
  for (const Expect& e : {Expect{kBusy, "failed", "busy", 0}, Expect{kNoAnswer, "failed", "no_answer", 0},
                          Expect{kVoice, "failed", "not_a_fax", 0}, Expect{kSilence, "failed", "not_a_fax", 0},
                          Expect{kDropAfter2, "partial", "dropped", 2}}) {
    const auto& r = Recipient(st, e.number);
    EXPECT_EQ(r.at("state"), e.state) << e.number << " " << r.dump();
    EXPECT_EQ(r.at("reason"), e.reason) << e.number << " " << r.dump();
    EXPECT_EQ(r.at("pages_sent"), e.pages_sent) << e.number;
    EXPECT_EQ(r.at("pages_total"), 5) << e.number;
  }
  EXPECT_EQ(st.at("state"), "partial");
  // The far end of the dropped call holds exactly the 2 confirmed pages, identical to pages 1-2.
  const auto& dropped = Recipient(st, kDropAfter2);
  const auto received = Received(dropped.at("id"));
  auto rendered = Rendered(id, 2);
  ASSERT_EQ(received.size(), 2u);
  EXPECT_TRUE(pages::ComparePages(rendered, received).ok());
}

TEST_F(PipelineE2E, CorruptPdfEndsAsDocumentErrorForEveryRecipient) {
  const std::string id = app_->SubmitOk({DataFile("corrupt.pdf")}, {kAnswer, kBusy});
  auto st = app_->AwaitDone(id);
  EXPECT_EQ(st.at("state"), "failed");
  for (const auto& r : st.at("recipients")) {
    EXPECT_EQ(r.at("state"), "failed");
    EXPECT_EQ(r.at("reason"), "document_error");
    EXPECT_FALSE(r.value("detail", "").empty());
    EXPECT_EQ(r.at("attempts"), 0) << "a document error must never dial";
  }
  EXPECT_FALSE(st.value("error", "").empty());
}

TEST_F(PipelineE2E, PostScriptInfiniteLoopIsKilledAndTheWorkerKeepsServing) {
  const std::string loop = app_->SubmitOk({DataFile("loop.ps")}, {kAnswer});
  auto st = app_->AwaitDone(loop, std::chrono::minutes(2));
  const auto& r = Recipient(st, kAnswer);
  EXPECT_EQ(r.at("state"), "failed");
  EXPECT_EQ(r.at("reason"), "document_error");
  // The same worker renders and delivers the next fax.
  const std::string next = app_->SubmitOk({DataFile("sample.pdf")}, {kAnswer});
  EXPECT_EQ(app_->AwaitDone(next).at("state"), "delivered");
}

TEST_F(PipelineE2E, NonDocumentAndInvalidNumberAreRejectedAtSubmission) {
  auto before = HttpGet(app_->port(), "/v1/faxes?limit=500");
  auto bin = app_->Submit({DataFile("not-a-document.bin")}, {kAnswer});
  EXPECT_EQ(bin.status, 415) << bin.body;
  EXPECT_EQ(nlohmann::json::parse(bin.body).at("error").at("code"), "unsupported_document");

  auto bad = app_->Submit({DataFile("sample.pdf")}, {"12"});
  EXPECT_EQ(bad.status, 400) << bad.body;
  auto err = nlohmann::json::parse(bad.body).at("error");
  EXPECT_EQ(err.at("code"), "invalid_number");
  EXPECT_EQ(err.at("field"), "to[0]");

  auto letters = app_->Submit({DataFile("sample.pdf")}, {kAnswer, "call me"});
  EXPECT_EQ(letters.status, 400);
  EXPECT_EQ(nlohmann::json::parse(letters.body).at("error").at("field"), "to[1]");

  auto none = app_->Submit({DataFile("sample.pdf")}, {});
  EXPECT_EQ(none.status, 400);
  auto bad_option = app_->Submit({DataFile("sample.pdf")}, {kAnswer}, R"({"resolution":"ultra"})");
  EXPECT_EQ(bad_option.status, 400);

  // Nothing was accepted by the rejected requests.
  auto after = HttpGet(app_->port(), "/v1/faxes?limit=500");
  EXPECT_EQ(nlohmann::json::parse(before.body).at("faxes").size(), nlohmann::json::parse(after.body).at("faxes").size());
  EXPECT_EQ(HttpGet(app_->port(), "/v1/faxes/fax_doesnotexist").status, 404);
}

TEST_F(PipelineE2E, MetricsCountWhatHappened) {
  auto m = HttpGet(app_->port(), "/metrics");
  ASSERT_EQ(m.status, 200);
  for (const char* name : {"faxflow_gateway_submissions_total", "faxflow_imaging_renders_total",
                           "faxflow_modem_attempts_total", "faxflow_modem_dedup_suppressed_total",
                           "faxflow_bus_queue_depth"}) {
    EXPECT_NE(m.body.find(name), std::string::npos) << name << " missing from /metrics";
  }
}

}  // namespace
}  // namespace faxflow::testing
