// Integration: line fallback and destination memory through the worker and real SpanDSP calls
// over the sim line. A destination remembered at fallback step 2 is called at 9600 bps with ECM
// off from the first attempt; a delivered call records what worked for its number.
#include <gtest/gtest.h>

#include "tests/modem/modem_harness.h"
#include "workers/modem/sim_far_end.h"

namespace faxflow::modem {
namespace {

using testing::ModemHarness;

class Fallback : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    doc_dir_ = new std::string(testing::MakeTempDir("fallback-doc"));
    doc_ = new testing::TestDoc(testing::MakeTestDoc(*doc_dir_, 2));
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*doc_dir_);
    delete doc_;
    delete doc_dir_;
  }
  static inline std::string* doc_dir_ = nullptr;
  static inline testing::TestDoc* doc_ = nullptr;
};

TEST_F(Fallback, RememberedDestinationStartsAt9600WithoutEcm) {
  ModemHarness h(*doc_);
  const std::string number = "+15550100000";
  DestinationProfile remembered;
  remembered.destination = NumberDigits(number);
  remembered.step = 2;
  ASSERT_TRUE(h.schedule_->PutDestination(remembered).ok());
  h.StartWorker();
  h.Submit(h.Job("rcp_fb", number, 2));
  ASSERT_TRUE(h.AwaitTerminal({"rcp_fb"}));
  const auto r = h.TerminalResults().at("rcp_fb");
  EXPECT_EQ(r.state(), v1::STATE_DELIVERED);
  EXPECT_EQ(r.bit_rate(), 9600);
  EXPECT_FALSE(r.ecm());
  EXPECT_TRUE(pages::ComparePages(h.Expected(2), h.Received("rcp_fb")).ok());
  EXPECT_EQ(h.Metric("faxflow_modem_line_plan_attempts_total{plan=\"9600-ecm\"}"), 1);
  auto after = h.schedule_->GetDestination(NumberDigits(number));
  ASSERT_TRUE(after.ok() && after->has_value());
  EXPECT_EQ((*after)->step, 2) << "what worked is kept";
  EXPECT_EQ((*after)->bit_rate, 9600);
  h.StopWorkers();
}

TEST_F(Fallback, DeliveredCallIsRememberedForItsNumber) {
  ModemHarness h(*doc_);
  const std::string number = "+4930555000";
  h.StartWorker();
  h.Submit(h.Job("rcp_mem", number, 1));
  ASSERT_TRUE(h.AwaitTerminal({"rcp_mem"}));
  EXPECT_EQ(h.TerminalResults().at("rcp_mem").bit_rate(), 14400);
  auto profile = h.schedule_->GetDestination(NumberDigits(number));
  ASSERT_TRUE(profile.ok() && profile->has_value());
  EXPECT_EQ((*profile)->step, 0);
  EXPECT_EQ((*profile)->bit_rate, 14400);
  EXPECT_TRUE((*profile)->ecm);
  EXPECT_EQ((*profile)->successes, 1);
  h.StopWorkers();
}

}  // namespace
}  // namespace faxflow::modem
