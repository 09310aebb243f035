// Consumer lag from librdkafka statistics (topics/kafka/consumer_stats.h) on a statistics document
// shaped like librdkafka's (tests/data/rdkafka-consumer-stats.json), and its sum per topic and
// group over the consumers of a process.
#include "topics/kafka/consumer_stats.h"

#include <gtest/gtest.h>

#include <map>

#include "tests/support/support.h"

namespace faxflow::bus {
namespace {

std::map<std::pair<std::string, int32_t>, PartitionLag> ByPartition(const std::vector<PartitionLag>& lags) {
  std::map<std::pair<std::string, int32_t>, PartitionLag> out;
  for (const auto& l : lags) out[{l.topic, l.partition}] = l;
  return out;
}

TEST(ConsumerStatsTest, ParsesTheLagOfPartitionsWithACommittedOffsetOnly) {
  auto lags = ParseConsumerLag(testing::ReadFileOrDie(testing::DataFile("rdkafka-consumer-stats.json")));
  ASSERT_TRUE(lags.ok()) << lags.status().ToString();
  auto by = ByPartition(*lags);
  // fax.jobs 0 and 1, fax.control 0; not fax.jobs 2 (no committed offset) nor the -1 partitions.
  ASSERT_EQ(by.size(), 3u);
  const auto& p0 = by.at({"fax.jobs", 0});
  EXPECT_EQ(p0.consumer_lag, 20);
  EXPECT_EQ(p0.consumer_lag_stored, 5);
  EXPECT_EQ(p0.committed_offset, 100);
  EXPECT_EQ(p0.hi_offset, 122);
  EXPECT_EQ(p0.ls_offset, 120);  // read_committed: the lag is measured against it
  EXPECT_EQ(by.at({"fax.jobs", 1}).consumer_lag, 0);
  EXPECT_EQ(by.at({"fax.control", 0}).consumer_lag, 3);
  EXPECT_EQ(by.count({"fax.jobs", 2}), 0u);
  EXPECT_EQ(by.count({"fax.jobs", -1}), 0u);
}

TEST(ConsumerStatsTest, RejectsWhatIsNotAStatisticsObjectAndToleratesMissingParts) {
  EXPECT_FALSE(ParseConsumerLag("not json").ok());
  EXPECT_FALSE(ParseConsumerLag("[1,2]").ok());
  EXPECT_FALSE(ParseConsumerLag(R"({"topics": 3})").ok());
  auto none = ParseConsumerLag(R"({"name": "c", "type": "consumer"})");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  // Odd entries are skipped, not fatal.
  auto odd = ParseConsumerLag(
      R"({"topics": {"t": {"partitions": {"0": {"partition": 0, "consumer_lag": "x"}, "1": 5,
          "2": {"partition": 2, "consumer_lag": 7}}}}})");
  ASSERT_TRUE(odd.ok());
  ASSERT_EQ(odd->size(), 1u);
  EXPECT_EQ(odd->at(0).topic, "t");  // from the key when "topic" is missing
  EXPECT_EQ(odd->at(0).consumer_lag, 7);
}

TEST(ConsumerStatsTest, BoardSumsAssignedPartitionsPerTopicAndGroupOverConsumers) {
  auto lags = ParseConsumerLag(testing::ReadFileOrDie(testing::DataFile("rdkafka-consumer-stats.json")));
  ASSERT_TRUE(lags.ok());
  ConsumerLagBoard board;
  EXPECT_FALSE(board.Lag("fax.jobs", "faxflow-modem").has_value());
  // Consumer 1 holds fax.jobs 0 and fax.control 0 (librdkafka still lists fax.jobs 1, which
  // another consumer took: it must not count twice).
  board.Update(1, "faxflow-modem", *lags, {{"fax.jobs", 0}, {"fax.control", 0}});
  EXPECT_EQ(board.Lag("fax.jobs", "faxflow-modem"), 20);
  EXPECT_EQ(board.Lag("fax.control", "faxflow-modem"), 3);
  EXPECT_FALSE(board.Lag("fax.jobs", "other-group").has_value());
  // Consumer 2 of the same group holds fax.jobs 1 (lag 4 in its own statistics).
  PartitionLag p1;
  p1.topic = "fax.jobs";
  p1.partition = 1;
  p1.consumer_lag = 4;
  board.Update(2, "faxflow-modem", {p1}, {{"fax.jobs", 1}});
  EXPECT_EQ(board.Lag("fax.jobs", "faxflow-modem"), 24);
  // A newer report replaces the older one; a closed consumer no longer counts.
  p1.consumer_lag = 0;
  board.Update(2, "faxflow-modem", {p1}, {{"fax.jobs", 1}});
  EXPECT_EQ(board.Lag("fax.jobs", "faxflow-modem"), 20);
  board.Forget(1);
  EXPECT_EQ(board.Lag("fax.jobs", "faxflow-modem"), 0);
  EXPECT_FALSE(board.Lag("fax.control", "faxflow-modem").has_value());
}

}  // namespace
}  // namespace faxflow::bus
