// The dial ledger's on-disk encoding: round trips and rejects damaged values.
#include "storage/ledger_codec.h"

#include <gtest/gtest.h>

namespace faxflow::storage_internal {
namespace {

StoredLedger Sample() {
  StoredLedger s;
  s.ledger.job_id = "job-7";
  s.ledger.attempts_begun = 3;
  s.ledger.attempts_finished = 2;
  s.ledger.pages_confirmed = 4;
  s.ledger.pages_total = 9;
  s.ledger.terminal = true;
  s.ledger.terminal_state = 4;
  s.ledger.terminal_reason = 7;
  s.ledger.duplicates_suppressed = 11;
  s.ledger.updated_at_ms = 1'700'000'000'123;
  s.pages_pending = {6, 8};
  return s;
}

TEST(LedgerCodecTest, RoundTripsEveryField) {
  const StoredLedger in = Sample();
  auto out = DecodeLedger("job-7", EncodeLedger(in));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const JobLedger& l = out->ledger;
  EXPECT_EQ(l.job_id, "job-7");
  EXPECT_EQ(l.attempts_begun, 3);
  EXPECT_EQ(l.attempts_finished, 2);
  EXPECT_EQ(l.pages_confirmed, 4);
  EXPECT_EQ(l.pages_total, 9);
  EXPECT_TRUE(l.terminal);
  EXPECT_EQ(l.terminal_state, 4);
  EXPECT_EQ(l.terminal_reason, 7);
  EXPECT_EQ(l.duplicates_suppressed, 11);
  EXPECT_EQ(l.updated_at_ms, 1'700'000'000'123);
  EXPECT_EQ(out->pages_pending, (std::vector<int32_t>{6, 8}));
}

TEST(LedgerCodecTest, RejectsDamagedValuesAsFatalCorruption) {
  const std::string good = EncodeLedger(Sample());
  std::vector<std::string> bad = {
      "",
      good.substr(0, good.size() - 1),          // truncated
      good + "x",                               // trailing garbage
      std::string(1, '\x02') + good.substr(1),  // unknown version
  };
  std::string flags = good;
  flags[17] = '\x02';  // unknown flag bit
  bad.push_back(flags);
  StoredLedger unordered = Sample();
  unordered.pages_pending = {8, 6};
  bad.push_back(EncodeLedger(unordered));
  StoredLedger adjacent = Sample();
  adjacent.pages_pending = {5};  // page 5 would have been absorbed into the contiguous run
  bad.push_back(EncodeLedger(adjacent));
  StoredLedger counters = Sample();
  counters.ledger.attempts_finished = 4;  // more finished than begun
  bad.push_back(EncodeLedger(counters));
  for (size_t i = 0; i < bad.size(); ++i) {
    auto out = DecodeLedger("job-7", bad[i]);
    ASSERT_FALSE(out.ok()) << "case " << i;
    EXPECT_EQ(out.status().code(), Code::kCorruption) << "case " << i;
    EXPECT_TRUE(out.status().fatal()) << "case " << i;
  }
}

}  // namespace
}  // namespace faxflow::storage_internal
