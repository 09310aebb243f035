// Where the Kafka integration tests find their broker and what they do without one.
//
// The broker is the one at $FAXFLOW_KAFKA_BOOTSTRAP (default 127.0.0.1:9092), normally started
// with `scripts/kafka start`. KafkaEnvironment probes it once per test binary: when no broker
// answers, every test is skipped with a message saying how to start one, unless the run must
// not skip (environment variable CI set, or FAXFLOW_REQUIRE_KAFKA=1), in which case the binary
// fails. Register it in each integration test binary with FAXFLOW_KAFKA_TEST_ENVIRONMENT().
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "topics/kafka/kafka_bus.h"

namespace faxflow::bus::kafka_test {

std::string KafkaBootstrap();
bool KafkaRequired();
// Bus options for tests: the bootstrap above, short connect timeout, generous operations.
KafkaBusOptions TestBusOptions();
// A name unique to this process and call, usable for topics, groups and transactional ids.
std::string UniqueName(const std::string& what);

class KafkaEnvironment : public ::testing::Environment {
 public:
  void SetUp() override;
};

}  // namespace faxflow::bus::kafka_test

#define FAXFLOW_KAFKA_TEST_ENVIRONMENT()                                                  \
  [[maybe_unused]] static ::testing::Environment* const faxflow_kafka_test_environment_ = \
      ::testing::AddGlobalTestEnvironment(new ::faxflow::bus::kafka_test::KafkaEnvironment)
