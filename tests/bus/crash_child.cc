// Child process of bus_embedded_test's kill -9 test. Opens the embedded bus in argv[1] and,
// until killed, produces records, commits offsets and commits transactions, writing one line
// to stdout AFTER each call returned OK (the acknowledgement the parent checks after the kill):
//   READY
//   P <seq> <partition> <offset>        record "value-<seq>" (key "key-<seq>") on topic crash
//   C <partition> <offset>              group "crash-group" committed <offset> on crash/<partition>
//   X <seq> <partition> <offset>        transaction: record "tx-<seq>" on crash-tx and group
//                                       "tx-group" offset <offset> on crash/<partition>
// On any error it prints "E <status>" and exits 1.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "topics/embedded/embedded_bus.h"

namespace {

void Say(const std::string& line) {
  std::string out = line + "\n";
  // One write() of a short line to a pipe is atomic: the parent never sees half a line.
  if (write(STDOUT_FILENO, out.data(), out.size()) != static_cast<ssize_t>(out.size())) _exit(2);
}

int Fail(const faxflow::Status& s) {
  Say("E " + s.ToString());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace faxflow::bus;
  if (argc != 2) return 2;
  auto opened = OpenEmbeddedBus(argv[1]);
  if (!opened.ok()) return Fail(opened.status());
  Bus& bus = **opened;
  TopicSpec crash;
  crash.name = "crash";
  crash.partitions = 4;
  TopicSpec tx_topic;
  tx_topic.name = "crash-tx";
  tx_topic.partitions = 2;
  if (auto s = bus.EnsureTopics({crash, tx_topic}); !s.ok()) return Fail(s);
  auto producer = bus.NewProducer("crash-child");
  auto consumer = bus.NewConsumer({"crash-group", "crash-child", true});
  auto tx = bus.NewTransactionalProducer("crash-child-tx");
  if (!producer.ok()) return Fail(producer.status());
  if (!consumer.ok()) return Fail(consumer.status());
  if (!tx.ok()) return Fail(tx.status());
  Say("READY");
  for (int64_t seq = 0; seq < 10'000'000; ++seq) {
    Message m;
    m.topic = "crash";
    m.key = "key-" + std::to_string(seq);
    m.value = "value-" + std::to_string(seq);
    auto pos = (*producer)->Produce(m);
    if (!pos.ok()) return Fail(pos.status());
    Say("P " + std::to_string(seq) + " " + std::to_string(pos->partition) + " " + std::to_string(pos->offset));
    if (seq % 3 == 0) {
      TopicPartitionOffset o{{"crash", pos->partition}, pos->offset + 1};
      if (auto s = (*consumer)->Commit({o}); !s.ok()) return Fail(s);
      Say("C " + std::to_string(pos->partition) + " " + std::to_string(pos->offset + 1));
    }
    if (seq % 5 == 0) {
      Message t;
      t.topic = "crash-tx";
      t.key = m.key;
      t.value = "tx-" + std::to_string(seq);
      TopicPartitionOffset o{{"crash", pos->partition}, pos->offset + 1};
      if (auto s = (*tx)->Begin(); !s.ok()) return Fail(s);
      if (auto s = (*tx)->Send(t); !s.ok()) return Fail(s);
      if (auto s = (*tx)->SendOffsets("tx-group", {o}); !s.ok()) return Fail(s);
      if (auto s = (*tx)->Commit(); !s.ok()) return Fail(s);
      Say("X " + std::to_string(seq) + " " + std::to_string(pos->partition) + " " + std::to_string(pos->offset + 1));
    }
  }
  return 0;
}
