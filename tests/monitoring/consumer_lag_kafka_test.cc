// faxflow_bus_consumer_lag on Kafka comes from librdkafka statistics and moves with the group's
// commits: against the shared broker (kafka_test_env.h), a consumer of a fresh topic and group
// commits what it read (lag 0), then N records are produced and read but not committed (lag N,
// as Bus::ReportedConsumerLag and as the lag monitor's gauge), then committed (lag 0 again).
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <map>

#include "common/metrics.h"
#include "tests/bus_kafka/kafka_test_env.h"
#include "tests/support/support.h"
#include "topics/catalogue.h"
#include "topics/kafka/kafka_bus.h"
#include "topics/lag_monitor.h"

FAXFLOW_KAFKA_TEST_ENVIRONMENT();

namespace faxflow::bus {
namespace {

using namespace std::chrono_literals;

TEST(ConsumerLagKafka, LagFromStatisticsMovesWithProducedAndCommittedRecords) {
  MetricsRegistry registry;
  KafkaBusOptions options = kafka_test::TestBusOptions();
  options.metrics = &registry;
  options.properties["statistics.interval.ms"] = "300";  // faster than the 5 s default
  auto opened = OpenKafkaBus(options);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Bus& bus = **opened;

  TopicSpec spec;
  spec.name = kafka_test::UniqueName("lag");
  spec.partitions = 2;
  ASSERT_TRUE(bus.EnsureTopics({spec}).ok());
  const std::string group = kafka_test::UniqueName("lag-group");
  auto producer = bus.NewProducer("lag-test");
  ASSERT_TRUE(producer.ok());
  auto consumer = bus.NewConsumer({group, "lag-test", /*read_committed=*/false});
  ASSERT_TRUE(consumer.ok());
  const std::vector<TopicPartition> tps = {{spec.name, 0}, {spec.name, 1}};
  ASSERT_TRUE((*consumer)->Assign(tps).ok());
  LagMonitor monitor(bus, {{spec.name, group}}, registry, 100ms);
  ASSERT_TRUE(monitor.Start().ok());

  auto produce = [&](int32_t partition, int n) {
    for (int i = 0; i < n; ++i) {
      Message m;
      m.topic = spec.name;
      m.key = "k";
      m.value = "v" + std::to_string(i);
      m.partition = partition;
      ASSERT_TRUE((*producer)->Produce(m).ok());
    }
  };
  std::map<int32_t, int64_t> next;  // next offset per partition, as read
  int read = 0;
  // Reading also serves the statistics callback (it runs inside the consumer's poll).
  auto poll = [&] {
    auto records = (*consumer)->Poll(50ms, 100);
    if (!records.ok()) return;
    for (const auto& r : *records) {
      next[r.partition] = r.offset + 1;
      ++read;
    }
  };
  auto commit_all = [&] {
    std::vector<TopicPartitionOffset> offsets;
    for (const auto& [p, o] : next) offsets.push_back({{spec.name, p}, o});
    ASSERT_TRUE((*consumer)->Commit(offsets).ok());
  };
  // The monitor's gauges, refreshed on its own thread every 100 ms.
  auto gauge = [&](const char* name) {
    return testing::MetricSum(SerializeMetrics(registry), name, {{"topic", spec.name}, {"group", group}});
  };
  auto await_gauges = [&](double want) {
    return testing::Await(
        [&] {
          poll();
          return gauge("faxflow_bus_consumer_lag") == want && gauge("faxflow_bus_queue_depth") == want;
        },
        30s, 10ms);
  };
  auto await_lag = [&](int64_t want) {
    return testing::Await(
        [&] {
          poll();
          return bus.ReportedConsumerLag(spec.name, group) == want;
        },
        60s, 10ms);
  };

  // One record per partition, read and committed: the consumer has a committed position, lag 0.
  produce(0, 1);
  produce(1, 1);
  ASSERT_TRUE(testing::Await(
      [&] {
        poll();
        return read == 2;
      },
      60s, 10ms));
  commit_all();
  ASSERT_TRUE(await_lag(0)) << bus.ReportedConsumerLag(spec.name, group).value_or(-1);
  EXPECT_TRUE(await_gauges(0)) << gauge("faxflow_bus_consumer_lag") << " "
                               << gauge("faxflow_bus_queue_depth");

  // N more, read but not committed: the group is N behind.
  produce(0, 5);
  produce(1, 2);
  ASSERT_TRUE(await_lag(7)) << bus.ReportedConsumerLag(spec.name, group).value_or(-1);
  EXPECT_EQ(read, 9);
  // The exported gauge, and the queue depth (end minus committed through the admin API) agree.
  EXPECT_TRUE(await_gauges(7)) << gauge("faxflow_bus_consumer_lag") << " "
                               << gauge("faxflow_bus_queue_depth");

  commit_all();
  ASSERT_TRUE(await_lag(0)) << bus.ReportedConsumerLag(spec.name, group).value_or(-1);
  EXPECT_TRUE(await_gauges(0)) << gauge("faxflow_bus_consumer_lag") << " "
                               << gauge("faxflow_bus_queue_depth");

  // A closed consumer no longer reports: the monitor falls back to end minus committed.
  consumer->reset();
  EXPECT_FALSE(bus.ReportedConsumerLag(spec.name, group).has_value());
}

}  // namespace
}  // namespace faxflow::bus
