#include "topics/catalogue.h"

namespace faxflow::bus {

const std::vector<TopicSpec>& Catalogue() {
  static const std::vector<TopicSpec> topics = {
      {std::string(topic::kSubmissions), 12, 1, false, 7LL * 24 * 3600 * 1000, 1 << 20,
       "Accepted submissions; documents are referenced by blob id."},
      {std::string(topic::kJobs), 12, 1, false, 7LL * 24 * 3600 * 1000, 1 << 20,
       "One outbound job per recipient, keyed by destination number."},
      {std::string(topic::kEvents), 12, 1, false, 7LL * 24 * 3600 * 1000, 1 << 20,
       "Delivery events of every fax and recipient."},
      {std::string(topic::kIngest), 6, 1, false, 7LL * 24 * 3600 * 1000, 16 << 20,
       "Submissions produced directly by enterprise systems (JSON or Protobuf)."},
      {std::string(topic::kDeadLetter), 3, 1, false, 30LL * 24 * 3600 * 1000, 16 << 20,
       "Records that could not be decoded or validated, with the reason in a header."},
      {std::string(topic::kMembers), 1, 1, true, -1, 1 << 20,
       "Imaging worker load scores and claims (compacted by worker id)."},
      {std::string(topic::kControl), 3, 1, false, 7LL * 24 * 3600 * 1000, 1 << 20,
       "Commands on accepted faxes (cancel); every modem worker reads every partition."},
      {std::string(topic::kApiKeys), 1, 1, true, -1, 1 << 20,
       "API keys of every tenant (hash only), compacted by key id; every gateway follows it."},
      {std::string(topic::kIdempotency), 6, 1, false, 2LL * 24 * 3600 * 1000, 1 << 20,
       "Idempotency-Key claims and first answers of the REST API (kept >= 24 h)."},
      {std::string(topic::kGateways), 1, 1, true, -1, 1 << 20,
       "Gateway nodes and their heartbeats (compacted by node URL): tenant ownership (seed 001)."},
      {std::string(topic::kWebhooks), 1, 1, true, -1, 1 << 20,
       "Webhook endpoints and callback secrets of every tenant (compacted); every gateway follows it."},
      {std::string(topic::kWebhookLog), 3, 1, false, 30LL * 24 * 3600 * 1000, 1 << 20,
       "Webhook delivery log entries (one per attempt) of every gateway node; every gateway follows it."},
      {std::string(topic::kWebhookDeliveries), 3, 1, true, -1, 1 << 20,
       "Latest state of every webhook delivery (compacted): pending ones move with their partition."},
      {std::string(topic::kBroadcasts), 1, 1, true, -1, 1 << 20,
       "Broadcast records, fan-out cursors, chunk ids and chunk status (compacted); every gateway follows it."},
  };
  return topics;
}

const TopicSpec* FindTopic(std::string_view name) {
  for (const auto& t : Catalogue())
    if (t.name == name) return &t;
  return nullptr;
}

int32_t PartitionForKey(std::string_view key, int32_t partitions) {
  // murmur2 as in org.apache.kafka.common.utils.Utils.murmur2 (seed 0x9747b28c).
  const uint32_t m = 0x5bd1e995;
  const int r = 24;
  const auto* data = reinterpret_cast<const unsigned char*>(key.data());
  uint32_t length = static_cast<uint32_t>(key.size());
  uint32_t h = 0x9747b28c ^ length;
  const uint32_t length4 = length / 4;
  for (uint32_t i = 0; i < length4; i++) {
    const uint32_t i4 = i * 4;
    uint32_t k = data[i4 + 0] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (static_cast<uint32_t>(data[i4 + 3]) << 24);
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  switch (length % 4) {
    case 3: h ^= static_cast<uint32_t>(data[(length & ~3u) + 2]) << 16; [[fallthrough]];
    case 2: h ^= static_cast<uint32_t>(data[(length & ~3u) + 1]) << 8; [[fallthrough]];
    case 1:
      h ^= data[length & ~3u];
      h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return static_cast<int32_t>((h & 0x7fffffff) % static_cast<uint32_t>(partitions));
}

}  // namespace faxflow::bus
