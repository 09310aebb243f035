// RocksDedupStore (the modem's dial ledger) against a real RocksDB in a temporary directory.
#include "storage/dedup_store.h"

#include <atomic>
#include <latch>
#include <thread>

#include <gtest/gtest.h>

#include "storage/metrics.h"
#include "storage/rocks_dedup_store.h"
#include "tests/storage/test_util.h"

namespace faxflow {
namespace {

using storage_test::CrashChild;
using storage_test::TempDir;

// Values of faxflow.v1.RecipientState / FailureReason do not matter to the store; any ints do.
constexpr int32_t kDelivered = 3;
constexpr int32_t kFailed = 5;
constexpr int32_t kReasonBusy = 2;

class DedupStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<RocksDedupStore> Open(StorageMetrics* metrics = nullptr) {
    auto store = RocksDedupStore::Open(dir_.Sub("ledger"), metrics);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }
  JobLedger MustGet(DedupStore& store, const std::string& job) {
    auto got = store.Get(job);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_TRUE(got.ok() && got->has_value()) << "no ledger for " << job;
    return got.ok() && got->has_value() ? **got : JobLedger{};
  }

  TempDir dir_;
};

TEST_F(DedupStoreTest, UnknownJobHasNoLedger) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto got = store->Get("job-1");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
}

TEST_F(DedupStoreTest, DeliveredJobFlowIsRecordedAndNeverDialledAgain) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->BeginAttempt("job-1", 1, 3, 100).ok());
  JobLedger l = MustGet(*store, "job-1");
  EXPECT_EQ(l.job_id, "job-1");
  EXPECT_EQ(l.attempts_begun, 1);
  EXPECT_EQ(l.attempts_finished, 0);
  EXPECT_EQ(l.pages_total, 3);
  EXPECT_EQ(l.pages_confirmed, 0);
  EXPECT_FALSE(l.terminal);
  EXPECT_EQ(l.updated_at_ms, 100);
  for (int32_t page = 1; page <= 3; ++page) ASSERT_TRUE(store->ConfirmPage("job-1", 1, page, 100 + page).ok());
  ASSERT_TRUE(store->FinishAttempt("job-1", 1, true, kDelivered, 0, 200).ok());
  l = MustGet(*store, "job-1");
  EXPECT_EQ(l.pages_confirmed, 3);
  EXPECT_EQ(l.attempts_finished, 1);
  EXPECT_TRUE(l.terminal);
  EXPECT_EQ(l.terminal_state, kDelivered);
  EXPECT_EQ(l.updated_at_ms, 200);

  // A redelivery must not dial again.
  Status again = store->BeginAttempt("job-1", 2, 3, 300);
  EXPECT_EQ(again.code(), Code::kAlreadyExists);
  EXPECT_TRUE(again.permanent());
  EXPECT_NE(again.message().find("terminal"), std::string::npos) << again.message();
  EXPECT_EQ(MustGet(*store, "job-1").attempts_begun, 1);
}

TEST_F(DedupStoreTest, SameAttemptCannotBeBegunTwice) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->BeginAttempt("job-1", 1, 2, 100).ok());
  Status twice = store->BeginAttempt("job-1", 1, 2, 101);
  EXPECT_EQ(twice.code(), Code::kAlreadyExists);
  EXPECT_TRUE(twice.permanent());
  EXPECT_NE(twice.message().find("attempts_begun=1"), std::string::npos) << twice.message();
  EXPECT_EQ(store->BeginAttempt("job-1", 0, 2, 101).code(), Code::kInvalidArgument);
  ASSERT_TRUE(store->FinishAttempt("job-1", 1, false, 0, 0, 102).ok());
  // Still refused after it was finished; the next attempt number is accepted.
  EXPECT_EQ(store->BeginAttempt("job-1", 1, 2, 103).code(), Code::kAlreadyExists);
  ASSERT_TRUE(store->BeginAttempt("job-1", 2, 2, 104).ok());
  EXPECT_EQ(store->BeginAttempt("job-1", 2, 2, 105).code(), Code::kAlreadyExists);
  EXPECT_EQ(MustGet(*store, "job-1").attempts_begun, 2);
}

TEST_F(DedupStoreTest, InterruptedAttemptResumesAtFirstUnconfirmedPage) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->BeginAttempt("job-1", 1, 5, 100).ok());
  ASSERT_TRUE(store->ConfirmPage("job-1", 1, 1, 101).ok());
  ASSERT_TRUE(store->ConfirmPage("job-1", 1, 2, 102).ok());
  // Crash mid-call. The redelivered job finds attempt 1 begun but not finished.
  JobLedger l = MustGet(*store, "job-1");
  EXPECT_EQ(l.attempts_begun, 1);
  EXPECT_EQ(l.attempts_finished, 0);
  EXPECT_EQ(l.pages_confirmed, 2);
  ASSERT_TRUE(store->FinishAttempt("job-1", 1, false, 0, 0, 200).ok());
  ASSERT_TRUE(store->BeginAttempt("job-1", 2, 5, 201).ok());
  for (int32_t page = 3; page <= 5; ++page) ASSERT_TRUE(store->ConfirmPage("job-1", 2, page, 202).ok());
  ASSERT_TRUE(store->FinishAttempt("job-1", 2, true, kDelivered, 0, 300).ok());
  l = MustGet(*store, "job-1");
  EXPECT_EQ(l.pages_confirmed, 5);
  EXPECT_EQ(l.attempts_begun, 2);
  EXPECT_EQ(l.attempts_finished, 2);
  EXPECT_TRUE(l.terminal);
}

TEST_F(DedupStoreTest, DuplicateAndOutOfOrderConfirmationsKeepTheContiguousCount) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->BeginAttempt("job-1", 1, 6, 100).ok());
  ASSERT_TRUE(store->ConfirmPage("job-1", 1, 1, 101).ok());
  ASSERT_TRUE(store->ConfirmPage("job-1", 1, 1, 102).ok());  // duplicate
  ASSERT_TRUE(store->ConfirmPage("job-1", 1, 3, 103).ok());  // gap: page 2 not yet confirmed
  ASSERT_TRUE(store->ConfirmPage("job-1", 1, 3, 104).ok());  // duplicate of an out-of-order page
  ASSERT_TRUE(store->ConfirmPage("job-1", 1, 5, 105).ok());
  EXPECT_EQ(MustGet(*store, "job-1").pages_confirmed, 1);
  ASSERT_TRUE(store->ConfirmPage("job-1", 1, 2, 106).ok());  // fills the gap: 1..3 contiguous
  EXPECT_EQ(MustGet(*store, "job-1").pages_confirmed, 3);
  ASSERT_TRUE(store->ConfirmPage("job-1", 1, 4, 107).ok());  // 1..5
  EXPECT_EQ(MustGet(*store, "job-1").pages_confirmed, 5);
  ASSERT_TRUE(store->ConfirmPage("job-1", 1, 2, 108).ok());  // late duplicate: no change
  EXPECT_EQ(MustGet(*store, "job-1").pages_confirmed, 5);

  EXPECT_EQ(store->ConfirmPage("job-1", 1, 0, 109).code(), Code::kInvalidArgument);
  EXPECT_EQ(store->ConfirmPage("job-1", 1, 7, 109).code(), Code::kInvalidArgument);  // beyond pages_total
  EXPECT_EQ(store->ConfirmPage("job-1", 2, 6, 109).code(), Code::kFailedPrecondition);  // attempt not begun
  EXPECT_EQ(store->ConfirmPage("job-9", 1, 1, 109).code(), Code::kNotFound);
  EXPECT_EQ(MustGet(*store, "job-1").pages_confirmed, 5);
}

TEST_F(DedupStoreTest, FirstTerminalOutcomeWins) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->BeginAttempt("job-1", 1, 1, 100).ok());
  ASSERT_TRUE(store->FinishAttempt("job-1", 1, true, kFailed, kReasonBusy, 200).ok());
  ASSERT_TRUE(store->FinishAttempt("job-1", 1, true, kFailed, kReasonBusy, 201).ok());  // idempotent
  Status different = store->FinishAttempt("job-1", 1, true, kDelivered, 0, 202);
  EXPECT_EQ(different.code(), Code::kAlreadyExists);
  JobLedger l = MustGet(*store, "job-1");
  EXPECT_EQ(l.terminal_state, kFailed);
  EXPECT_EQ(l.terminal_reason, kReasonBusy);
  EXPECT_EQ(l.updated_at_ms, 200);
  EXPECT_EQ(store->FinishAttempt("job-1", 2, false, 0, 0, 203).code(), Code::kFailedPrecondition);
  EXPECT_EQ(store->FinishAttempt("job-2", 1, false, 0, 0, 203).code(), Code::kNotFound);
}

TEST_F(DedupStoreTest, UndialledJobCanBeMarkedTerminal) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  // Cancelled before it was ever dialled: attempt 0, terminal.
  ASSERT_TRUE(store->FinishAttempt("job-1", 0, true, 6, 0, 100).ok());
  JobLedger l = MustGet(*store, "job-1");
  EXPECT_TRUE(l.terminal);
  EXPECT_EQ(l.attempts_begun, 0);
  EXPECT_EQ(store->BeginAttempt("job-1", 1, 1, 101).code(), Code::kAlreadyExists);
  EXPECT_EQ(store->FinishAttempt("job-2", 0, false, 0, 0, 100).code(), Code::kInvalidArgument);
}

TEST_F(DedupStoreTest, SuppressedRedeliveriesAreCounted) {
  MetricsRegistry registry;
  StorageMetrics metrics(registry);
  auto store = Open(&metrics);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->BeginAttempt("job-1", 1, 1, 100).ok());
  ASSERT_TRUE(store->FinishAttempt("job-1", 1, true, kDelivered, 0, 200).ok());
  for (int32_t expected = 1; expected <= 3; ++expected) {
    auto count = store->CountSuppressed("job-1");
    ASSERT_TRUE(count.ok());
    EXPECT_EQ(*count, expected);
  }
  EXPECT_EQ(MustGet(*store, "job-1").duplicates_suppressed, 3);
  EXPECT_EQ(store->CountSuppressed("job-unknown").status().code(), Code::kNotFound);
  EXPECT_EQ(store->BeginAttempt("job-1", 2, 1, 300).code(), Code::kAlreadyExists);
  EXPECT_EQ(metrics.dedup_suppress.ok->Value(), 3);
  EXPECT_EQ(metrics.dedup_suppress.refused->Value(), 1);
  EXPECT_EQ(metrics.dedup_begin.ok->Value(), 1);
  EXPECT_EQ(metrics.dedup_begin.refused->Value(), 1);
  EXPECT_EQ(metrics.dedup_finish.ok->Value(), 1);
}

TEST_F(DedupStoreTest, InvalidJobIdsAreRejected) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->BeginAttempt("", 1, 1, 1).code(), Code::kInvalidArgument);
  EXPECT_EQ(store->Get("").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store->BeginAttempt(std::string(2000, 'x'), 1, 1, 1).code(), Code::kInvalidArgument);
  EXPECT_EQ(store->BeginAttempt("job-1", 1, -1, 1).code(), Code::kInvalidArgument);
}

TEST_F(DedupStoreTest, LedgerSurvivesCloseAndReopen) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->BeginAttempt("job-1", 1, 4, 100).ok());
    ASSERT_TRUE(store->ConfirmPage("job-1", 1, 1, 101).ok());
    ASSERT_TRUE(store->ConfirmPage("job-1", 1, 3, 102).ok());  // out of order, remembered
    ASSERT_TRUE(store->BeginAttempt("job-2", 1, 1, 100).ok());
    ASSERT_TRUE(store->FinishAttempt("job-2", 1, true, kFailed, kReasonBusy, 150).ok());
    ASSERT_TRUE(store->CountSuppressed("job-2").ok());
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  JobLedger one = MustGet(*store, "job-1");
  EXPECT_EQ(one.attempts_begun, 1);
  EXPECT_EQ(one.pages_confirmed, 1);
  EXPECT_EQ(one.pages_total, 4);
  EXPECT_EQ(one.updated_at_ms, 102);
  ASSERT_TRUE(store->ConfirmPage("job-1", 1, 2, 103).ok());
  EXPECT_EQ(MustGet(*store, "job-1").pages_confirmed, 3);  // the remembered page 3 counts
  JobLedger two = MustGet(*store, "job-2");
  EXPECT_TRUE(two.terminal);
  EXPECT_EQ(two.terminal_state, kFailed);
  EXPECT_EQ(two.terminal_reason, kReasonBusy);
  EXPECT_EQ(two.duplicates_suppressed, 1);
  EXPECT_EQ(store->BeginAttempt("job-1", 1, 4, 200).code(), Code::kAlreadyExists);
}

TEST_F(DedupStoreTest, RacingBeginsOfOneAttemptAdmitExactlyOneDialler) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 8;
  constexpr int kJobs = 25;
  for (int job = 0; job < kJobs; ++job) {
    const std::string job_id = "job-" + std::to_string(job);
    std::latch start(kThreads);
    std::atomic<int> ok{0};
    std::atomic<int> already{0};
    std::atomic<int> other{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        Status s = store->BeginAttempt(job_id, 1, 2, 100);
        if (s.ok()) {
          ok.fetch_add(1);
        } else if (s.code() == Code::kAlreadyExists) {
          already.fetch_add(1);
        } else {
          other.fetch_add(1);
        }
      });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(ok.load(), 1) << job_id;
    EXPECT_EQ(already.load(), kThreads - 1) << job_id;
    EXPECT_EQ(other.load(), 0) << job_id;
  }
}

TEST_F(DedupStoreTest, EveryAcknowledgedBeginSurvivesKillMinus9) {
  const std::string path = dir_.Sub("ledger");
  CrashChild child({"dedup", path});
  ASSERT_TRUE(child.WaitForLines(200, std::chrono::seconds(60))) << "child acknowledged " << child.lines().size();
  const int status = child.Kill();
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  ASSERT_GE(child.lines().size(), 200u);
  auto store = Open();
  ASSERT_NE(store, nullptr);
  for (const std::string& job : child.lines()) {
    auto got = store->Get(job);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ASSERT_TRUE(got->has_value()) << "acknowledged BeginAttempt lost for " << job;
    EXPECT_EQ((*got)->attempts_begun, 1) << job;
    // And a second worker picking the redelivered job up is refused.
    EXPECT_EQ(store->BeginAttempt(job, 1, 3, 5000).code(), Code::kAlreadyExists) << job;
  }
}

TEST(OpenRocksDedupStoreTest, ReturnsAWorkingInterface) {
  TempDir dir;
  auto store = OpenRocksDedupStore(dir.Sub("d"));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_TRUE((*store)->BeginAttempt("job-1", 1, 1, 1).ok());
  EXPECT_EQ((*store)->BeginAttempt("job-1", 1, 1, 1).code(), Code::kAlreadyExists);
}

}  // namespace
}  // namespace faxflow
