// The bus contract suite (tests/bus/bus_contract.cc) against a real Kafka broker.
#include "tests/bus/bus_contract.h"
#include "tests/bus_kafka/kafka_test_env.h"
#include "topics/kafka/kafka_bus.h"

FAXFLOW_KAFKA_TEST_ENVIRONMENT();

namespace faxflow::bus::contract {
namespace {

BusFactory KafkaFactory() {
  BusFactory f;
  f.name = "Kafka";
  // Every instance talks to the same broker; a reopened bus is a new set of client connections,
  // which is what a restarted process sees. Test topics are unique per test (never deleted: use
  // `scripts/kafka start --fresh` to start from an empty broker).
  f.open = [](const std::string& /*instance*/) { return OpenKafkaBus(kafka_test::TestBusOptions()); };
  f.patience = std::chrono::seconds(60);
  return f;
}

INSTANTIATE_TEST_SUITE_P(Kafka, BusContract, ::testing::Values(KafkaFactory()), BusFactoryName);

}  // namespace
}  // namespace faxflow::bus::contract
