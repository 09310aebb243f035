// Kafka-specific behaviour of the Kafka bus backend, against a real broker (see
// kafka_test_env.h). The backend-independent semantics are in the contract suite.
#include "topics/kafka/kafka_bus.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "common/metrics.h"
#include "tests/bus_kafka/kafka_test_env.h"
#include "topics/catalogue.h"

FAXFLOW_KAFKA_TEST_ENVIRONMENT();

namespace faxflow::bus {
namespace {

using kafka_test::TestBusOptions;
using kafka_test::UniqueName;
using namespace std::chrono_literals;

#define KT_ASSERT_OK(expr)                                        \
  do {                                                            \
    const Status kt_s_ = (expr);                                  \
    ASSERT_TRUE(kt_s_.ok()) << #expr << ": " << kt_s_.ToString(); \
  } while (0)
#define KT_ASSIGN_OR_FAIL(lhs, expr) KT_ASSIGN_OR_FAIL_IMPL(FF_CONCAT(kt_res_, __LINE__), lhs, expr)
#define KT_ASSIGN_OR_FAIL_IMPL(tmp, lhs, expr)                       \
  auto tmp = (expr);                                                 \
  ASSERT_TRUE(tmp.ok()) << #expr << ": " << tmp.status().ToString(); \
  lhs = std::move(tmp).value()

Message Msg(const std::string& topic, const std::string& key, std::string value,
            std::optional<int32_t> partition = std::nullopt) {
  Message m;
  m.topic = topic;
  m.key = key;
  m.value = std::move(value);
  m.partition = partition;
  return m;
}

class KafkaBusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KafkaBusOptions options = TestBusOptions();
    options.metrics = &registry_;
    auto bus = OpenKafkaBus(options);
    ASSERT_TRUE(bus.ok()) << bus.status().ToString();
    bus_ = std::move(bus).value();
  }

  std::string MakeTopic(const std::string& what, int32_t partitions, int32_t max_message_bytes = 1 << 20) {
    TopicSpec spec;
    spec.name = UniqueName(what);
    spec.partitions = partitions;
    spec.max_message_bytes = max_message_bytes;
    Status s = bus_->EnsureTopics({spec});
    EXPECT_TRUE(s.ok()) << s.ToString();
    return spec.name;
  }

  std::unique_ptr<Consumer> NewConsumer(const std::string& group, bool read_committed = true) {
    ConsumerOptions options;
    options.group = group;
    options.client_id = "kafka-bus-test";
    options.read_committed = read_committed;
    auto c = bus_->NewConsumer(options);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }

  // Polls until `count` records arrived or 60 s passed.
  std::vector<Record> PollCount(Consumer& consumer, size_t count) {
    std::vector<Record> all;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (all.size() < count && std::chrono::steady_clock::now() < deadline) {
      auto batch = consumer.Poll(200ms, 1000);
      if (!batch.ok()) {
        ADD_FAILURE() << batch.status().ToString();
        break;
      }
      for (auto& r : *batch) all.push_back(std::move(r));
    }
    return all;
  }

  MetricsRegistry registry_;
  std::unique_ptr<Bus> bus_;
};

TEST_F(KafkaBusTest, SixteenMegabyteRecordRoundTripsOnATopicThatAllowsIt) {
  const std::string topic = MakeTopic("large", 1, 20 << 20);
  auto producer = bus_->NewProducer("large");
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  std::string value(16 << 20, '\0');
  std::mt19937 gen(7);
  for (auto& c : value) c = static_cast<char>(gen());
  KT_ASSIGN_OR_FAIL(Position pos, (*producer)->Produce(Msg(topic, "fax-1", value)));

  auto consumer = NewConsumer(UniqueName("g"));
  ASSERT_NE(consumer, nullptr);
  KT_ASSERT_OK(consumer->Assign({{topic, 0}}));
  auto records = PollCount(*consumer, 1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].offset, pos.offset);
  EXPECT_EQ(records[0].value.size(), value.size());
  EXPECT_TRUE(records[0].value == value) << "16 MB payload changed in transit";
}

TEST_F(KafkaBusTest, RecordAboveTheTopicLimitIsAPermanentError) {
  const std::string topic = MakeTopic("limit", 1, 1 << 20);
  auto producer = bus_->NewProducer("limit");
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  auto r = (*producer)->Produce(Msg(topic, "k", std::string(2 << 20, 'x')));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kResourceExhausted) << r.status().ToString();
  EXPECT_TRUE(r.status().permanent()) << r.status().ToString();
  // The producer still works afterwards.
  auto small = (*producer)->Produce(Msg(topic, "k", "small"));
  EXPECT_TRUE(small.ok()) << small.status().ToString();
}

TEST_F(KafkaBusTest, EnsureTopicsNamesEveryDifferenceAndRejectsImpossibleReplication) {
  TopicSpec compacted;
  compacted.name = UniqueName("members");
  compacted.partitions = 2;
  compacted.compacted = true;
  KT_ASSERT_OK(bus_->EnsureTopics({compacted}));

  TopicSpec wrong = compacted;
  wrong.compacted = false;
  wrong.partitions = 4;
  wrong.max_message_bytes = 8 << 20;
  Status s = bus_->EnsureTopics({wrong});
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.ToString();
  EXPECT_TRUE(s.permanent());
  EXPECT_NE(s.message().find("cleanup.policy=compact"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("has 2 partitions, the catalogue wants 4"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("max.message.bytes"), std::string::npos) << s.message();

  TopicSpec impossible;
  impossible.name = UniqueName("rf");
  impossible.partitions = 1;
  impossible.replication_factor = 100;
  Status r = bus_->EnsureTopics({impossible});
  EXPECT_EQ(r.code(), Code::kInvalidArgument) << r.ToString();
  EXPECT_TRUE(r.permanent()) << r.ToString();
  EXPECT_EQ(bus_->PartitionCount(impossible.name).status().code(), Code::kNotFound);
}

TEST_F(KafkaBusTest, ReadCommittedEndOffsetStopsBeforeAnOpenTransaction) {
  const std::string topic = MakeTopic("lso", 1);
  auto producer = bus_->NewProducer("lso");
  ASSERT_TRUE(producer.ok());
  for (int i = 0; i < 3; ++i) KT_ASSERT_OK((*producer)->Produce(Msg(topic, "k", "plain")).status());

  KT_ASSIGN_OR_FAIL(auto tx, bus_->NewTransactionalProducer(UniqueName("tx")));
  KT_ASSERT_OK(tx->Begin());
  for (int i = 0; i < 2; ++i) KT_ASSERT_OK(tx->Send(Msg(topic, "k", "pending")));

  auto committed_view = NewConsumer(UniqueName("g"), true);
  auto uncommitted_view = NewConsumer(UniqueName("g"), false);
  ASSERT_NE(committed_view, nullptr);
  ASSERT_NE(uncommitted_view, nullptr);
  int64_t hw = 0;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (hw < 5 && std::chrono::steady_clock::now() < deadline) {  // the transaction's records land
    KT_ASSIGN_OR_FAIL(hw, uncommitted_view->EndOffset({topic, 0}));
    if (hw < 5) std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(hw, 5);
  KT_ASSIGN_OR_FAIL(int64_t lso, committed_view->EndOffset({topic, 0}));
  EXPECT_EQ(lso, 3) << "read_committed end offset must be the last stable offset";

  KT_ASSERT_OK(tx->Commit());
  // Commit markers reach the partition leader shortly after commit_transaction returns.
  int64_t after = 0;
  const auto stable_deadline = std::chrono::steady_clock::now() + 30s;
  while (after != 6 && std::chrono::steady_clock::now() < stable_deadline) {
    KT_ASSIGN_OR_FAIL(after, committed_view->EndOffset({topic, 0}));
    if (after != 6) std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(after, 6) << "2 records + the commit marker";
}

TEST_F(KafkaBusTest, FencedProducerStaysFencedAndTheNewOneWorks) {
  const std::string topic = MakeTopic("fence", 1);
  const std::string id = UniqueName("tx");
  KT_ASSIGN_OR_FAIL(auto first, bus_->NewTransactionalProducer(id));
  KT_ASSERT_OK(first->Begin());
  KT_ASSERT_OK(first->Send(Msg(topic, "k", "first-committed")));
  KT_ASSERT_OK(first->Commit());

  KT_ASSIGN_OR_FAIL(auto second, bus_->NewTransactionalProducer(id));
  // The zombie may fail at Begin, Send or Commit; it must end fenced and fatal.
  Status s = first->Begin();
  if (s.ok()) s = first->Send(Msg(topic, "k", "zombie"));
  if (s.ok()) s = first->Commit();
  EXPECT_EQ(s.code(), Code::kFenced) << s.ToString();
  EXPECT_TRUE(s.fatal()) << s.ToString();
  Status again = first->Begin();
  EXPECT_EQ(again.code(), Code::kFenced) << "a fenced producer stays unusable: " << again.ToString();

  KT_ASSERT_OK(second->Begin());
  KT_ASSERT_OK(second->Send(Msg(topic, "k", "second")));
  KT_ASSERT_OK(second->Commit());

  auto consumer = NewConsumer(UniqueName("g"));
  ASSERT_NE(consumer, nullptr);
  KT_ASSERT_OK(consumer->Assign({{topic, 0}}));
  auto records = PollCount(*consumer, 2);
  std::vector<std::string> values;
  for (const auto& r : records) values.push_back(r.value);
  EXPECT_EQ(values, (std::vector<std::string>{"first-committed", "second"}));
}

TEST_F(KafkaBusTest, CommitWithoutBeginIsAPermanentErrorAndTheProducerStaysUsable) {
  const std::string topic = MakeTopic("order", 1);
  KT_ASSIGN_OR_FAIL(auto tx, bus_->NewTransactionalProducer(UniqueName("tx")));
  Status s = tx->Commit();
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(s.fatal()) << s.ToString();
  KT_ASSERT_OK(tx->Begin());
  KT_ASSERT_OK(tx->Send(Msg(topic, "k", "v")));
  KT_ASSERT_OK(tx->Commit());
}

TEST_F(KafkaBusTest, AssignKeepsThePositionOfPartitionsThatStayAssigned) {
  const std::string topic = MakeTopic("keep", 2);
  auto producer = bus_->NewProducer("keep");
  ASSERT_TRUE(producer.ok());
  for (int i = 0; i < 6; ++i)
    KT_ASSERT_OK((*producer)->Produce(Msg(topic, "k", "a" + std::to_string(i), 0)).status());
  for (int i = 0; i < 2; ++i)
    KT_ASSERT_OK((*producer)->Produce(Msg(topic, "k", "b" + std::to_string(i), 1)).status());

  auto consumer = NewConsumer(UniqueName("g"));
  ASSERT_NE(consumer, nullptr);
  KT_ASSERT_OK(consumer->Assign({{topic, 0}}));
  auto first = PollCount(*consumer, 6);
  ASSERT_EQ(first.size(), 6u);
  KT_ASSERT_OK(consumer->Seek({topic, 0}, first[4].offset));  // position: a4
  KT_ASSERT_OK(consumer->Assign({{topic, 0}, {topic, 1}}));   // no commit exists
  auto next = PollCount(*consumer, 4);
  std::multiset<std::string> values;
  for (const auto& r : next) values.insert(r.value);
  EXPECT_EQ(values, (std::multiset<std::string>{"a4", "a5", "b0", "b1"}))
      << "partition 0 must continue at its position, not restart at the earliest offset";
  EXPECT_EQ(consumer->Assignment().size(), 2u);
}

TEST_F(KafkaBusTest, ConcurrentProducersLoseNothing) {
  const std::string topic = MakeTopic("concurrent", 3);
  auto producer = bus_->NewProducer("concurrent");
  ASSERT_TRUE(producer.ok());
  Producer& p = **producer;
  constexpr int kThreads = 4, kEach = 50;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<std::pair<int32_t, int64_t>> positions;
  std::map<std::string, std::pair<int32_t, int64_t>> produced;  // key -> where it was written
  const auto produce_start = std::chrono::steady_clock::now();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string key = "t" + std::to_string(t) + "-" + std::to_string(i);
        auto pos = p.Produce(Msg(topic, key, "v"));
        if (!pos.ok()) {
          ++failures;
          ADD_FAILURE() << key << ": " << pos.status().ToString();
          continue;
        }
        EXPECT_GE(pos->offset, 0) << key << ": a delivered record has an offset";
        std::lock_guard<std::mutex> lock(mu);
        positions.insert({pos->partition, pos->offset});
        produced[key] = {pos->partition, pos->offset};
      }
    });
  }
  for (auto& th : threads) th.join();
  const auto produce_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - produce_start)
          .count();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(positions.size(), static_cast<size_t>(kThreads * kEach)) << "two records at one position";

  auto consumer = NewConsumer(UniqueName("g"));
  ASSERT_NE(consumer, nullptr);
  KT_ASSIGN_OR_FAIL(auto all, AllPartitions(*bus_, topic));
  KT_ASSERT_OK(consumer->Assign(all));
  auto records = PollCount(*consumer, kThreads * kEach);
  std::set<std::string> keys;
  for (const auto& r : records) keys.insert(r.key);
  std::string missing;
  for (const auto& [key, pos] : produced) {
    if (!keys.contains(key))
      missing += " " + key + "@p" + std::to_string(pos.first) + ":" + std::to_string(pos.second);
  }
  EXPECT_EQ(keys.size(), static_cast<size_t>(kThreads * kEach))
      << records.size() << " records consumed; produced in " << produce_ms << " ms; missing:" << missing;
}

TEST_F(KafkaBusTest, MetricsCountRecordsCommitsAndTransactions) {
  const std::string topic = MakeTopic("metrics", 1);
  auto producer = bus_->NewProducer("metrics");
  ASSERT_TRUE(producer.ok());
  KT_ASSERT_OK((*producer)->ProduceBatch({Msg(topic, "a", "1"), Msg(topic, "b", "2"), Msg(topic, "c", "3")}));
  auto consumer = NewConsumer(UniqueName("g"));
  ASSERT_NE(consumer, nullptr);
  KT_ASSERT_OK(consumer->Assign({{topic, 0}}));
  auto records = PollCount(*consumer, 3);
  ASSERT_EQ(records.size(), 3u);
  KT_ASSERT_OK(consumer->Commit({{{topic, 0}, records.back().offset + 1}}));
  KT_ASSIGN_OR_FAIL(auto tx, bus_->NewTransactionalProducer(UniqueName("tx")));
  KT_ASSERT_OK(tx->Begin());
  KT_ASSERT_OK(tx->Send(Msg(topic, "k", "v")));
  KT_ASSERT_OK(tx->Abort());

  const std::string text = SerializeMetrics(registry_);
  EXPECT_NE(text.find("faxflow_kafka_produced_records_total{result=\"ok\"} 3"), std::string::npos) << text;
  EXPECT_NE(text.find("faxflow_kafka_consumed_records_total 3"), std::string::npos) << text;
  EXPECT_NE(text.find("faxflow_kafka_offset_commits_total{result=\"ok\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("faxflow_kafka_transactions_total{result=\"aborted\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("faxflow_kafka_produce_seconds_count 1"), std::string::npos) << text;
}

TEST_F(KafkaBusTest, ClientPropertiesArePassedToLibrdkafka) {
  KafkaBusOptions options = TestBusOptions();
  options.properties = {{"fetch.wait.max.ms", "20"}, {"socket.keepalive.enable", "true"}, {"linger.ms", "0"}};
  auto bus = OpenKafkaBus(options);
  ASSERT_TRUE(bus.ok()) << bus.status().ToString();
  const std::string topic = MakeTopic("props", 1);
  auto producer = (*bus)->NewProducer("props");
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();
  KT_ASSERT_OK((*producer)->Produce(Msg(topic, "k", "v")).status());

  options.properties = {{"security.protocol", "carrier-pigeon"}};
  auto bad = OpenKafkaBus(options);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("security.protocol"), std::string::npos) << bad.status().ToString();
}

}  // namespace
}  // namespace faxflow::bus
