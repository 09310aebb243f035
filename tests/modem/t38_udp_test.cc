// Integration: the `t38` line driver calling a T38Sink over real UDP on 127.0.0.1, in real time
// (T.38 streamed without pacing to keep each call a few seconds), with 0, 1 and 10 % of the
// datagrams dropped on both sides before they reach the socket (UDPTL redundancy 3): every fax
// is delivered and the sink's TIFF equals the sent pages pixel for pixel. Also: a busy number,
// an endpoint that is down, and a sink that stops answering mid-call (idle timeout).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "pages/pages.h"
#include "tests/modem/test_doc.h"
#include "tests/support/support.h"
#include "workers/modem/fax_call.h"
#include "workers/modem/outcome.h"
#include "workers/modem/t38_line.h"
#include "workers/modem/t38_sink.h"

namespace faxflow::modem {
namespace {

using testing::MakeTempDir;
using testing::MakeTestDoc;
using testing::TestDoc;

constexpr int kPages = 2;

class T38UdpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    doc_dir_ = new std::string(MakeTempDir("t38udp-doc"));
    doc_ = new TestDoc(MakeTestDoc(*doc_dir_, kPages));
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*doc_dir_);
    delete doc_;
    delete doc_dir_;
  }
  void SetUp() override {
    ASSERT_FALSE(doc_->multipage_path.empty()) << "gs failed to render the test document";
    dir_ = MakeTempDir("t38udp");
  }
  void TearDown() override {
    sink_.reset();
    std::filesystem::remove_all(dir_);
  }

  void StartSink(double loss_percent, bool paced = false) {
    T38SinkOptions o;
    o.listen = "127.0.0.1:0";
    o.dir = dir_ + "/sink";
    o.behaviours = "+15557770001=busy";
    o.link.paced = paced;
    o.link.loss_percent = loss_percent;
    o.link.loss_seed = 7;
    o.idle_timeout_seconds = 10;
    auto s = T38Sink::Start(o, clock_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    sink_ = std::move(*s);
  }
  std::unique_ptr<T38LineDriver> Driver(double loss_percent, int port, bool paced = false,
                                        const std::string& media = "t38") {
    T38LineOptions o;
    o.media = media;
    o.remote = "127.0.0.1:" + std::to_string(port);
    o.link.paced = paced;
    o.link.loss_percent = loss_percent;
    o.link.loss_seed = 11;
    o.answer_timeout_seconds = 3;
    o.idle_timeout_seconds = 5;
    auto d = T38LineDriver::Create(o, clock_);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? std::move(*d) : nullptr;
  }
  FaxCallResult Call(LineDriver& line, const std::string& number, const std::string& job) {
    CallRequest r;
    r.number = number;
    r.job_id = job;
    r.attempt = 1;
    r.pages_total = kPages;
    FaxCallOptions o;
    o.tiff_path = doc_->multipage_path;
    o.ident = "+1 555 0100";
    o.call_timeout_seconds = 120;
    auto res = RunFaxCall(line, r, o, clock_, {});
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    return res.ok() ? *res : FaxCallResult{};
  }
  void DeliversWithLoss(double loss) {
    StartSink(loss);
    auto line = Driver(loss, sink_->port());
    ASSERT_NE(line, nullptr);
    FaxCallResult r = Call(*line, "+15550100000", "udp_job");
    EXPECT_EQ(r.setup, CallSetup::kAnswered) << r.setup_detail;
    EXPECT_EQ(CompletionCodeName(r.completion_code), "T30_ERR_OK");
    EXPECT_EQ(r.pages_confirmed, kPages);
    EXPECT_EQ(r.remote_csid, "FAXFLOW SINK");
    // The sink has recorded the fax once its call ended.
    ASSERT_TRUE(faxflow::testing::Await(
        [&] {
          auto f = sink_->Faxes();
          return f.size() == 1 && f[0].state == "done";
        },
        std::chrono::seconds(10)));
    const SinkFax fax = sink_->Faxes()[0];
    EXPECT_EQ(fax.result, "T30_ERR_OK");
    EXPECT_EQ(fax.pages, kPages);
    EXPECT_EQ(fax.remote_ident, "+1 555 0100");
    if (loss > 0) {
      EXPECT_GT(fax.recovered, 0u) << "loss must have happened and been recovered";
    }
    auto sent = pages::DecodeFile(doc_->multipage_path);
    auto got = pages::DecodeFile(fax.path);
    ASSERT_TRUE(sent.ok() && got.ok()) << fax.path;
    EXPECT_TRUE(pages::ComparePages(*sent, *got).ok()) << pages::ComparePages(*sent, *got).ToString();
  }

  static inline std::string* doc_dir_ = nullptr;
  static inline TestDoc* doc_ = nullptr;
  std::string dir_;
  SystemClock clock_;
  std::unique_ptr<T38Sink> sink_;
};

TEST_F(T38UdpTest, NoLossDeliversPixelIdentical) { DeliversWithLoss(0); }
TEST_F(T38UdpTest, OnePercentLossDeliversPixelIdentical) { DeliversWithLoss(1); }
TEST_F(T38UdpTest, TenPercentLossDeliversPixelIdentical) { DeliversWithLoss(10); }

TEST_F(T38UdpTest, BusyNumberIsBusy) {
  StartSink(0);
  auto line = Driver(0, sink_->port());
  FaxCallResult r = Call(*line, "+15557770001", "busy_job");
  EXPECT_EQ(r.setup, CallSetup::kBusy);
  CallFacts f;
  f.setup = r.setup;
  EXPECT_EQ(Classify(f).reason, v1::REASON_BUSY);
}

TEST_F(T38UdpTest, EndpointDownIsASetupFailureNotAHang) {
  const int port = faxflow::testing::FreePort();  // nothing listens there
  auto line = Driver(0, port);
  const auto start = std::chrono::steady_clock::now();
  FaxCallResult r = Call(*line, "+15550100000", "down_job");
  EXPECT_NE(r.setup, CallSetup::kAnswered);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST_F(T38UdpTest, SinkStoppingMidCallEndsTheCallUndelivered) {
  StartSink(0, /*paced=*/true);  // paced: the call lasts long enough to be cut
  auto line = Driver(0, sink_->port(), /*paced=*/true);
  // Stop the sink once the call is up (it hangs up every call it has): the caller ends the call
  // at once, well inside the watchdog, and nothing is reported delivered.
  std::thread stopper([&] {
    faxflow::testing::Await([&] { return !sink_->Faxes().empty(); }, std::chrono::seconds(10));
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // into the first page
    sink_->Stop();
  });
  const auto start = std::chrono::steady_clock::now();
  FaxCallResult r = Call(*line, "+15550100000", "vanish_job");
  stopper.join();
  EXPECT_EQ(r.setup, CallSetup::kAnswered);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));
  CallFacts f;
  f.setup = r.setup;
  f.completion_code = r.completion_code;
  f.phase_b_seen = r.phase_b_seen;
  f.watchdog = r.watchdog;
  f.pages_confirmed = r.pages_confirmed;
  f.pages_total = kPages;
  EXPECT_NE(Classify(f).state, v1::STATE_DELIVERED) << CompletionCodeName(r.completion_code);
}

TEST_F(T38UdpTest, AudioMediaReachesTheSinksSimFarEndPixelIdentical) {
  StartSink(0);
  auto line = Driver(0, sink_->port(), false, "audio");
  FaxCallResult r = Call(*line, "+15550100000", "audio_job");
  EXPECT_EQ(r.setup, CallSetup::kAnswered) << r.setup_detail;
  EXPECT_EQ(CompletionCodeName(r.completion_code), "T30_ERR_OK");
  EXPECT_EQ(r.pages_confirmed, kPages);
  EXPECT_EQ(r.stats.bit_rate, 14400);
  ASSERT_TRUE(faxflow::testing::Await(
      [&] {
        auto f = sink_->Faxes();
        return f.size() == 1 && f[0].state == "done";
      },
      std::chrono::seconds(10)));
  const SinkFax fax = sink_->Faxes()[0];
  EXPECT_EQ(fax.media, "audio");
  EXPECT_EQ(fax.result, "T30_ERR_OK");
  EXPECT_EQ(fax.pages, kPages);
  EXPECT_EQ(fax.remote_ident, "+1 555 0100");
  auto sent = pages::DecodeFile(doc_->multipage_path);
  auto got = pages::DecodeFile(fax.path);
  ASSERT_TRUE(sent.ok() && got.ok()) << fax.path;
  EXPECT_TRUE(pages::ComparePages(*sent, *got).ok()) << pages::ComparePages(*sent, *got).ToString();
}

TEST_F(T38UdpTest, AudioMediaFarEndBehaviourDropAfterOnePage) {
  StartSink(0);
  auto line = Driver(0, sink_->port(), false, "audio");
  FaxCallResult r = Call(*line, "+15550100006", "audio_drop");  // built-in drop_after:1
  EXPECT_EQ(r.pages_confirmed, 1);
  CallFacts f;
  f.setup = r.setup;
  f.completion_code = r.completion_code;
  f.phase_b_seen = r.phase_b_seen;
  f.watchdog = r.watchdog;
  f.pages_confirmed = r.pages_confirmed;
  f.pages_total = kPages;
  const Classification c = Classify(f);
  EXPECT_EQ(c.state, v1::STATE_PARTIAL) << c.detail;
  EXPECT_EQ(c.reason, v1::REASON_DROPPED);
}

}  // namespace
}  // namespace faxflow::modem
