#include "tests/bus_kafka/kafka_test_env.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <random>

namespace faxflow::bus::kafka_test {

std::string KafkaBootstrap() {
  const char* env = std::getenv("FAXFLOW_KAFKA_BOOTSTRAP");
  return env != nullptr && *env != '\0' ? env : "127.0.0.1:9092";
}

bool KafkaRequired() {
  const char* ci = std::getenv("CI");
  const char* req = std::getenv("FAXFLOW_REQUIRE_KAFKA");
  return (ci != nullptr && *ci != '\0') || (req != nullptr && std::string(req) == "1");
}

KafkaBusOptions TestBusOptions() {
  KafkaBusOptions options;
  options.bootstrap = KafkaBootstrap();
  options.client_id_prefix = "faxflow-test";
  options.connect_timeout = std::chrono::seconds(10);
  options.operation_timeout = std::chrono::seconds(60);
  return options;
}

std::string UniqueName(const std::string& what) {
  static const std::string run = [] {
    std::random_device rd;
    return std::to_string(getpid()) + "-" + std::to_string(rd() % 100000);
  }();
  static std::atomic<int> counter{0};
  return "kt-" + run + "-" + std::to_string(counter++) + "." + what;
}

void KafkaEnvironment::SetUp() {
  KafkaBusOptions options = TestBusOptions();
  options.connect_timeout = std::chrono::seconds(5);
  auto bus = OpenKafkaBus(options);
  if (bus.ok()) return;
  const std::string why = "no Kafka broker for the integration tests: " + bus.status().ToString() +
                          ". Start one with `scripts/kafka start` or point FAXFLOW_KAFKA_BOOTSTRAP "
                          "at a broker.";
  if (KafkaRequired()) {
    FAIL() << why << " (failing, not skipping: CI or FAXFLOW_REQUIRE_KAFKA=1 is set)";
  }
  GTEST_SKIP() << why << " [kafka integration tests skipped]";
}

}  // namespace faxflow::bus::kafka_test
