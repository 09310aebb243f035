// The Kafka backend of the faxflow message bus (topics/bus.h) on Apache Kafka through the
// librdkafka C API. Used by every service in a distributed deployment (`--bus kafka`) and by
// the Kafka integration tests; code above the bus never includes this header except to open it.
//
// What it guarantees (details and configuration in docs/kafka.md):
//   - Producer: idempotent (enable.idempotence=true, acks=all); Produce returns only after the
//     broker acknowledged the record on all in-sync replicas.
//   - Consumer: manual assignment only (no subscribe, no group membership); the group id only
//     stores committed offsets, so use a group no subscribing client uses. Offsets are committed
//     explicitly and synchronously (enable.auto.commit=false).
//   - TransactionalProducer: one transactional.id per instance; creating it runs
//     init_transactions, which fences older producers with the same id.
//   - Errors: librdkafka's own classification becomes the Status severity (retriable ->
//     kRetryable, fatal -> kFatal, fenced -> kFenced + kFatal, txn_requires_abort -> kAborted).
//
// Client properties: `properties` is handed to librdkafka unchanged (TLS, SASL, timeouts, ...)
// and may override the defaults set here, except the settings the contract depends on
// (idempotence, manual commits, isolation level), which always win.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "common/config.h"
#include "common/metrics.h"
#include "common/status.h"
#include "topics/bus.h"

namespace faxflow::bus {

struct KafkaBusOptions {
  // bootstrap.servers, e.g. "127.0.0.1:9092" or "k1:9092,k2:9092".
  std::string bootstrap = "127.0.0.1:9092";
  // librdkafka client properties passed through unchanged (config keys `kafka.<property>`),
  // e.g. {"security.protocol","SASL_SSL"}, {"sasl.mechanisms","SCRAM-SHA-512"}.
  std::map<std::string, std::string> properties;
  // client.id of every client is "<prefix>-<role or caller's client id>".
  std::string client_id_prefix = "faxflow";
  // How long opening the bus, metadata and admin calls wait for a broker before failing with
  // kUnavailable ("no Kafka broker reachable at ...").
  std::chrono::milliseconds connect_timeout{10000};
  // Upper bound for one blocking operation (delivery, commit, transaction calls).
  std::chrono::milliseconds operation_timeout{60000};
  // Where the backend's metrics go (faxflow_kafka_*); nullptr: a private registry.
  MetricsRegistry* metrics = nullptr;
};

// Options from the typed config table: bus bootstrap (`kafka.bootstrap` in config.cc's table)
// and every passthrough `kafka.*` property.
KafkaBusOptions KafkaBusOptionsFromConfig(const Config& config);

// Opens the bus: validates the client properties (kInvalidArgument, permanent) and waits up to
// connect_timeout for a broker to answer metadata (kUnavailable, retryable, otherwise).
// The returned Bus owns one admin/metadata client; producers and consumers it creates have
// their own librdkafka handles and must be destroyed before the Bus.
Result<std::unique_ptr<Bus>> OpenKafkaBus(const KafkaBusOptions& options);

}  // namespace faxflow::bus
