// The bus contract test suite: one set of GoogleTest cases that every bus backend (embedded,
// Kafka) must pass unchanged. It checks the semantics promised in topics/bus.h.
//
// To run it against a backend, link the OBJECT library `faxflow_bus_contract` into a test
// executable and instantiate the suite with a factory:
//
//   #include "tests/bus/bus_contract.h"
//   using faxflow::bus::contract::BusContract;  // INSTANTIATE needs the bare suite name
//   static faxflow::bus::contract::BusFactory KafkaFactory() {
//     faxflow::bus::contract::BusFactory f;
//     f.name = "Kafka";
//     f.open = [](const std::string& instance) { return OpenKafkaBus(...); };
//     f.patience = std::chrono::seconds(60);
//     return f;
//   }
//   INSTANTIATE_TEST_SUITE_P(Kafka, BusContract, ::testing::Values(KafkaFactory()),
//                            faxflow::bus::contract::BusFactoryName);
//
//   faxflow_test(NAME kafka_bus_contract_test SOURCES kafka_bus_contract_test.cc
//                DEPS faxflow_bus_contract faxflow_bus_kafka LABELS integration)
//
// Every test uses topics, groups and transactional ids with a per-test unique prefix, so a
// shared, long-lived broker works and tests do not see each other's data. All waits poll until
// a condition holds or `patience` runs out (real Kafka needs seconds to start a consumer).
#pragma once

#include <chrono>
#include <functional>
#include <ostream>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "common/status.h"
#include "topics/bus.h"

namespace faxflow::bus::contract {

struct BusFactory {
  std::string name;  // test-name suffix: [A-Za-z0-9_]
  // Opens a bus. The same `instance` names the same durable state: calling open again with
  // it after the previous bus (and all its clients) was destroyed simulates a process restart.
  // Embedded: a directory per instance; Kafka: a new client connection to the same broker.
  std::function<Result<std::unique_ptr<Bus>>(const std::string& instance)> open;
  // Optional: frees an instance's state after the test (embedded: removes the directory).
  std::function<void(const std::string& instance)> cleanup;
  // Upper bound for every "wait until" in the suite.
  std::chrono::milliseconds patience{std::chrono::seconds(30)};
};

// Name generator for INSTANTIATE_TEST_SUITE_P.
std::string BusFactoryName(const ::testing::TestParamInfo<BusFactory>& info);
// Prints the factory's name in test failure messages.
void PrintTo(const BusFactory& factory, std::ostream* os);

// Fixture: opens the bus for the test, names its topics, offers polling helpers.
class BusContract : public ::testing::TestWithParam<BusFactory> {
 protected:
  void SetUp() override;
  void TearDown() override;

  Bus& bus() { return *bus_; }
  // Destroys the bus and reopens the same instance. Every client must be destroyed first.
  void Restart();

  // A topic/group/transactional-id name unique to this test run, e.g. "ct-RoundTrip-4f2a.<what>".
  std::string Name(const std::string& what) const;
  // Creates a topic with a unique name and `partitions` partitions; returns its name.
  std::string MakeTopic(const std::string& what, int32_t partitions);

  std::unique_ptr<Producer> NewProducer();
  std::unique_ptr<Consumer> NewConsumer(const std::string& group, bool read_committed = true);

  // Polls until `count` records arrived (fails the test, returning what it has, at the deadline).
  std::vector<Record> PollCount(Consumer& consumer, size_t count);
  // Polls until `done(all records so far)` is true or the deadline passes.
  std::vector<Record> PollUntil(Consumer& consumer, const std::function<bool(const std::vector<Record>&)>& done);
  // Polls for `quiet` and returns whatever arrived (for "nothing more arrives" checks).
  std::vector<Record> PollFor(Consumer& consumer, std::chrono::milliseconds quiet);

  std::chrono::milliseconds patience() const { return GetParam().patience; }

 private:
  std::string instance_;
  std::string prefix_;
  std::unique_ptr<Bus> bus_;
};

}  // namespace faxflow::bus::contract
