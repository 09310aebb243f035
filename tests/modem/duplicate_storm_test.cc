// Integration: a duplicate storm. The same outbound job is injected 1,000 times and consumed by
// two modem workers (each reads every copy: separate consumer groups over all partitions)
// sharing one dial ledger and one line. Exactly one call per (job, attempt): the delivered job
// is dialled once; the busy job (3 dials, 1 s retries) is dialled exactly 3 times, attempts 1,
// 2 and 3 once each. Every copy is finished (committed), most of them as suppressed duplicates.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "tests/modem/modem_harness.h"
#include "tests/support/support.h"

namespace faxflow::modem {
namespace {

using testing::ModemHarness;

TEST(DuplicateStorm, ThousandCopiesTwoWorkersOneCallPerAttempt) {
  const std::string doc_dir = testing::MakeTempDir("storm-doc");
  const testing::TestDoc doc = testing::MakeTestDoc(doc_dir, 2);
  ASSERT_FALSE(doc.multipage_path.empty());
  constexpr int kCopies = 1000;
  {
    ModemHarness h(doc);
    auto delivered = h.Job("rcp_storm", "+15550100000", 2);
    auto busy = h.Job("rcp_storm_busy", "+15550100001", 1);
    busy.mutable_retry()->set_busy_seconds(1);
    busy.mutable_retry()->set_max_dials(3);
    // Spread over every partition: a producer retry storm or replay, not just one key.
    auto parts = h.bus_->PartitionCount(std::string(bus::topic::kJobs));
    ASSERT_TRUE(parts.ok());
    for (int i = 0; i < kCopies; ++i) {
      h.Submit(delivered, i % *parts);
      h.Submit(busy, (i + 1) % *parts);
    }
    ModemOptions a = h.options;
    a.group = "storm-a";
    a.channels = 2;
    ModemOptions b = h.options;
    b.group = "storm-b";
    b.channels = 2;
    auto& wa = h.StartWorker(a);
    auto& wb = h.StartWorker(b);
    ASSERT_TRUE(h.AwaitTerminal({"rcp_storm", "rcp_storm_busy"}, std::chrono::seconds(120)));
    ASSERT_TRUE(faxflow::testing::Await(
        [&] { return wa.JobsFinished() == 2 * kCopies && wb.JobsFinished() == 2 * kCopies; },
        std::chrono::seconds(120)))
        << wa.JobsFinished() << " " << wb.JobsFinished();
    h.StopWorkers();

    std::map<std::string, std::map<int, int>> calls;  // job -> attempt -> calls
    for (const auto& c : h.Calls()) ++calls[c.value("job_id", "")][c.value("attempt", 0)];
    EXPECT_EQ(calls["rcp_storm"], (std::map<int, int>{{1, 1}}));
    EXPECT_EQ(calls["rcp_storm_busy"], (std::map<int, int>{{1, 1}, {2, 1}, {3, 1}}));
    auto results = h.TerminalResults();
    EXPECT_EQ(results["rcp_storm"].state(), v1::STATE_DELIVERED);
    EXPECT_EQ(results["rcp_storm"].pages_sent(), 2);
    EXPECT_EQ(results["rcp_storm_busy"].state(), v1::STATE_FAILED);
    EXPECT_EQ(results["rcp_storm_busy"].reason(), v1::REASON_BUSY);
    // Every terminal result of either job agrees (re-emitted ones included).
    for (const auto& e : h.PollEvents()) {
      if (!e.has_result() || !e.result().terminal()) continue;
      EXPECT_EQ(e.result().state(), results[e.recipient_id()].state()) << e.recipient_id();
    }
    EXPECT_EQ(h.Received("rcp_storm").size(), 2u);
    EXPECT_TRUE(pages::ComparePages(h.Expected(2), h.Received("rcp_storm")).ok());
    EXPECT_GE(h.Metric("faxflow_modem_dedup_suppressed_total"), 4 * kCopies - 10);
    EXPECT_EQ(h.Metric("faxflow_modem_attempts_total"), 4);
  }
  std::filesystem::remove_all(doc_dir);
}

}  // namespace
}  // namespace faxflow::modem
