// The topic catalogue: every topic faxflow uses, with its partitions and configs, in one place.
// `faxflow topics create|describe` provisions it; every service checks it at start.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace faxflow::bus {

namespace topic {
inline constexpr std::string_view kSubmissions = "fax.submissions";  // key fax_id, Submission
inline constexpr std::string_view kJobs = "fax.jobs";                // key number, OutboundJob
inline constexpr std::string_view kEvents = "fax.events";            // key fax_id, DeliveryEvent
inline constexpr std::string_view kIngest = "fax.ingest";            // external submissions (JSON/Protobuf)
inline constexpr std::string_view kDeadLetter = "fax.dlq";           // undecodable/invalid input + reason
inline constexpr std::string_view kMembers = "fax.members";          // compacted, key worker, WorkerLoad
inline constexpr std::string_view kControl = "fax.control";          // key fax_id, ControlCommand (cancel)
inline constexpr std::string_view kApiKeys = "fax.keys";             // compacted, key key_id, API key record (JSON)
inline constexpr std::string_view kIdempotency = "fax.idempotency";  // key tenant/Idempotency-Key, claims + answers (JSON)
inline constexpr std::string_view kGateways = "fax.gateways";        // compacted, key node URL, WorkerLoad heartbeat (owner routing)
inline constexpr std::string_view kWebhooks = "fax.webhooks";        // compacted, key ep/<id> | ts/<tenant>, webhook endpoint / callback secrets (JSON)
inline constexpr std::string_view kWebhookLog = "fax.webhook-log";  // key log/<target>/..., webhook delivery log entries of every node (JSON)
inline constexpr std::string_view kWebhookDeliveries = "fax.webhook-deliveries";  // compacted, key dl/<delivery id>, latest state of each webhook delivery (JSON)
inline constexpr std::string_view kBroadcasts = "fax.broadcasts";    // compacted, key b/<id> | c/<id>/<n> | s/<fax> | e/<event>, broadcast records, chunks, chunk status
}  // namespace topic

// Consumer groups (committed offsets).
namespace group {
inline constexpr std::string_view kImaging = "faxflow-imaging";
inline constexpr std::string_view kModem = "faxflow-modem";
inline constexpr std::string_view kStatus = "faxflow-status";
inline constexpr std::string_view kIngest = "faxflow-ingest";
}  // namespace group

// Record headers used across topics.
namespace header {
inline constexpr std::string_view kSchema = "faxflow-schema";  // e.g. "faxflow.v1.Submission"
inline constexpr std::string_view kReason = "faxflow-dlq-reason";
inline constexpr std::string_view kOrigin = "faxflow-dlq-origin";  // topic/partition/offset of the bad record
}  // namespace header

struct TopicSpec {
  std::string name;
  int32_t partitions = 1;
  int16_t replication_factor = 1;
  bool compacted = false;
  int64_t retention_ms = 7LL * 24 * 3600 * 1000;
  int32_t max_message_bytes = 1 << 20;
  std::string doc;
};

// Every topic, with defaults sized for a single site. Replication is raised by
// `faxflow topics create --replication N`.
const std::vector<TopicSpec>& Catalogue();
const TopicSpec* FindTopic(std::string_view name);

// Kafka's default (Java client) partitioner: murmur2(key) & 0x7fffffff % partitions, so that
// faxflow, kcat --partitioner murmur2_random and Java producers agree on key placement.
int32_t PartitionForKey(std::string_view key, int32_t partitions);

}  // namespace faxflow::bus
