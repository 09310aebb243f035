// A broker outage as a faxflow service sees it: produce fails with a retryable error while the
// broker is down, and the same clients work again after it restarts, with every acknowledged
// record still there. The test starts and stops its own broker (scripts/kafka on a private
// port and state dir), so it does not disturb the shared one. Without Java/Maven/cached jars it
// skips, unless CI or FAXFLOW_REQUIRE_KAFKA=1 is set.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>
#include <string>

#include "tests/bus_kafka/kafka_test_env.h"
#include "tests/support/support.h"
#include "topics/kafka/kafka_bus.h"

namespace faxflow::bus {
namespace {

using namespace std::chrono_literals;

class KafkaOutageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_ = std::make_unique<testing::TempDir>("faxflow-kafka-outage");
    broker_ = std::make_unique<testing::PrivateKafkaBroker>(state_->path() + "/state");
    if (!broker_->ok()) {
      const std::string why = "could not start a private broker with scripts/kafka (see its output above)";
      if (kafka_test::KafkaRequired()) FAIL() << why;
      GTEST_SKIP() << why << " [kafka integration tests skipped]";
    }
  }

  // Runs `scripts/kafka <command>` for the private broker (stop / start keep its state).
  int Script(const std::string& command) { return broker_->Script(command); }
  std::string Bootstrap() const { return broker_->bootstrap(); }

  std::unique_ptr<testing::TempDir> state_;              // outlives the broker (its state dir)
  std::unique_ptr<testing::PrivateKafkaBroker> broker_;  // stopped by its destructor
};

TEST_F(KafkaOutageTest, ProduceFailsRetryablyWhileTheBrokerIsDownAndRecoversAfterRestart) {
  KafkaBusOptions options;
  options.bootstrap = Bootstrap();
  options.connect_timeout = 5s;
  options.operation_timeout = 5s;
  auto bus = OpenKafkaBus(options);
  ASSERT_TRUE(bus.ok()) << bus.status().ToString();
  TopicSpec spec;
  spec.name = kafka_test::UniqueName("outage");
  spec.partitions = 1;
  ASSERT_TRUE((*bus)->EnsureTopics({spec}).ok());
  auto producer = (*bus)->NewProducer("outage");
  ASSERT_TRUE(producer.ok()) << producer.status().ToString();

  std::set<std::string> acknowledged;
  auto produce = [&](const std::string& value) -> Status {
    Message m;
    m.topic = spec.name;
    m.key = "fax";
    m.value = value;
    auto pos = (*producer)->Produce(m);
    if (pos.ok()) acknowledged.insert(value);
    return pos.status();
  };
  ASSERT_TRUE(produce("before-1").ok());
  ASSERT_TRUE(produce("before-2").ok());

  ASSERT_EQ(Script("stop"), 0);
  const auto start = std::chrono::steady_clock::now();
  Status down = produce("during");
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(down.ok());
  EXPECT_TRUE(down.retryable()) << down.ToString();
  EXPECT_LT(took, 30s) << "Produce must give up after about the operation timeout";

  ASSERT_EQ(Script("start"), 0);  // same state dir: the topic and its records are still there
  // The same producer recovers (librdkafka reconnects; the idempotent producer resets its epoch).
  Status after = Status::Retryable(Code::kUnavailable, "not tried");
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!after.ok() && std::chrono::steady_clock::now() < deadline) {
    after = produce("after");
    if (!after.ok()) {
      ASSERT_FALSE(after.fatal()) << after.ToString();
    }
  }
  ASSERT_TRUE(after.ok()) << after.ToString();

  ConsumerOptions copts;
  copts.group = kafka_test::UniqueName("g");
  auto consumer = (*bus)->NewConsumer(copts);
  ASSERT_TRUE(consumer.ok()) << consumer.status().ToString();
  ASSERT_TRUE((*consumer)->Assign({{spec.name, 0}}).ok());
  std::set<std::string> seen;
  const auto read_deadline = std::chrono::steady_clock::now() + 60s;
  while (!std::includes(seen.begin(), seen.end(), acknowledged.begin(), acknowledged.end()) &&
         std::chrono::steady_clock::now() < read_deadline) {
    auto records = (*consumer)->Poll(200ms, 100);
    ASSERT_TRUE(records.ok()) << records.status().ToString();
    for (const auto& r : *records) seen.insert(r.value);
  }
  for (const auto& v : acknowledged) EXPECT_TRUE(seen.count(v)) << "acknowledged record " << v << " lost";
}

}  // namespace
}  // namespace faxflow::bus
