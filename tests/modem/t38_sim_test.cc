// Integration: the sim line's line conditions, each a real SpanDSP call: T.38 over the
// in-process UDPTL pipe with 0, 1 and 10 % datagram loss (redundancy 3), a far end accepting only
// normal resolution (capability_mismatch, then a 204x98 retry delivers), slow far ends
// (V.29 9600 / V.27ter 4800) and AWGN on the audio path (within limits: delivered; far beyond:
// the watchdog ends the call). Received pages are compared pixel for pixel.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "pages/pages.h"
#include "tests/modem/sim_call_fixture.h"
#include "tests/modem/t38_scenarios.h"
#include "tests/modem/test_doc.h"
#include "workers/modem/fax_call.h"
#include "workers/modem/outcome.h"
#include "workers/modem/sim_line.h"

namespace faxflow::modem {
namespace {

class LineConditionsTest : public SimCallFixture<3> {
 protected:
  void ExpectDelivered(const std::string& number, int bit_rate) {
    Run run = Call(number, doc_->multipage_path);
    EXPECT_EQ(run.result.setup, CallSetup::kAnswered);
    EXPECT_EQ(CompletionCodeName(run.result.completion_code), "T30_ERR_OK") << number;
    EXPECT_EQ(run.cls.state, v1::STATE_DELIVERED) << number << ": " << run.cls.detail;
    EXPECT_EQ(run.result.pages_confirmed, kPages);
    EXPECT_FALSE(run.result.watchdog);
    if (bit_rate > 0) {
      EXPECT_EQ(run.result.stats.bit_rate, bit_rate) << number;
    }
    std::printf("[ measure ] %s (%s): %d bps, ecm %d, %.1f s line time\n", number.c_str(),
                run.result.setup_detail.c_str(), run.result.stats.bit_rate, run.result.stats.ecm ? 1 : 0,
                static_cast<double>(run.result.line_ms) / 1000.0);
    ExpectReceived(run, Sent());
  }
};

TEST_F(LineConditionsTest, T38WithoutLossDeliversPixelIdenticalPages) {
  ExpectDelivered("+15550100100", 14400);
}

TEST_F(LineConditionsTest, T38WithOnePercentLossDeliversThanksToRedundancy) {
  ExpectDelivered("+15550100101", 0);
}

TEST_F(LineConditionsTest, T38WithTenPercentLossDeliversThanksToRedundancy) {
  ExpectDelivered("+15550100102", 0);
}

TEST_F(LineConditionsTest, T38WithLossAndNoRedundancyIsNotDelivered) {
  // The test can fail: the same 10 % loss without redundancy breaks the call (SpanDSP alone
  // does not survive it), so the redundancy is what the previous test proves.
  auto directory = SimDirectory::Create("+15557770010=t38_loss:10");
  ASSERT_TRUE(directory.ok());
  SimLineOptions opts;
  opts.received_dir = dir_ + "/received-noredundancy";
  opts.t38.redundancy = 0;
  auto line = SimLineDriver::Create(opts, *directory, clock_);
  ASSERT_TRUE(line.ok());
  line_ = std::move(*line);
  Run run = Call("+15557770010", doc_->multipage_path, {.timeout_s = 300});
  EXPECT_NE(run.cls.state, v1::STATE_DELIVERED) << CompletionCodeName(run.result.completion_code);
}

TEST_F(LineConditionsTest, NormalOnlyReceiverRefusesFineThenAcceptsNormalRetry) {
  Run fine = Call("+15550100103", doc_->multipage_path);
  EXPECT_EQ(fine.cls.state, v1::STATE_FAILED);
  EXPECT_EQ(fine.cls.reason, v1::REASON_CAPABILITY_MISMATCH) << fine.cls.detail;
  EXPECT_EQ(CompletionCodeName(fine.result.completion_code), "T30_ERR_NORESSUPPORT");
  EXPECT_EQ(fine.result.pages_confirmed, 0);

  // The retry re-renders at 204x98 (pages::ToNormalResolution) and is delivered.
  auto normal = pages::ToNormalResolution(testing::ReadFileBytes(doc_->multipage_path));
  ASSERT_TRUE(normal.ok()) << normal.status().ToString();
  const std::string normal_path = dir_ + "/normal.tif";
  std::ofstream(normal_path, std::ios::binary) << *normal;
  Run retry = Call("+15550100103", normal_path, {.attempt = 2});
  EXPECT_EQ(retry.cls.state, v1::STATE_DELIVERED) << retry.cls.detail;
  EXPECT_EQ(retry.result.pages_confirmed, kPages);
  std::vector<pages::Bitmap> expected;
  for (const auto& page : Sent()) expected.push_back(pages::HalveRows(page));
  ASSERT_EQ(expected.size(), static_cast<size_t>(kPages));
  EXPECT_EQ(expected[0].length, (Sent()[0].length + 1) / 2);
  ExpectReceived(retry, expected);
}

TEST_F(LineConditionsTest, SlowFarEndAt9600Delivers) { ExpectDelivered("+15550100104", 9600); }

TEST_F(LineConditionsTest, SlowFarEndAt4800Delivers) { ExpectDelivered("+15550100105", 4800); }

TEST_F(LineConditionsTest, NoiseWithinLimitsDelivers) { ExpectDelivered("+15550100106", 14400); }

TEST_F(LineConditionsTest, NoiseBeyondLimitsEndsByWatchdogNotDelivered) {
  Run run = Call("+15550100107", doc_->multipage_path, {.timeout_s = 120});
  EXPECT_NE(run.cls.state, v1::STATE_DELIVERED);
  EXPECT_LE(run.result.line_ms, 121'000) << "the watchdog bounds the call";
  std::printf("[ measure ] noise -30 dBm0: %s, watchdog %d, %.1f s line time, %s\n",
              CompletionCodeName(run.result.completion_code).c_str(), run.result.watchdog ? 1 : 0,
              static_cast<double>(run.result.line_ms) / 1000.0, run.cls.detail.c_str());
}

TEST_F(LineConditionsTest, ToNormalResolutionHalvesRowsKeepsThinLinesAndIsSendable) {
  auto normal = pages::ToNormalResolution(testing::ReadFileBytes(doc_->multipage_path));
  ASSERT_TRUE(normal.ok()) << normal.status().ToString();
  auto count = pages::CountPages(*normal);
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, kPages);
  auto split = pages::SplitPages(*normal);
  ASSERT_TRUE(split.ok());
  for (const auto& page : *split) {
    auto format = pages::ValidateFaxPage(page);
    ASSERT_TRUE(format.ok()) << format.status().ToString();
    EXPECT_NEAR(format->y_dpi, 98, 1);
  }
  // A one-row line on an odd row survives (rows are ORed, not dropped).
  pages::Bitmap fine;
  fine.width = 16;
  fine.length = 5;
  fine.stride = 2;
  fine.bits.assign(10, 0);
  fine.bits[3 * 2] = 0xFF;      // row 3
  fine.bits[4 * 2 + 1] = 0x01;  // row 4 (odd length: kept alone)
  const pages::Bitmap half = pages::HalveRows(fine);
  EXPECT_EQ(half.length, 3u);
  EXPECT_EQ(half.bits[1 * 2], 0xFF);
  EXPECT_EQ(half.bits[2 * 2 + 1], 0x01);
  EXPECT_EQ(half.BlackPixels(), fine.BlackPixels());
  // Already-normal pages go through unchanged.
  auto again = pages::ToNormalResolution(*normal);
  ASSERT_TRUE(again.ok());
  auto a = pages::DecodePages(*normal);
  auto b = pages::DecodePages(*again);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(pages::ComparePages(*a, *b).ok());
}

TEST(LineConditionRows, EveryRowIsABuiltInNumberWithTheNamedBehaviour) {
  for (const auto& row : testing::LineConditionRows()) {
    bool found = false;
    for (const auto& [number, behaviour] : SimDirectory::BuiltIn())
      if (number == row.number) found = true;
    EXPECT_TRUE(found) << row.name;
  }
}

}  // namespace
}  // namespace faxflow::modem
