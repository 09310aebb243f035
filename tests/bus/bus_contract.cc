#include "tests/bus/bus_contract.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "topics/catalogue.h"

namespace faxflow::bus::contract {
namespace {

const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

#define CT_ASSERT_OK(expr)                                                   \
  do {                                                                       \
    const auto& ct_r_ = (expr);                                              \
    ASSERT_TRUE(StatusOf(ct_r_).ok()) << #expr << ": " << StatusOf(ct_r_).ToString(); \
  } while (0)
#define CT_EXPECT_OK(expr)                                                   \
  do {                                                                       \
    const auto& ct_r_ = (expr);                                              \
    EXPECT_TRUE(StatusOf(ct_r_).ok()) << #expr << ": " << StatusOf(ct_r_).ToString(); \
  } while (0)
#define CT_ASSIGN_OR_FAIL(lhs, expr) CT_ASSIGN_OR_FAIL_IMPL(FF_CONCAT(ct_res_, __LINE__), lhs, expr)
#define CT_ASSIGN_OR_FAIL_IMPL(tmp, lhs, expr)                    \
  auto tmp = (expr);                                              \
  ASSERT_TRUE(tmp.ok()) << #expr << ": " << tmp.status().ToString(); \
  lhs = std::move(tmp).value()

Message Msg(const std::string& topic, const std::string& key, const std::string& value,
            std::optional<int32_t> partition = std::nullopt) {
  Message m;
  m.topic = topic;
  m.key = key;
  m.value = value;
  m.partition = partition;
  return m;
}

std::vector<std::string> Values(const std::vector<Record>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(r.value);
  return out;
}

std::string RandomHex() {
  std::random_device rd;
  std::mt19937_64 gen(rd());
  char buf[17];
  snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(gen()));
  return std::string(buf, 8);
}

}  // namespace

std::string BusFactoryName(const ::testing::TestParamInfo<BusFactory>& info) { return info.param.name; }

void PrintTo(const BusFactory& factory, std::ostream* os) { *os << factory.name; }

void BusContract::SetUp() {
  std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  for (char& c : test)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '-';
  prefix_ = "ct-" + test + "-" + RandomHex();
  instance_ = prefix_;
  ASSERT_TRUE(GetParam().open) << "BusFactory.open is not set";
  auto bus = GetParam().open(instance_);
  ASSERT_TRUE(bus.ok()) << bus.status().ToString();
  bus_ = std::move(bus).value();
}

void BusContract::TearDown() {
  bus_.reset();
  if (GetParam().cleanup) GetParam().cleanup(instance_);
}

void BusContract::Restart() {
  bus_.reset();
  auto bus = GetParam().open(instance_);
  ASSERT_TRUE(bus.ok()) << bus.status().ToString();
  bus_ = std::move(bus).value();
}

std::string BusContract::Name(const std::string& what) const { return prefix_ + "." + what; }

std::string BusContract::MakeTopic(const std::string& what, int32_t partitions) {
  TopicSpec spec;
  spec.name = Name(what);
  spec.partitions = partitions;
  spec.doc = "bus contract test";
  Status s = bus_->EnsureTopics({spec});
  EXPECT_TRUE(s.ok()) << s.ToString();
  return spec.name;
}

std::unique_ptr<Producer> BusContract::NewProducer() {
  auto p = bus_->NewProducer(prefix_ + "-producer");
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? std::move(p).value() : nullptr;
}

std::unique_ptr<Consumer> BusContract::NewConsumer(const std::string& group, bool read_committed) {
  ConsumerOptions options;
  options.group = group;
  options.client_id = prefix_ + "-consumer";
  options.read_committed = read_committed;
  auto c = bus_->NewConsumer(options);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? std::move(c).value() : nullptr;
}

std::vector<Record> BusContract::PollUntil(Consumer& consumer,
                                           const std::function<bool(const std::vector<Record>&)>& done) {
  std::vector<Record> all;
  const auto deadline = std::chrono::steady_clock::now() + patience();
  while (!done(all)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ADD_FAILURE() << "condition not reached within " << patience().count() << " ms; got " << all.size()
                    << " records";
      break;
    }
    auto batch = consumer.Poll(std::chrono::milliseconds(200), 500);
    if (!batch.ok()) {
      ADD_FAILURE() << "Poll: " << batch.status().ToString();
      break;
    }
    for (auto& r : *batch) all.push_back(std::move(r));
  }
  return all;
}

std::vector<Record> BusContract::PollCount(Consumer& consumer, size_t count) {
  return PollUntil(consumer, [count](const std::vector<Record>& all) { return all.size() >= count; });
}

std::vector<Record> BusContract::PollFor(Consumer& consumer, std::chrono::milliseconds quiet) {
  std::vector<Record> all;
  const auto deadline = std::chrono::steady_clock::now() + quiet;
  while (std::chrono::steady_clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    auto batch = consumer.Poll(std::max(left, std::chrono::milliseconds(1)), 500);
    if (!batch.ok()) {
      ADD_FAILURE() << "Poll: " << batch.status().ToString();
      break;
    }
    for (auto& r : *batch) all.push_back(std::move(r));
  }
  return all;
}

// ---------------------------------------------------------------------------------------------

TEST_P(BusContract, RoundTripKeepsKeyBinaryValueAndHeaders) {
  const std::string topic = MakeTopic("rt", 1);
  auto producer = NewProducer();
  ASSERT_NE(producer, nullptr);

  Message m = Msg(topic, std::string("fax\0id", 6), std::string("bin\0ary\xff\x00\x01 end", 14));
  m.headers = {{"faxflow-schema", "faxflow.v1.Submission"},
               {"bin", std::string("\0\x01\x02", 3)},
               {"dup", "first"},
               {"dup", "second"}};
  Message big = Msg(topic, "big", std::string(200 * 1024, '\0'));
  for (size_t i = 0; i < big.value.size(); i += 7) big.value[i] = static_cast<char>(i % 251);
  Message empty = Msg(topic, "", "");

  const int64_t before_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch()).count();
  CT_ASSIGN_OR_FAIL(Position p1, producer->Produce(m));
  CT_ASSIGN_OR_FAIL(Position p2, producer->Produce(big));
  CT_ASSIGN_OR_FAIL(Position p3, producer->Produce(empty));
  const int64_t after_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_EQ(p1.partition, 0);
  EXPECT_LT(p1.offset, p2.offset);
  EXPECT_LT(p2.offset, p3.offset);

  auto consumer = NewConsumer(Name("g"));
  ASSERT_NE(consumer, nullptr);
  CT_ASSERT_OK(consumer->Assign({{topic, 0}}));
  auto records = PollCount(*consumer, 3);
  ASSERT_EQ(records.size(), 3u);

  const Record& r = records[0];
  EXPECT_EQ(r.topic, topic);
  EXPECT_EQ(r.partition, p1.partition);
  EXPECT_EQ(r.offset, p1.offset);
  EXPECT_EQ(r.key, m.key);
  EXPECT_EQ(r.value, m.value);
  EXPECT_EQ(r.headers, m.headers);
  ASSERT_NE(r.header("bin"), nullptr);
  EXPECT_EQ(*r.header("bin"), std::string("\0\x01\x02", 3));
  EXPECT_EQ(r.header("missing"), nullptr);
  EXPECT_GE(r.timestamp_ms, before_ms - 60'000);
  EXPECT_LE(r.timestamp_ms, after_ms + 60'000);

  EXPECT_EQ(records[1].offset, p2.offset);
  EXPECT_EQ(records[1].key, "big");
  EXPECT_EQ(records[1].value, big.value);
  EXPECT_TRUE(records[1].headers.empty());
  EXPECT_EQ(records[2].offset, p3.offset);
  EXPECT_EQ(records[2].key, "");
  EXPECT_EQ(records[2].value, "");
}

TEST_P(BusContract, PerKeyOrderIsKeptAcrossManyRecordsAndPartitions) {
  const int32_t partitions = 3;
  const std::string topic = MakeTopic("order", partitions);
  auto producer = NewProducer();
  ASSERT_NE(producer, nullptr);
  const int keys = 12, per_key = 25;
  std::vector<Message> batch;
  for (int seq = 0; seq < per_key; ++seq) {
    for (int k = 0; k < keys; ++k) {
      Message m = Msg(topic, "key-" + std::to_string(k), std::to_string(seq));
      if (seq % 5 == 0) {
        if (!batch.empty()) {  // keep the producer's order: flush what came before
          CT_ASSERT_OK(producer->ProduceBatch(batch));
          batch.clear();
        }
        CT_ASSERT_OK(producer->Produce(m));  // mix single produces with batches
      } else {
        batch.push_back(std::move(m));
      }
    }
    if (batch.size() >= 30) {
      CT_ASSERT_OK(producer->ProduceBatch(batch));
      batch.clear();
    }
  }
  CT_ASSERT_OK(producer->ProduceBatch(batch));

  auto consumer = NewConsumer(Name("g"));
  ASSERT_NE(consumer, nullptr);
  CT_ASSIGN_OR_FAIL(auto all_partitions, AllPartitions(bus(), topic));
  CT_ASSERT_OK(consumer->Assign(all_partitions));
  auto records = PollCount(*consumer, static_cast<size_t>(keys * per_key));
  ASSERT_EQ(records.size(), static_cast<size_t>(keys * per_key));

  std::map<std::string, int> next_seq;
  std::map<int32_t, int64_t> last_offset;
  std::set<int32_t> used;
  for (const auto& r : records) {
    EXPECT_EQ(r.partition, PartitionForKey(r.key, partitions)) << r.key;
    used.insert(r.partition);
    EXPECT_EQ(std::stoi(r.value), next_seq[r.key]) << "key " << r.key << " out of order";
    next_seq[r.key] = std::stoi(r.value) + 1;
    if (last_offset.count(r.partition)) {
      EXPECT_GT(r.offset, last_offset[r.partition]);
    }
    last_offset[r.partition] = r.offset;
  }
  for (int k = 0; k < keys; ++k) EXPECT_EQ(next_seq["key-" + std::to_string(k)], per_key);
  EXPECT_GE(used.size(), 2u) << "12 keys should spread over more than one partition";
}

TEST_P(BusContract, RecordsWithoutPartitionLandOnPartitionForKey) {
  const int32_t partitions = 4;
  const std::string topic = MakeTopic("placement", partitions);
  auto producer = NewProducer();
  ASSERT_NE(producer, nullptr);
  std::map<std::string, int32_t> where;
  for (int i = 0; i < 40; ++i) {
    std::string key = "+4930" + std::to_string(1000 + i * 37);
    CT_ASSIGN_OR_FAIL(Position pos, producer->Produce(Msg(topic, key, "v")));
    EXPECT_EQ(pos.partition, PartitionForKey(key, partitions)) << key;
    where[key] = pos.partition;
  }
  std::set<int32_t> distinct;
  for (const auto& [key, p] : where) distinct.insert(p);
  EXPECT_GE(distinct.size(), 3u);

  auto consumer = NewConsumer(Name("g"));
  ASSERT_NE(consumer, nullptr);
  CT_ASSIGN_OR_FAIL(auto all_partitions, AllPartitions(bus(), topic));
  CT_ASSERT_OK(consumer->Assign(all_partitions));
  auto records = PollCount(*consumer, where.size());
  ASSERT_EQ(records.size(), where.size());
  for (const auto& r : records) EXPECT_EQ(r.partition, where[r.key]) << r.key;
}

TEST_P(BusContract, ExplicitPartitionOverridesTheKey) {
  const std::string topic = MakeTopic("explicit", 3);
  std::string key;
  for (int i = 0; key.empty(); ++i)
    if (PartitionForKey("k" + std::to_string(i), 3) != 2) key = "k" + std::to_string(i);
  auto producer = NewProducer();
  ASSERT_NE(producer, nullptr);
  CT_ASSIGN_OR_FAIL(Position pos, producer->Produce(Msg(topic, key, "to-two", 2)));
  EXPECT_EQ(pos.partition, 2);
  EXPECT_FALSE(producer->Produce(Msg(topic, key, "nowhere", 3)).ok()) << "partition 3 of 3 does not exist";
  EXPECT_FALSE(producer->Produce(Msg(topic, key, "nowhere", -1)).ok());

  auto consumer = NewConsumer(Name("g"));
  ASSERT_NE(consumer, nullptr);
  CT_ASSERT_OK(consumer->Assign({{topic, 2}}));
  auto records = PollCount(*consumer, 1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].partition, 2);
  EXPECT_EQ(records[0].key, key);
  EXPECT_EQ(records[0].value, "to-two");
  // Nothing was written elsewhere.
  CT_ASSERT_OK(consumer->Assign({{topic, 0}, {topic, 1}}));
  EXPECT_TRUE(PollFor(*consumer, std::chrono::milliseconds(500)).empty());
}

TEST_P(BusContract, NewConsumerOfTheGroupResumesAfterTheCommittedOffset) {
  const std::string topic = MakeTopic("resume", 1);
  const std::string group = Name("g");
  const TopicPartition tp{topic, 0};
  auto producer = NewProducer();
  ASSERT_NE(producer, nullptr);
  for (int i = 0; i < 10; ++i) CT_ASSERT_OK(producer->Produce(Msg(topic, "k", "v" + std::to_string(i))));

  int64_t committed = 0;
  {
    auto c1 = NewConsumer(group);
    ASSERT_NE(c1, nullptr);
    CT_ASSERT_OK(c1->Assign({tp}));
    auto records = PollCount(*c1, 10);
    ASSERT_EQ(records.size(), 10u);
    CT_ASSIGN_OR_FAIL(auto before, c1->Committed(tp));
    EXPECT_FALSE(before.has_value());
    committed = records[4].offset + 1;
    CT_ASSERT_OK(c1->Commit({{tp, committed}}));
    CT_ASSIGN_OR_FAIL(auto after, c1->Committed(tp));
    ASSERT_TRUE(after.has_value());
    EXPECT_EQ(*after, committed);
  }
  auto c2 = NewConsumer(group);
  ASSERT_NE(c2, nullptr);
  CT_ASSERT_OK(c2->Assign({tp}));
  auto records = PollCount(*c2, 5);
  ASSERT_EQ(records.size(), 5u);
  EXPECT_EQ(records[0].offset, committed);
  EXPECT_EQ(Values(records), (std::vector<std::string>{"v5", "v6", "v7", "v8", "v9"}));
  EXPECT_TRUE(PollFor(*c2, std::chrono::milliseconds(300)).empty());
}

TEST_P(BusContract, UncommittedRecordsAreRedeliveredAfterRestart) {
  const std::string topic = MakeTopic("redeliver", 1);
  const std::string group = Name("g");
  const TopicPartition tp{topic, 0};
  {
    auto producer = NewProducer();
    ASSERT_NE(producer, nullptr);
    for (int i = 0; i < 6; ++i) CT_ASSERT_OK(producer->Produce(Msg(topic, "k", "v" + std::to_string(i))));
    auto c1 = NewConsumer(group);
    ASSERT_NE(c1, nullptr);
    CT_ASSERT_OK(c1->Assign({tp}));
    auto records = PollCount(*c1, 6);
    ASSERT_EQ(records.size(), 6u);
    CT_ASSERT_OK(c1->Commit({{tp, records[1].offset + 1}}));  // v2.. were seen but not committed
  }
  Restart();
  auto c2 = NewConsumer(group);
  ASSERT_NE(c2, nullptr);
  CT_ASSERT_OK(c2->Assign({tp}));
  auto records = PollCount(*c2, 4);
  EXPECT_EQ(Values(records), (std::vector<std::string>{"v2", "v3", "v4", "v5"}));
}

TEST_P(BusContract, SeekMovesTheReadPosition) {
  const std::string topic = MakeTopic("seek", 2);
  const TopicPartition tp{topic, 1};
  auto producer = NewProducer();
  ASSERT_NE(producer, nullptr);
  for (int i = 0; i < 8; ++i) CT_ASSERT_OK(producer->Produce(Msg(topic, "k", "v" + std::to_string(i), 1)));
  auto consumer = NewConsumer(Name("g"));
  ASSERT_NE(consumer, nullptr);
  CT_ASSERT_OK(consumer->Assign({tp}));
  auto records = PollCount(*consumer, 8);
  ASSERT_EQ(records.size(), 8u);

  CT_ASSERT_OK(consumer->Seek(tp, records[3].offset));  // back
  auto again = PollCount(*consumer, 5);
  EXPECT_EQ(Values(again), (std::vector<std::string>{"v3", "v4", "v5", "v6", "v7"}));

  CT_ASSERT_OK(consumer->Seek(tp, records[1].offset));
  CT_ASSERT_OK(consumer->Seek(tp, records[6].offset));  // the last seek wins
  auto tail = PollCount(*consumer, 2);
  EXPECT_EQ(Values(tail), (std::vector<std::string>{"v6", "v7"}));

  EXPECT_FALSE(consumer->Seek({topic, 0}, 0).ok()) << "partition 0 is not assigned";
}

TEST_P(BusContract, PausedPartitionsYieldNothingUntilResumed) {
  const std::string topic = MakeTopic("pause", 2);
  const TopicPartition p0{topic, 0}, p1{topic, 1};
  auto consumer = NewConsumer(Name("g"));
  ASSERT_NE(consumer, nullptr);
  CT_ASSERT_OK(consumer->Assign({p0, p1}));
  CT_ASSERT_OK(consumer->Pause({p0}));
  auto producer = NewProducer();
  ASSERT_NE(producer, nullptr);
  for (int i = 0; i < 5; ++i) {
    CT_ASSERT_OK(producer->Produce(Msg(topic, "k", "a" + std::to_string(i), 0)));
    CT_ASSERT_OK(producer->Produce(Msg(topic, "k", "b" + std::to_string(i), 1)));
  }
  auto seen = PollCount(*consumer, 5);
  auto more = PollFor(*consumer, std::chrono::milliseconds(1000));
  seen.insert(seen.end(), more.begin(), more.end());
  ASSERT_EQ(seen.size(), 5u);
  for (const auto& r : seen) EXPECT_EQ(r.partition, 1) << "record " << r.value << " of a paused partition";
  EXPECT_EQ(consumer->Assignment().size(), 2u) << "paused partitions stay assigned";

  CT_ASSERT_OK(consumer->Resume({p0}));
  auto resumed = PollCount(*consumer, 5);
  EXPECT_EQ(Values(resumed), (std::vector<std::string>{"a0", "a1", "a2", "a3", "a4"}));
}

TEST_P(BusContract, EndOffsetIsTheNextOffsetToBeWritten) {
  const std::string topic = MakeTopic("end", 2);
  auto consumer = NewConsumer(Name("g"));
  ASSERT_NE(consumer, nullptr);
  CT_ASSIGN_OR_FAIL(int64_t empty_end, consumer->EndOffset({topic, 0}));
  EXPECT_EQ(empty_end, 0);
  auto producer = NewProducer();
  ASSERT_NE(producer, nullptr);
  Position last;
  for (int i = 0; i < 5; ++i) {
    CT_ASSIGN_OR_FAIL(last, producer->Produce(Msg(topic, "k", "v", 0)));
  }
  int64_t end = -1;
  const auto deadline = std::chrono::steady_clock::now() + patience();
  while (std::chrono::steady_clock::now() < deadline) {
    CT_ASSIGN_OR_FAIL(end, consumer->EndOffset({topic, 0}));
    if (end == last.offset + 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(end, last.offset + 1);
  CT_ASSIGN_OR_FAIL(int64_t other, consumer->EndOffset({topic, 1}));
  EXPECT_EQ(other, 0);
  EXPECT_FALSE(consumer->EndOffset({Name("missing"), 0}).ok());
}

TEST_P(BusContract, TwoGroupsKeepIndependentOffsets) {
  const std::string topic = MakeTopic("groups", 1);
  const TopicPartition tp{topic, 0};
  auto producer = NewProducer();
  ASSERT_NE(producer, nullptr);
  std::vector<Position> pos;
  for (int i = 0; i < 10; ++i) {
    CT_ASSIGN_OR_FAIL(Position p, producer->Produce(Msg(topic, "k", "v" + std::to_string(i))));
    pos.push_back(p);
  }
  {
    auto a = NewConsumer(Name("ga"));
    auto b = NewConsumer(Name("gb"));
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    CT_ASSERT_OK(a->Commit({{tp, pos[3].offset}}));
    CT_ASSERT_OK(b->Commit({{tp, pos[7].offset}}));
    CT_ASSIGN_OR_FAIL(auto ca, a->Committed(tp));
    CT_ASSIGN_OR_FAIL(auto cb, b->Committed(tp));
    EXPECT_EQ(ca, std::optional<int64_t>(pos[3].offset));
    EXPECT_EQ(cb, std::optional<int64_t>(pos[7].offset));
  }
  auto a2 = NewConsumer(Name("ga"));
  auto b2 = NewConsumer(Name("gb"));
  auto c2 = NewConsumer(Name("gc"));
  ASSERT_NE(a2, nullptr);
  ASSERT_NE(b2, nullptr);
  ASSERT_NE(c2, nullptr);
  CT_ASSERT_OK(a2->Assign({tp}));
  CT_ASSERT_OK(b2->Assign({tp}));
  CT_ASSERT_OK(c2->Assign({tp}));
  auto ra = PollCount(*a2, 7);
  auto rb = PollCount(*b2, 3);
  auto rc = PollCount(*c2, 10);
  ASSERT_FALSE(ra.empty());
  ASSERT_FALSE(rb.empty());
  ASSERT_FALSE(rc.empty());
  EXPECT_EQ(ra.front().value, "v3");
  EXPECT_EQ(rb.front().value, "v7");
  EXPECT_EQ(rc.front().value, "v0") << "a group without a commit starts at the earliest offset";
  CT_ASSIGN_OR_FAIL(auto cc, c2->Committed(tp));
  EXPECT_FALSE(cc.has_value());
}

TEST_P(BusContract, CommittedTransactionPublishesRecordsAndOffsetsTogether) {
  const std::string in = MakeTopic("tx-in", 1);
  const std::string out = MakeTopic("tx-out", 2);
  const std::string group = Name("g");
  const TopicPartition in_tp{in, 0};
  auto producer = NewProducer();
  ASSERT_NE(producer, nullptr);
  for (int i = 0; i < 3; ++i) CT_ASSERT_OK(producer->Produce(Msg(in, "k", "in" + std::to_string(i))));
  auto input = NewConsumer(group);
  ASSERT_NE(input, nullptr);
  CT_ASSERT_OK(input->Assign({in_tp}));
  auto consumed = PollCount(*input, 3);
  ASSERT_EQ(consumed.size(), 3u);

  CT_ASSIGN_OR_FAIL(auto tx, bus().NewTransactionalProducer(Name("tx")));
  EXPECT_EQ(tx->transactional_id(), Name("tx"));
  CT_ASSERT_OK(tx->Begin());
  for (int i = 0; i < 4; ++i) CT_ASSERT_OK(tx->Send(Msg(out, "key" + std::to_string(i), "out" + std::to_string(i))));
  CT_ASSERT_OK(tx->SendOffsets(group, {{in_tp, consumed.back().offset + 1}}));

  auto observer = NewConsumer(Name("observer"), /*read_committed=*/true);
  ASSERT_NE(observer, nullptr);
  CT_ASSIGN_OR_FAIL(auto out_partitions, AllPartitions(bus(), out));
  CT_ASSERT_OK(observer->Assign(out_partitions));
  EXPECT_TRUE(PollFor(*observer, std::chrono::milliseconds(1000)).empty()) << "open transaction is visible";
  CT_ASSIGN_OR_FAIL(auto before, input->Committed(in_tp));
  EXPECT_FALSE(before.has_value()) << "offsets of an open transaction are visible";

  CT_ASSERT_OK(tx->Commit());
  auto records = PollCount(*observer, 4);
  std::set<std::string> values;
  for (const auto& r : records) values.insert(r.value);
  EXPECT_EQ(values, (std::set<std::string>{"out0", "out1", "out2", "out3"}));
  for (const auto& r : records) EXPECT_EQ(r.partition, PartitionForKey(r.key, 2));
  std::optional<int64_t> after;
  const auto deadline = std::chrono::steady_clock::now() + patience();
  do {
    CT_ASSIGN_OR_FAIL(after, input->Committed(in_tp));
  } while (after != consumed.back().offset + 1 && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(after, std::optional<int64_t>(consumed.back().offset + 1));
}

TEST_P(BusContract, AbortedTransactionIsInvisibleAndDoesNotMoveOffsets) {
  const std::string in = MakeTopic("abort-in", 1);
  const std::string out = MakeTopic("abort-out", 1);
  const std::string group = Name("g");
  const TopicPartition in_tp{in, 0};
  auto producer = NewProducer();
  ASSERT_NE(producer, nullptr);
  CT_ASSERT_OK(producer->Produce(Msg(in, "k", "in0")));

  CT_ASSIGN_OR_FAIL(auto tx, bus().NewTransactionalProducer(Name("tx")));
  CT_ASSERT_OK(tx->Begin());
  for (int i = 0; i < 3; ++i) CT_ASSERT_OK(tx->Send(Msg(out, "k", "aborted" + std::to_string(i))));
  CT_ASSERT_OK(tx->SendOffsets(group, {{in_tp, 1}}));
  CT_ASSERT_OK(tx->Abort());
  // The producer is usable again; a committed marker after the aborted records.
  CT_ASSERT_OK(tx->Begin());
  CT_ASSERT_OK(tx->Send(Msg(out, "k", "committed")));
  CT_ASSERT_OK(tx->Commit());

  auto observer = NewConsumer(Name("observer"), /*read_committed=*/true);
  ASSERT_NE(observer, nullptr);
  CT_ASSERT_OK(observer->Assign({{out, 0}}));
  auto records = PollUntil(*observer, [](const std::vector<Record>& all) {
    return std::any_of(all.begin(), all.end(), [](const Record& r) { return r.value == "committed"; });
  });
  auto more = PollFor(*observer, std::chrono::milliseconds(300));
  records.insert(records.end(), more.begin(), more.end());
  EXPECT_EQ(Values(records), (std::vector<std::string>{"committed"}));

  auto input = NewConsumer(group);
  ASSERT_NE(input, nullptr);
  CT_ASSIGN_OR_FAIL(auto committed, input->Committed(in_tp));
  EXPECT_FALSE(committed.has_value()) << "offsets of an aborted transaction were stored";
}

TEST_P(BusContract, NewerTransactionalProducerFencesTheOlderOne) {
  const std::string out = MakeTopic("fence", 1);
  const std::string id = Name("tx");
  CT_ASSIGN_OR_FAIL(auto first, bus().NewTransactionalProducer(id));
  CT_ASSERT_OK(first->Begin());
  CT_ASSERT_OK(first->Send(Msg(out, "k", "from-first")));

  CT_ASSIGN_OR_FAIL(auto second, bus().NewTransactionalProducer(id));
  Status fenced = first->Commit();
  EXPECT_EQ(fenced.code(), Code::kFenced) << fenced.ToString();
  EXPECT_TRUE(fenced.fatal()) << fenced.ToString();

  CT_ASSERT_OK(second->Begin());
  CT_ASSERT_OK(second->Send(Msg(out, "k", "from-second")));
  CT_ASSERT_OK(second->Commit());

  auto observer = NewConsumer(Name("observer"), /*read_committed=*/true);
  ASSERT_NE(observer, nullptr);
  CT_ASSERT_OK(observer->Assign({{out, 0}}));
  auto records = PollUntil(*observer, [](const std::vector<Record>& all) {
    return std::any_of(all.begin(), all.end(), [](const Record& r) { return r.value == "from-second"; });
  });
  auto more = PollFor(*observer, std::chrono::milliseconds(300));
  records.insert(records.end(), more.begin(), more.end());
  EXPECT_EQ(Values(records), (std::vector<std::string>{"from-second"}));
}

TEST_P(BusContract, EnsureTopicsIsIdempotentAndRejectsIncompatibleTopics) {
  TopicSpec spec;
  spec.name = Name("ensure");
  spec.partitions = 3;
  CT_ASSERT_OK(bus().EnsureTopics({spec}));
  CT_ASSERT_OK(bus().EnsureTopics({spec}));
  CT_ASSIGN_OR_FAIL(int32_t n, bus().PartitionCount(spec.name));
  EXPECT_EQ(n, 3);

  TopicSpec other = spec;
  other.name = Name("ensure-2");
  other.partitions = 2;
  CT_ASSERT_OK(bus().EnsureTopics({spec, other}));  // existing + new in one call
  CT_ASSIGN_OR_FAIL(int32_t n2, bus().PartitionCount(other.name));
  EXPECT_EQ(n2, 2);

  TopicSpec changed = spec;
  changed.partitions = 5;
  Status s = bus().EnsureTopics({changed});
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.ToString();
  EXPECT_FALSE(s.message().empty());
  CT_ASSIGN_OR_FAIL(int32_t still, bus().PartitionCount(spec.name));
  EXPECT_EQ(still, 3);
}

TEST_P(BusContract, UnknownTopicsAreErrors) {
  const std::string missing = Name("missing");
  auto count = bus().PartitionCount(missing);
  ASSERT_FALSE(count.ok());
  EXPECT_EQ(count.status().code(), Code::kNotFound) << count.status().ToString();
  EXPECT_FALSE(AllPartitions(bus(), missing).ok());
  auto producer = NewProducer();
  ASSERT_NE(producer, nullptr);
  EXPECT_FALSE(producer->Produce(Msg(missing, "k", "v")).ok());
}

}  // namespace faxflow::bus::contract
