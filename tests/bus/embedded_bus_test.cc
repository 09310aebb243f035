// Embedded-bus properties beyond the shared contract: nothing acknowledged is lost under
// kill -9, concurrent producers/consumers see every record exactly once with dense offsets,
// offsets survive reopen and trim, retention, the operations view, and the record codec.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "topics/embedded/codec.h"
#include "topics/embedded/embedded_bus.h"

extern char** environ;

namespace faxflow::bus {
namespace {

using namespace std::chrono_literals;

#define ASSERT_OK(expr)                                                       \
  do {                                                                        \
    const ::faxflow::Status ok_s_ = (expr);                                   \
    ASSERT_TRUE(ok_s_.ok()) << #expr << ": " << ok_s_.ToString();             \
  } while (0)
#define ASSERT_OK_AND_ASSIGN(lhs, expr) ASSERT_OK_AND_ASSIGN_IMPL(FF_CONCAT(res_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL(tmp, lhs, expr)                      \
  auto tmp = (expr);                                                   \
  ASSERT_TRUE(tmp.ok()) << #expr << ": " << tmp.status().ToString();   \
  lhs = std::move(tmp).value()

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "faxflow-bus-test-XXXXXX").string();
    char* made = mkdtemp(pattern.data());
    if (made != nullptr) path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  std::string path() const { return path_; }
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

TopicSpec Spec(const std::string& name, int32_t partitions) {
  TopicSpec s;
  s.name = name;
  s.partitions = partitions;
  return s;
}

Message Msg(const std::string& topic, const std::string& key, const std::string& value,
            std::optional<int32_t> partition = std::nullopt) {
  Message m;
  m.topic = topic;
  m.key = key;
  m.value = value;
  m.partition = partition;
  return m;
}

// Reads every record of a partition from the start.
std::vector<Record> ReadAll(Bus& bus, const TopicPartition& tp) {
  std::vector<Record> out;
  auto consumer = bus.NewConsumer({"", "reader", true});
  EXPECT_TRUE(consumer.ok());
  if (!consumer.ok()) return out;
  EXPECT_TRUE((*consumer)->Assign({tp}).ok());
  auto end = (*consumer)->EndOffset(tp);
  EXPECT_TRUE(end.ok());
  if (!end.ok()) return out;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((out.empty() || out.back().offset + 1 < *end) && std::chrono::steady_clock::now() < deadline) {
    auto batch = (*consumer)->Poll(100ms, 1000);
    EXPECT_TRUE(batch.ok()) << batch.status().ToString();
    if (!batch.ok()) break;
    if (batch->empty()) break;  // nothing more below the end (trimmed or empty)
    for (auto& r : *batch) out.push_back(std::move(r));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// kill -9 durability

struct Acks {
  std::map<int64_t, Position> produced;                  // seq -> where
  std::map<int32_t, int64_t> committed;                  // partition -> last acked commit
  std::map<int64_t, std::pair<int32_t, int64_t>> txns;   // seq -> (partition, offset)
  std::vector<std::string> errors;
};

void ParseAck(const std::string& line, Acks* acks) {
  std::istringstream in(line);
  std::string kind;
  in >> kind;
  if (kind == "P") {
    int64_t seq, offset;
    int32_t partition;
    in >> seq >> partition >> offset;
    acks->produced[seq] = {partition, offset};
  } else if (kind == "C") {
    int32_t partition;
    int64_t offset;
    in >> partition >> offset;
    acks->committed[partition] = std::max(acks->committed[partition], offset);
  } else if (kind == "X") {
    int64_t seq, offset;
    int32_t partition;
    in >> seq >> partition >> offset;
    acks->txns[seq] = {partition, offset};
  } else if (kind == "E") {
    acks->errors.push_back(line);
  }
}

// Spawns the child on `dir`, kills it with SIGKILL once it acknowledged `kill_after` records,
// and returns every acknowledgement it wrote before dying.
Acks RunAndKill(const std::string& dir, size_t kill_after) {
  Acks acks;
  int fds[2];
  if (pipe(fds) != 0) {
    ADD_FAILURE() << "pipe failed";
    return acks;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  std::string child = FAXFLOW_BUS_CRASH_CHILD;
  std::vector<char*> argv = {child.data(), const_cast<char*>(dir.c_str()), nullptr};
  pid_t pid = 0;
  int rc = posix_spawn(&pid, child.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    ADD_FAILURE() << "posix_spawn " << child << ": " << rc;
    return acks;
  }
  FILE* in = fdopen(fds[0], "r");
  char* line = nullptr;
  size_t cap = 0;
  bool killed = false;
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (getline(&line, &cap, in) > 0) {
    ParseAck(line, &acks);
    if (!killed && (acks.produced.size() >= kill_after || std::chrono::steady_clock::now() > deadline)) {
      kill(pid, SIGKILL);  // mid-stream: the child is busy with its next write
      killed = true;
    }
  }
  free(line);
  fclose(in);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(killed) << "child exited on its own";
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child status " << status;
  return acks;
}

TEST(EmbeddedBusCrash, KillNineLosesNothingAcknowledged) {
  TempDir tmp;
  const std::string dir = tmp.sub("bus");
  Acks all;
  // Three kill/restart rounds on the same directory: recovery must also survive being killed.
  for (int round = 0; round < 3; ++round) {
    Acks acks = RunAndKill(dir, 150 + static_cast<size_t>(round) * 37);
    ASSERT_TRUE(acks.errors.empty()) << acks.errors.front();
    ASSERT_FALSE(acks.produced.empty());
    // Sequence numbers restart per child; tag them by round.
    for (const auto& [seq, pos] : acks.produced) all.produced[round * 10'000'000 + seq] = pos;
    for (const auto& [p, off] : acks.committed) all.committed[p] = std::max(all.committed[p], off);
    for (const auto& [seq, t] : acks.txns) all.txns[round * 10'000'000 + seq] = t;

    ASSERT_OK_AND_ASSIGN(auto bus, OpenEmbeddedBus(dir));
    // Every acknowledged record is there, at its offset, with its content.
    std::map<std::pair<int32_t, int64_t>, Record> stored;
    for (int32_t p = 0; p < 4; ++p) {
      auto records = ReadAll(*bus, {"crash", p});
      for (size_t i = 0; i < records.size(); ++i) {
        EXPECT_EQ(records[i].offset, static_cast<int64_t>(i)) << "offsets are dense from 0";
        stored[{p, records[i].offset}] = records[i];
      }
    }
    size_t checked = 0;
    for (const auto& [tagged, pos] : all.produced) {
      const int64_t seq = tagged % 10'000'000;
      auto it = stored.find({pos.partition, pos.offset});
      ASSERT_NE(it, stored.end()) << "acknowledged record lost: round " << tagged / 10'000'000 << " seq " << seq
                                  << " at " << pos.partition << "/" << pos.offset;
      EXPECT_EQ(it->second.value, "value-" + std::to_string(seq));
      EXPECT_EQ(it->second.key, "key-" + std::to_string(seq));
      ++checked;
    }
    EXPECT_GE(stored.size(), checked);
    // Acknowledged commits are there (a later, unacknowledged one may be too).
    auto group = bus->NewConsumer({"crash-group", "verifier", true});
    ASSERT_TRUE(group.ok());
    for (const auto& [p, offset] : all.committed) {
      ASSERT_OK_AND_ASSIGN(auto committed, (*group)->Committed({"crash", p}));
      ASSERT_TRUE(committed.has_value()) << "acknowledged commit lost on partition " << p;
      EXPECT_GE(*committed, offset);
    }
    // Acknowledged transactions: their record and their offset.
    std::set<std::string> tx_values;
    for (int32_t p = 0; p < 2; ++p)
      for (const auto& r : ReadAll(*bus, {"crash-tx", p})) tx_values.insert(r.value);
    auto tx_group = bus->NewConsumer({"tx-group", "verifier", true});
    ASSERT_TRUE(tx_group.ok());
    std::map<int32_t, int64_t> tx_offsets;
    for (const auto& [tagged, t] : all.txns) {
      EXPECT_TRUE(tx_values.count("tx-" + std::to_string(tagged % 10'000'000))) << "acknowledged transaction lost";
      tx_offsets[t.first] = std::max(tx_offsets[t.first], t.second);
    }
    for (const auto& [p, offset] : tx_offsets) {
      ASSERT_OK_AND_ASSIGN(auto committed, (*tx_group)->Committed({"crash", p}));
      ASSERT_TRUE(committed.has_value());
      EXPECT_GE(*committed, offset);
    }
    // Transactions are all-or-nothing: every stored tx record's seq produced an offset commit
    // at least as far as... (checked through acknowledged ones above); and no record is torn.
    for (const auto& v : tx_values) EXPECT_EQ(v.rfind("tx-", 0), 0u);
  }
  EXPECT_GE(all.produced.size(), 150u * 3);
}

// ---------------------------------------------------------------------------------------------
// Concurrency

TEST(EmbeddedBusConcurrency, ManyProducersTwoConsumersSeeEveryRecordOnceInDenseOrder) {
  TempDir tmp;
  ASSERT_OK_AND_ASSIGN(auto bus, OpenEmbeddedBus(tmp.sub("bus")));
  const std::string topic = "conc";
  ASSERT_OK(bus->EnsureTopics({Spec(topic, 4)}));
  constexpr int kProducers = 4, kPerProducer = 400;
  constexpr int kTotal = kProducers * kPerProducer;

  std::mutex seen_mu;
  std::map<std::string, int> seen;                        // value -> times
  std::map<int32_t, std::vector<int64_t>> offsets;        // partition -> offsets in order seen
  std::map<std::string, std::vector<int>> per_key;        // key -> sequence numbers in order seen
  std::atomic<int> total{0};
  std::atomic<bool> consumer_error{false};

  auto consume = [&](std::vector<TopicPartition> tps) {
    auto consumer = bus->NewConsumer({"conc-group", "c", true});
    if (!consumer.ok() || !(*consumer)->Assign(tps).ok()) {
      consumer_error = true;
      return;
    }
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (total.load() < kTotal && std::chrono::steady_clock::now() < deadline) {
      auto batch = (*consumer)->Poll(100ms, 64);
      if (!batch.ok()) {
        consumer_error = true;
        return;
      }
      std::lock_guard lock(seen_mu);
      for (const auto& r : *batch) {
        ++seen[r.value];
        offsets[r.partition].push_back(r.offset);
        per_key[r.key].push_back(std::stoi(r.value.substr(r.value.find(':') + 1)));
        ++total;
      }
    }
  };
  std::thread c1(consume, std::vector<TopicPartition>{{topic, 0}, {topic, 1}});
  std::thread c2(consume, std::vector<TopicPartition>{{topic, 2}, {topic, 3}});

  const auto start = std::chrono::steady_clock::now();
  std::atomic<int> produce_errors{0};
  std::vector<std::thread> producers;
  for (int t = 0; t < kProducers; ++t) {
    producers.emplace_back([&, t] {
      auto producer = bus->NewProducer("p" + std::to_string(t));
      if (!producer.ok()) {
        ++produce_errors;
        return;
      }
      for (int i = 0; i < kPerProducer; ++i) {
        // Keys are per producer, so per-key order is the producer's order.
        std::string key = "t" + std::to_string(t) + "-k" + std::to_string(i % 7);
        std::string value = std::to_string(t) + "-" + std::to_string(i % 7) + ":" + std::to_string(i);
        if (i % 10 == 9) {
          std::vector<Message> batch = {Msg(topic, key, value)};
          if (!(*producer)->ProduceBatch(batch).ok()) ++produce_errors;
        } else if (!(*producer)->Produce(Msg(topic, key, value)).ok()) {
          ++produce_errors;
        }
      }
    });
  }
  for (auto& p : producers) p.join();
  const double produce_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  c1.join();
  c2.join();
  EXPECT_EQ(produce_errors.load(), 0);
  EXPECT_FALSE(consumer_error.load());
  ASSERT_EQ(total.load(), kTotal);
  EXPECT_EQ(seen.size(), static_cast<size_t>(kTotal));
  for (const auto& [value, times] : seen) EXPECT_EQ(times, 1) << value;
  int64_t sum = 0;
  for (const auto& [p, offs] : offsets) {
    for (size_t i = 0; i < offs.size(); ++i) ASSERT_EQ(offs[i], static_cast<int64_t>(i)) << "partition " << p;
    sum += static_cast<int64_t>(offs.size());
    ASSERT_OK_AND_ASSIGN(auto c, bus->NewConsumer({"", "end", true}));
    ASSERT_OK_AND_ASSIGN(int64_t end, c->EndOffset({topic, p}));
    EXPECT_EQ(end, static_cast<int64_t>(offs.size()));
  }
  EXPECT_EQ(sum, kTotal);
  for (const auto& [key, seqs] : per_key)
    for (size_t i = 1; i < seqs.size(); ++i) ASSERT_LT(seqs[i - 1], seqs[i]) << key;
  std::printf("[ figures  ] %d synced produces from %d threads in %.2f s: %.0f records/s\n", kTotal, kProducers,
              produce_seconds, kTotal / produce_seconds);
  RecordProperty("produce_records_per_second", static_cast<int>(kTotal / produce_seconds));
}

// A consumer blocked in Poll wakes when a record arrives instead of sleeping out its timeout.
TEST(EmbeddedBusConcurrency, PollWakesOnProduce) {
  TempDir tmp;
  ASSERT_OK_AND_ASSIGN(auto bus, OpenEmbeddedBus(tmp.sub("bus")));
  ASSERT_OK(bus->EnsureTopics({Spec("wake", 1)}));
  ASSERT_OK_AND_ASSIGN(auto consumer, bus->NewConsumer({"g", "c", true}));
  ASSERT_OK(consumer->Assign({{"wake", 0}}));
  std::thread producer([&] {
    std::this_thread::sleep_for(200ms);  // let the consumer block first
    auto p = bus->NewProducer("p");
    ASSERT_TRUE(p.ok());
    EXPECT_TRUE((*p)->Produce(Msg("wake", "k", "v")).ok());
  });
  const auto start = std::chrono::steady_clock::now();
  ASSERT_OK_AND_ASSIGN(auto records, consumer->Poll(20s, 10));
  const auto waited = std::chrono::steady_clock::now() - start;
  producer.join();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_LT(waited, 10s);
}

// ---------------------------------------------------------------------------------------------
// Reopen, trim, retention, describe

TEST(EmbeddedBus, OffsetsContinueAfterReopenAndTrim) {
  TempDir tmp;
  const std::string dir = tmp.sub("bus");
  {
    ASSERT_OK_AND_ASSIGN(auto bus, EmbeddedBus::Open(dir));
    ASSERT_OK(bus->EnsureTopics({Spec("t", 2)}));
    ASSERT_OK_AND_ASSIGN(auto producer, bus->NewProducer("p"));
    for (int i = 0; i < 5; ++i) ASSERT_OK(producer->Produce(Msg("t", "k", "v" + std::to_string(i), 1)).status());
    ASSERT_OK(bus->Trim({"t", 1}, 3));
    ASSERT_OK_AND_ASSIGN(auto description, bus->Describe());
    ASSERT_EQ(description.partitions.size(), 2u);
    EXPECT_EQ(description.partitions[1].start_offset, 3);
    EXPECT_EQ(description.partitions[1].end_offset, 5);
  }
  {
    ASSERT_OK_AND_ASSIGN(auto bus, EmbeddedBus::Open(dir));
    ASSERT_OK_AND_ASSIGN(int32_t n, bus->PartitionCount("t"));
    EXPECT_EQ(n, 2);
    auto records = ReadAll(*bus, {"t", 1});
    ASSERT_EQ(records.size(), 2u) << "records before the trim point are gone";
    EXPECT_EQ(records[0].offset, 3);
    EXPECT_EQ(records[0].value, "v3");
    ASSERT_OK_AND_ASSIGN(auto producer, bus->NewProducer("p"));
    ASSERT_OK_AND_ASSIGN(Position pos, producer->Produce(Msg("t", "k", "v5", 1)));
    EXPECT_EQ(pos.offset, 5) << "next offset recovered at open";
    // Trim everything: the next offset is still not reused after a reopen.
    ASSERT_OK(bus->Trim({"t", 1}, 1000));
  }
  {
    ASSERT_OK_AND_ASSIGN(auto bus, EmbeddedBus::Open(dir));
    ASSERT_OK_AND_ASSIGN(auto producer, bus->NewProducer("p"));
    ASSERT_OK_AND_ASSIGN(Position pos, producer->Produce(Msg("t", "k", "v6", 1)));
    EXPECT_EQ(pos.offset, 6);
    // A consumer positioned before the log start continues at the start.
    ASSERT_OK_AND_ASSIGN(auto consumer, bus->NewConsumer({"g", "c", true}));
    ASSERT_OK(consumer->Assign({{"t", 1}}));
    ASSERT_OK(consumer->Seek({"t", 1}, 0));
    ASSERT_OK_AND_ASSIGN(auto records, consumer->Poll(5s, 10));
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].offset, 6);
  }
}

TEST(EmbeddedBus, RetentionTrimsOnlyOldRecordsEveryGroupConsumed) {
  TempDir tmp;
  ManualClock clock;
  EmbeddedBusOptions options;
  options.clock = &clock;
  ASSERT_OK_AND_ASSIGN(auto bus, EmbeddedBus::Open(tmp.sub("bus"), options));
  TopicSpec spec = Spec("ret", 1);
  spec.retention_ms = 60'000;
  TopicSpec unconsumed = Spec("nobody", 1);
  unconsumed.retention_ms = 60'000;
  ASSERT_OK(bus->EnsureTopics({spec, unconsumed}));
  ASSERT_OK_AND_ASSIGN(auto producer, bus->NewProducer("p"));
  for (int i = 0; i < 10; ++i) {
    ASSERT_OK(producer->Produce(Msg("ret", "k", "old" + std::to_string(i))).status());
    ASSERT_OK(producer->Produce(Msg("nobody", "k", "old" + std::to_string(i))).status());
  }
  clock.Advance(std::chrono::minutes(2));
  for (int i = 0; i < 5; ++i) ASSERT_OK(producer->Produce(Msg("ret", "k", "new" + std::to_string(i))).status());
  ASSERT_OK_AND_ASSIGN(auto a, bus->NewConsumer({"a", "c", true}));
  ASSERT_OK_AND_ASSIGN(auto b, bus->NewConsumer({"b", "c", true}));
  ASSERT_OK(a->Commit({{{"ret", 0}, 12}}));  // past every old record and two new ones
  ASSERT_OK(b->Commit({{{"ret", 0}, 6}}));   // the slowest group has consumed 6 old records

  ASSERT_OK_AND_ASSIGN(int64_t trimmed, bus->TrimCommitted());
  EXPECT_EQ(trimmed, 6);
  ASSERT_OK_AND_ASSIGN(auto d, bus->Describe());
  for (const auto& p : d.partitions) {
    if (p.topic == "ret") {
      EXPECT_EQ(p.start_offset, 6);
    }
    if (p.topic == "nobody") {
      EXPECT_EQ(p.start_offset, 0) << "records no group consumed are kept";
    }
  }
  ASSERT_OK(b->Commit({{{"ret", 0}, 15}}));
  ASSERT_OK_AND_ASSIGN(trimmed, bus->TrimCommitted());
  EXPECT_EQ(trimmed, 4) << "young records stay even when consumed";
  auto records = ReadAll(*bus, {"ret", 0});
  ASSERT_EQ(records.size(), 5u);
  EXPECT_EQ(records[0].value, "new0");
  EXPECT_EQ(records[0].timestamp_ms, clock.NowMillis());
}

TEST(EmbeddedBus, CompactionKeepsTheNewestRecordPerKey) {
  TempDir tmp;
  const std::string dir = tmp.sub("bus");
  {
    ASSERT_OK_AND_ASSIGN(auto bus, EmbeddedBus::Open(dir));
    TopicSpec members = Spec("members", 1);
    members.compacted = true;
    ASSERT_OK(bus->EnsureTopics({members, Spec("plain", 1)}));
    ASSERT_OK_AND_ASSIGN(auto producer, bus->NewProducer("p"));
    for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
             {"w1", "a"}, {"w2", "b"}, {"w1", "c"}, {"w3", "d"}, {"w2", "e"}}) {
      ASSERT_OK(producer->Produce(Msg("members", key, value)).status());
      ASSERT_OK(producer->Produce(Msg("plain", key, value)).status());
    }
    ASSERT_OK_AND_ASSIGN(int64_t deleted, bus->Compact());
    EXPECT_EQ(deleted, 2) << "only the compacted topic is compacted";
    ASSERT_OK_AND_ASSIGN(deleted, bus->Compact());
    EXPECT_EQ(deleted, 0);
    EXPECT_EQ(ReadAll(*bus, {"plain", 0}).size(), 5u);
  }
  ASSERT_OK_AND_ASSIGN(auto bus, EmbeddedBus::Open(dir));
  auto records = ReadAll(*bus, {"members", 0});
  std::vector<std::pair<int64_t, std::string>> got;
  for (const auto& r : records) got.emplace_back(r.offset, r.key + "=" + r.value);
  EXPECT_EQ(got, (std::vector<std::pair<int64_t, std::string>>{{2, "w1=c"}, {3, "w3=d"}, {4, "w2=e"}}));
  ASSERT_OK_AND_ASSIGN(auto producer, bus->NewProducer("p"));
  ASSERT_OK_AND_ASSIGN(Position pos, producer->Produce(Msg("members", "w1", "f")));
  EXPECT_EQ(pos.offset, 5) << "compaction never makes offsets reused";
}

TEST(EmbeddedBus, DescribeReportsEndOffsetsAndGroupOffsets) {
  TempDir tmp;
  ASSERT_OK_AND_ASSIGN(auto bus, EmbeddedBus::Open(tmp.sub("bus")));
  ASSERT_OK(bus->EnsureTopics({Spec("a", 2), Spec("b", 1)}));
  ASSERT_OK_AND_ASSIGN(auto producer, bus->NewProducer("p"));
  for (int i = 0; i < 3; ++i) ASSERT_OK(producer->Produce(Msg("a", "k", "v", 1)).status());
  ASSERT_OK_AND_ASSIGN(auto consumer, bus->NewConsumer({"g1", "c", true}));
  ASSERT_OK(consumer->Commit({{{"a", 1}, 2}}));
  ASSERT_OK_AND_ASSIGN(auto consumer2, bus->NewConsumer({"g/with/slashes", "c", true}));
  ASSERT_OK(consumer2->Commit({{{"a", 1}, 1}}));
  ASSERT_OK_AND_ASSIGN(auto d, bus->Describe());
  ASSERT_EQ(d.topics.size(), 2u);
  ASSERT_EQ(d.partitions.size(), 3u);
  EXPECT_EQ(d.partitions[0].topic, "a");
  EXPECT_EQ(d.partitions[1].end_offset, 3);
  EXPECT_EQ(d.partitions[2].topic, "b");
  EXPECT_EQ(d.partitions[2].end_offset, 0);
  ASSERT_EQ(d.groups.size(), 2u);
  std::map<std::string, int64_t> by_group;
  for (const auto& g : d.groups) {
    EXPECT_EQ(g.topic, "a");
    EXPECT_EQ(g.partition, 1);
    by_group[g.group] = g.committed;
  }
  EXPECT_EQ(by_group["g1"], 2);
  EXPECT_EQ(by_group["g/with/slashes"], 1);
}

// ---------------------------------------------------------------------------------------------
// Errors specific to the embedded backend

TEST(EmbeddedBus, SecondOpenOfTheSameDirectoryIsRefused) {
  TempDir tmp;
  ASSERT_OK_AND_ASSIGN(auto first, OpenEmbeddedBus(tmp.sub("bus")));
  auto second = OpenEmbeddedBus(tmp.sub("bus"));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kUnavailable) << second.status().ToString();
}

TEST(EmbeddedBus, ErrorsAreTyped) {
  TempDir tmp;
  ASSERT_OK_AND_ASSIGN(auto bus, OpenEmbeddedBus(tmp.sub("bus")));
  TopicSpec small = Spec("small", 1);
  small.max_message_bytes = 1024;
  ASSERT_OK(bus->EnsureTopics({small}));
  ASSERT_OK_AND_ASSIGN(auto producer, bus->NewProducer("p"));

  auto unknown = producer->Produce(Msg("nope", "k", "v"));
  EXPECT_EQ(unknown.status().code(), Code::kNotFound);
  auto too_big = producer->Produce(Msg("small", "k", std::string(2000, 'x')));
  EXPECT_EQ(too_big.status().code(), Code::kResourceExhausted);
  EXPECT_TRUE(too_big.status().permanent());
  // A batch with one bad message writes nothing.
  Status batch = producer->ProduceBatch({Msg("small", "k", "ok"), Msg("nope", "k", "v")});
  EXPECT_EQ(batch.code(), Code::kNotFound);
  ASSERT_OK_AND_ASSIGN(auto consumer, bus->NewConsumer({"", "c", true}));
  ASSERT_OK_AND_ASSIGN(int64_t end, consumer->EndOffset({"small", 0}));
  EXPECT_EQ(end, 0);

  EXPECT_EQ(consumer->Assign({{"nope", 0}}).code(), Code::kNotFound);
  EXPECT_EQ(consumer->Assign({{"small", 1}}).code(), Code::kNotFound);
  EXPECT_EQ(consumer->Commit({{{"small", 0}, 1}}).code(), Code::kFailedPrecondition) << "no group";
  EXPECT_EQ(bus->EnsureTopics({Spec("bad/name", 1)}).code(), Code::kInvalidArgument);
  EXPECT_EQ(bus->EnsureTopics({Spec("zero", 0)}).code(), Code::kInvalidArgument);
  TopicSpec compacted = small;
  compacted.compacted = true;
  EXPECT_EQ(bus->EnsureTopics({compacted}).code(), Code::kFailedPrecondition);

  ASSERT_OK_AND_ASSIGN(auto tx, bus->NewTransactionalProducer("tx"));
  EXPECT_EQ(tx->Send(Msg("small", "k", "v")).code(), Code::kFailedPrecondition) << "Send before Begin";
  ASSERT_OK(tx->Begin());
  EXPECT_EQ(tx->Begin().code(), Code::kFailedPrecondition);
  EXPECT_EQ(tx->Send(Msg("nope", "k", "v")).code(), Code::kNotFound);
}

TEST(EmbeddedBus, FencingSurvivesReopenAndFencedProducerStaysFenced) {
  TempDir tmp;
  const std::string dir = tmp.sub("bus");
  {
    ASSERT_OK_AND_ASSIGN(auto bus, OpenEmbeddedBus(dir));
    ASSERT_OK(bus->EnsureTopics({Spec("t", 1)}));
    ASSERT_OK_AND_ASSIGN(auto first, bus->NewTransactionalProducer("id"));
    ASSERT_OK_AND_ASSIGN(auto second, bus->NewTransactionalProducer("id"));
    EXPECT_EQ(first->Begin().code(), Code::kFenced);
    EXPECT_EQ(first->Commit().code(), Code::kFenced);
    ASSERT_OK(second->Begin());
    ASSERT_OK(second->Send(Msg("t", "k", "v")));
    ASSERT_OK(second->Commit());
  }
  ASSERT_OK_AND_ASSIGN(auto bus, OpenEmbeddedBus(dir));
  ASSERT_OK_AND_ASSIGN(auto third, bus->NewTransactionalProducer("id"));
  ASSERT_OK(third->Begin());
  ASSERT_OK(third->Send(Msg("t", "k", "w")));
  ASSERT_OK(third->Commit());
  auto records = ReadAll(*bus, {"t", 0});
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].value, "w");
}

TEST(EmbeddedBus, EnsureTopicsUpdatesRetentionAndCatalogueWorks) {
  TempDir tmp;
  const std::string dir = tmp.sub("bus");
  {
    ASSERT_OK_AND_ASSIGN(auto bus, EmbeddedBus::Open(dir));
    ASSERT_OK(bus->EnsureTopics(Catalogue()));
    ASSERT_OK(bus->EnsureTopics(Catalogue()));
    TopicSpec jobs = *FindTopic(topic::kJobs);
    jobs.retention_ms = 1234;
    ASSERT_OK(bus->EnsureTopics({jobs}));
  }
  ASSERT_OK_AND_ASSIGN(auto bus, EmbeddedBus::Open(dir));
  ASSERT_OK_AND_ASSIGN(auto d, bus->Describe());
  EXPECT_EQ(d.topics.size(), Catalogue().size());
  for (const auto& t : d.topics) {
    const TopicSpec* want = FindTopic(t.name);
    ASSERT_NE(want, nullptr);
    EXPECT_EQ(t.partitions, want->partitions);
    EXPECT_EQ(t.compacted, want->compacted);
    if (t.name == topic::kJobs) {
      EXPECT_EQ(t.retention_ms, 1234);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Codec

TEST(EmbeddedBusCodec, RecordRoundTripAndCorruptionIsDetected) {
  std::vector<Header> headers = {{"a", std::string("\0b", 2)}, {"", ""}};
  std::string encoded = embedded::EncodeRecord(42, std::string("k\0", 2), std::string(300, '\xff'), headers);
  Record r;
  ASSERT_OK(embedded::DecodeRecord(encoded, &r));
  EXPECT_EQ(r.timestamp_ms, 42);
  EXPECT_EQ(r.key, std::string("k\0", 2));
  EXPECT_EQ(r.value, std::string(300, '\xff'));
  EXPECT_EQ(r.headers, headers);
  for (size_t cut = 0; cut < encoded.size(); ++cut) {
    Status s = embedded::DecodeRecord(std::string_view(encoded).substr(0, cut), &r);
    EXPECT_EQ(s.code(), Code::kCorruption) << "truncated at " << cut;
  }
  EXPECT_EQ(embedded::DecodeRecord(encoded + "x", &r).code(), Code::kCorruption);
  std::string bad_version = encoded;
  bad_version[0] = 9;
  EXPECT_EQ(embedded::DecodeRecord(bad_version, &r).code(), Code::kCorruption);
}

TEST(EmbeddedBusCodec, KeysSortByPartitionThenOffset) {
  EXPECT_LT(embedded::RecordKey("t", 0, 255), embedded::RecordKey("t", 0, 256));
  EXPECT_LT(embedded::RecordKey("t", 0, 1LL << 40), embedded::RecordKey("t", 1, 0));
  EXPECT_EQ(embedded::RecordKeyOffset(embedded::RecordKey("t", 3, 123456789012LL)), 123456789012LL);
  std::string topic, group;
  int32_t partition = -1;
  ASSERT_TRUE(embedded::ParseCommittedKey(embedded::CommittedKey("fax.jobs", 7, "g/x"), &topic, &partition, &group));
  EXPECT_EQ(topic, "fax.jobs");
  EXPECT_EQ(partition, 7);
  EXPECT_EQ(group, "g/x");
  EXPECT_TRUE(embedded::ValidTopicName("fax.jobs-1_x"));
  EXPECT_FALSE(embedded::ValidTopicName("fax/jobs"));
  EXPECT_FALSE(embedded::ValidTopicName(""));
  EXPECT_FALSE(embedded::ValidTopicName(".."));
}

}  // namespace
}  // namespace faxflow::bus
