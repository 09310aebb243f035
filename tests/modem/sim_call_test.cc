// Integration: real SpanDSP sessions (our transmitter, the sim far end's receiver) over the sim
// line, one call per test, asserting what a user sees: terminal state and reason, pages
// confirmed, and the received pages equal to the sent ones pixel for pixel.
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/log.h"
#include "pages/pages.h"
#include "tests/modem/sim_call_fixture.h"
#include "tests/modem/test_doc.h"
#include "workers/modem/fax_call.h"
#include "workers/modem/outcome.h"
#include "workers/modem/sim_line.h"

namespace faxflow::modem {
namespace {

using testing::ReadFileBytes;

class SimCallTest : public SimCallFixture<5> {
 protected:
  std::string DirectorySpec() const override { return "+15557770001=drop_after:4"; }
};

TEST_F(SimCallTest, AnsweredCallDeliversEveryPagePixelIdentical) {
  const auto wall_start = std::chrono::steady_clock::now();
  Run run = Call("+15550100000", doc_->multipage_path);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  EXPECT_EQ(run.result.setup, CallSetup::kAnswered);
  EXPECT_EQ(CompletionCodeName(run.result.completion_code), "T30_ERR_OK");
  EXPECT_EQ(run.cls.state, v1::STATE_DELIVERED) << run.cls.detail;
  EXPECT_EQ(run.confirmed, (std::vector<int>{1, 2, 3, 4, 5}));
  EXPECT_EQ(run.result.stats.pages_tx, 5) << "phase D count agrees with SpanDSP's statistics";
  EXPECT_EQ(run.result.stats.bit_rate, 14400);
  EXPECT_TRUE(run.result.stats.ecm);
  EXPECT_EQ(run.result.remote_csid, "FAXFLOW SIM");
  const double line_s = static_cast<double>(run.result.line_ms) / 1000.0;
  std::printf("[ measure ] one 5-page call: %.1f s line time in %.3f s wall = %.0fx real time\n", line_s,
              wall, line_s / wall);

  const std::string received = line_->ReceivedPath(run.request);
  ASSERT_TRUE(std::filesystem::exists(received)) << received;
  auto sent = pages::DecodeFile(doc_->multipage_path);
  auto got = pages::DecodeFile(received);
  ASSERT_TRUE(sent.ok()) << sent.status().ToString();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 5u);
  EXPECT_TRUE(pages::ComparePages(*sent, *got).ok()) << pages::ComparePages(*sent, *got).ToString();
  for (size_t i = 1; i < sent->size(); ++i) EXPECT_NE((*sent)[i - 1], (*sent)[i]) << "test pages must differ";

  auto log = CallLog();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_NE(log[0].find("\"job_id\":\"job_1\""), std::string::npos) << log[0];
  EXPECT_NE(log[0].find("\"pages_received\":5"), std::string::npos) << log[0];
  EXPECT_NE(log[0].find("\"completion\":\"T30_ERR_OK\""), std::string::npos) << log[0];
}

TEST_F(SimCallTest, BusyIsFailedBusyWithoutAudio) {
  Run run = Call("+15550100001", doc_->multipage_path);
  EXPECT_EQ(run.result.setup, CallSetup::kBusy);
  EXPECT_EQ(run.cls.state, v1::STATE_FAILED);
  EXPECT_EQ(run.cls.reason, v1::REASON_BUSY);
  EXPECT_TRUE(run.confirmed.empty());
  auto log = CallLog();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_NE(log[0].find("\"behaviour\":\"busy\""), std::string::npos) << log[0];
}

TEST_F(SimCallTest, NoAnswerAfterRingTimeout) {
  Run run = Call("+15550100002", doc_->multipage_path);
  EXPECT_EQ(run.result.setup, CallSetup::kNoAnswer);
  EXPECT_EQ(run.result.setup_ms, 60'000);
  EXPECT_EQ(run.cls.state, v1::STATE_FAILED);
  EXPECT_EQ(run.cls.reason, v1::REASON_NO_ANSWER);
}

TEST_F(SimCallTest, VoiceIsNotAFax) {
  Run run = Call("+15550100003", doc_->multipage_path);
  EXPECT_EQ(run.result.setup, CallSetup::kAnswered);
  EXPECT_FALSE(run.result.phase_b_seen);
  EXPECT_EQ(run.cls.state, v1::STATE_FAILED) << run.cls.detail;
  EXPECT_EQ(run.cls.reason, v1::REASON_NOT_A_FAX) << CompletionCodeName(run.result.completion_code);
  EXPECT_TRUE(run.confirmed.empty());
  EXPECT_TRUE(run.result.far_end_hung_up) << "the person hangs up after 30 s";
  EXPECT_EQ(run.result.line_ms, 30'000);
}

TEST_F(SimCallTest, SilenceIsNotAFax) {
  Run run = Call("+15550100004", doc_->multipage_path);
  EXPECT_EQ(CompletionCodeName(run.result.completion_code), "T30_ERR_T0_EXPIRED");
  EXPECT_EQ(run.cls.state, v1::STATE_FAILED);
  EXPECT_EQ(run.cls.reason, v1::REASON_NOT_A_FAX);
  EXPECT_NEAR(static_cast<double>(run.result.line_ms), 60'000, 5'000);
}

TEST_F(SimCallTest, DropAfterTwoPagesIsPartialWithTwoConfirmed) {
  Run run = Call("+15550100005", doc_->multipage_path);
  EXPECT_TRUE(run.result.far_end_hung_up);
  EXPECT_EQ(run.confirmed, (std::vector<int>{1, 2}));
  EXPECT_EQ(run.cls.state, v1::STATE_PARTIAL) << run.cls.detail;
  EXPECT_EQ(run.cls.reason, v1::REASON_DROPPED);
  auto got = pages::DecodeFile(line_->ReceivedPath(run.request));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->size(), 2u);
  auto all = pages::DecodeFile(doc_->multipage_path);
  ASSERT_TRUE(all.ok());
  std::vector<pages::Bitmap> first_two(all->begin(), all->begin() + 2);
  EXPECT_TRUE(pages::ComparePages(first_two, *got).ok());
  auto log = CallLog();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_NE(log[0].find("\"pages_received\":2"), std::string::npos) << log[0];
}

TEST_F(SimCallTest, ConfiguredBehaviourOverridesDefault) {
  Run run = Call("+15557770001", doc_->multipage_path);
  EXPECT_EQ(run.confirmed, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(run.cls.state, v1::STATE_PARTIAL);
}

TEST_F(SimCallTest, WatchdogTearsDownAndClassifiesDropped) {
  Run run = Call("+15550100000", doc_->multipage_path, {.timeout_s = 20});
  EXPECT_TRUE(run.result.watchdog);
  EXPECT_LE(run.result.line_ms, 20'000 + 20);
  EXPECT_EQ(run.cls.reason, v1::REASON_DROPPED) << run.cls.detail;
  EXPECT_EQ(run.cls.state, run.confirmed.empty() ? v1::STATE_FAILED : v1::STATE_PARTIAL);
  // The line is free again: the next call on it completes.
  Run next = Call("+15550100000", doc_->multipage_path);
  EXPECT_EQ(next.cls.state, v1::STATE_DELIVERED) << next.cls.detail;
}

TEST_F(SimCallTest, ResumeFromPageThreeSendsOnlyPagesThreeToFive) {
  auto joined = pages::JoinPages({doc_->page_bytes[2], doc_->page_bytes[3], doc_->page_bytes[4]});
  ASSERT_TRUE(joined.ok()) << joined.status().ToString();
  const std::string path = dir_ + "/resume.tif";
  {
    std::ofstream out(path, std::ios::binary);
    out << *joined;
  }
  Run run = Call("+15550100000", path, {.first_page = 3});
  EXPECT_EQ(run.confirmed, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(run.cls.state, v1::STATE_DELIVERED) << run.cls.detail;
  auto got = pages::DecodeFile(line_->ReceivedPath(run.request));
  auto all = pages::DecodeFile(doc_->multipage_path);
  ASSERT_TRUE(got.ok() && all.ok());
  std::vector<pages::Bitmap> expected(all->begin() + 2, all->end());
  EXPECT_TRUE(pages::ComparePages(expected, *got).ok()) << pages::ComparePages(expected, *got).ToString();
}

TEST_F(SimCallTest, RestrictedModemsNegotiateALowerRate) {
  CallRequest req;
  req.number = "+15550100000";
  req.job_id = "job_v29";
  FaxCallOptions o;
  o.tiff_path = doc_->multipage_path;
  o.ident = "faxflow";
  o.modems = kModemV29;
  auto r = RunFaxCall(*line_, req, o, clock_, FaxCallHooks{});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->completion_code, T30_ERR_OK);
  EXPECT_EQ(r->stats.bit_rate, 9600);
  EXPECT_EQ(r->pages_confirmed, kPages);
}

// Stop() must not wait out a ring: in realtime mode a no-answer far end rings for 60 s, and a
// shutdown during it ends the attempt as aborted (resumed later), not as a no_answer outcome.
TEST_F(SimCallTest, ShutdownWhileRingingAbortsTheAttemptWithoutWaitingOutTheRing) {
  auto directory = SimDirectory::Create("");
  ASSERT_TRUE(directory.ok());
  SimLineOptions opts;
  opts.received_dir = dir_ + "/received-ring";
  opts.realtime = true;  // ring_timeout_ms stays 60 s
  auto line = SimLineDriver::Create(opts, *directory, clock_);
  ASSERT_TRUE(line.ok());
  CallRequest req;
  req.number = "+15550100002";  // no_answer
  req.job_id = "job_ring";
  FaxCallOptions o;
  o.tiff_path = doc_->multipage_path;
  o.ident = "faxflow";
  FaxCallHooks hooks;
  hooks.should_abort = [] { return true; };  // the worker is stopping
  req.should_abort = hooks.should_abort;
  const auto start = std::chrono::steady_clock::now();
  auto r = RunFaxCall(**line, req, o, clock_, hooks);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->aborted) << "a shutdown, not the far end's answer";
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30)) << "waited out the ring";
}

TEST_F(SimCallTest, RealtimeModePacesLineTimeThroughTheClock) {
  auto directory = SimDirectory::Create("");
  ASSERT_TRUE(directory.ok());
  SimLineOptions opts;
  opts.received_dir = dir_ + "/received-rt";
  opts.realtime = true;
  opts.busy_ms = 300;
  opts.ring_ms = 100;
  auto line = SimLineDriver::Create(opts, *directory, clock_);
  ASSERT_TRUE(line.ok());
  CallRequest req;
  req.number = "+15550100001";
  req.job_id = "job_rt";
  const auto start = std::chrono::steady_clock::now();
  auto busy = (*line)->Dial(req);
  ASSERT_TRUE(busy.ok());
  EXPECT_EQ(busy->setup, CallSetup::kBusy);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));

  req.number = "+15550100004";  // silence: 25 frames must take >= 500 ms of wall time
  auto answered = (*line)->Dial(req);
  ASSERT_TRUE(answered.ok() && answered->call);
  std::array<int16_t, kFrameSamples> tx{};
  std::array<int16_t, kFrameSamples> rx{};
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 25; ++i) ASSERT_TRUE(answered->call->Exchange(tx, rx).ok());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(490));
  EXPECT_EQ(answered->call->LineMillis(), 500);
}

TEST_F(SimCallTest, SpanDspLogsGoToTheSpandspLoggerAtDebugOnly) {
  auto logger = Logger("spandsp");
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(100000);
  const auto saved_sinks = logger->sinks();
  logger->sinks() = {sink};  // keep the test output quiet
  const auto old_level = logger->level();
  logger->set_level(spdlog::level::debug);
  Call("+15550100001", doc_->multipage_path);  // busy: no session traffic
  Call("+15550100000", doc_->multipage_path, {.timeout_s = 10});
  logger->set_level(old_level);
  logger->sinks() = saved_sinks;
  auto lines = sink->last_formatted();
  ASSERT_FALSE(lines.empty()) << "SpanDSP logs reach spdlog at debug";
  bool tx = false, rx = false;
  for (const auto& l : lines) {
    tx = tx || l.find("tx") != std::string::npos;
    rx = rx || l.find("farend") != std::string::npos;
  }
  EXPECT_TRUE(tx && rx) << lines.front();
}

TEST_F(SimCallTest, IdentLongerThanTwentyCharsIsRejectedBeforeDialling) {
  CallRequest req;
  req.number = "+15550100000";
  req.job_id = "job_x";
  FaxCallOptions o;
  o.tiff_path = doc_->multipage_path;
  o.ident = "123456789012345678901";
  auto r = RunFaxCall(*line_, req, o, clock_, FaxCallHooks{});
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(CallLog().empty());
}

}  // namespace
}  // namespace faxflow::modem
