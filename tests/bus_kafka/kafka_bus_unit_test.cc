// Kafka bus backend behaviour that needs no broker: what a service sees when Kafka is down or
// misconfigured, config passthrough, and the librdkafka error classification.
#include <gtest/gtest.h>

#include <chrono>

#include "common/config.h"
#include "tests/support/support.h"
#include "topics/kafka/kafka_bus.h"
#include "topics/kafka/rdkafka_handles.h"

namespace faxflow::bus {
namespace {

using namespace std::chrono_literals;

TEST(KafkaBusUnitTest, NoBrokerIsARetryableUnavailableErrorNamingTheBootstrap) {
  KafkaBusOptions options;
  options.bootstrap = "127.0.0.1:" + std::to_string(testing::FreePort());
  options.connect_timeout = 1500ms;
  const auto start = std::chrono::steady_clock::now();
  auto bus = OpenKafkaBus(options);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(bus.ok());
  EXPECT_EQ(bus.status().code(), Code::kUnavailable) << bus.status().ToString();
  EXPECT_TRUE(bus.status().retryable()) << bus.status().ToString();
  EXPECT_NE(bus.status().message().find("no Kafka broker reachable at " + options.bootstrap + " after 1.5 s"),
            std::string::npos)
      << bus.status().message();
  EXPECT_LT(took, 10s) << "the connect timeout bounds how long opening waits";
}

TEST(KafkaBusUnitTest, InvalidClientPropertyIsAPermanentErrorNamingIt) {
  KafkaBusOptions options;
  options.bootstrap = "127.0.0.1:1";
  options.properties = {{"sasl.mechanisms", "PLAIN"}, {"no.such.property", "1"}};
  auto bus = OpenKafkaBus(options);
  ASSERT_FALSE(bus.ok());
  EXPECT_EQ(bus.status().code(), Code::kInvalidArgument) << bus.status().ToString();
  EXPECT_TRUE(bus.status().permanent());
  EXPECT_NE(bus.status().message().find("no.such.property"), std::string::npos) << bus.status().message();

  options.bootstrap.clear();
  options.properties.clear();
  EXPECT_EQ(OpenKafkaBus(options).status().code(), Code::kInvalidArgument);
}

TEST(KafkaBusUnitTest, ConfigKafkaKeysBecomeClientProperties) {
  auto config = LoadConfig(std::nullopt,
                           {{"bus.backend", "kafka"},
                            {"kafka.bootstrap", "k1:9093,k2:9093"},
                            {"kafka.security.protocol", "SASL_SSL"},
                            {"kafka.sasl.mechanisms", "SCRAM-SHA-512"},
                            {"kafka.ssl.ca.location", "/etc/faxflow/ca.pem"}},
                           /*read_environment=*/false);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  KafkaBusOptions options = KafkaBusOptionsFromConfig(*config);
  EXPECT_EQ(options.bootstrap, "k1:9093,k2:9093");
  EXPECT_EQ(options.properties.count("bootstrap"), 0u);
  EXPECT_EQ(options.properties.at("security.protocol"), "SASL_SSL");
  EXPECT_EQ(options.properties.at("sasl.mechanisms"), "SCRAM-SHA-512");
  EXPECT_EQ(options.properties.at("ssl.ca.location"), "/etc/faxflow/ca.pem");
}

TEST(KafkaBusUnitTest, ErrorCodesMapToSeverityTheCallerCanActOn) {
  using kafka_internal::StatusFromErr;
  struct Case {
    rd_kafka_resp_err_t err;
    Code code;
    Severity severity;
  };
  const Case cases[] = {
      {RD_KAFKA_RESP_ERR__TRANSPORT, Code::kUnavailable, Severity::kRetryable},
      {RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, Code::kUnavailable, Severity::kRetryable},
      {RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, Code::kUnavailable, Severity::kRetryable},
      {RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, Code::kTimeout, Severity::kRetryable},
      {RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, Code::kResourceExhausted, Severity::kPermanent},
      {RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, Code::kNotFound, Severity::kPermanent},
      {RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, Code::kPermissionDenied, Severity::kPermanent},
      {RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED, Code::kUnauthenticated, Severity::kPermanent},
      {RD_KAFKA_RESP_ERR__FENCED, Code::kFenced, Severity::kFatal},
      {RD_KAFKA_RESP_ERR_PRODUCER_FENCED, Code::kFenced, Severity::kFatal},
      {RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH, Code::kFenced, Severity::kFatal},
      {RD_KAFKA_RESP_ERR__FATAL, Code::kInternal, Severity::kFatal},
  };
  for (const auto& c : cases) {
    Status s = StatusFromErr(c.err, "op");
    EXPECT_EQ(s.code(), c.code) << rd_kafka_err2name(c.err) << ": " << s.ToString();
    EXPECT_EQ(s.severity(), c.severity) << rd_kafka_err2name(c.err) << ": " << s.ToString();
    EXPECT_NE(s.message().find(rd_kafka_err2name(c.err)), std::string::npos) << s.message();
  }
  EXPECT_TRUE(StatusFromErr(RD_KAFKA_RESP_ERR_NO_ERROR, "op").ok());

  // rd_kafka_error_t without librdkafka's retriable/fatal/abort flags: classified by its code.
  kafka_internal::ErrorPtr down(rd_kafka_error_new(RD_KAFKA_RESP_ERR__TRANSPORT, "%s", "broker down"));
  Status s = kafka_internal::StatusFromError(down.get(), "op");
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.ToString();
  EXPECT_TRUE(s.retryable()) << s.ToString();
  EXPECT_NE(s.message().find("broker down"), std::string::npos) << s.message();
  kafka_internal::ErrorPtr state(rd_kafka_error_new(RD_KAFKA_RESP_ERR__STATE, "%s", "no transaction"));
  EXPECT_TRUE(kafka_internal::StatusFromError(state.get(), "op").permanent());
}

}  // namespace
}  // namespace faxflow::bus
