// Consumer lag from librdkafka statistics (the JSON its stats callback emits every
// statistics.interval.ms, fields as in librdkafka's STATISTICS.md): per partition, the lag behind
// the group's committed offset as librdkafka computes it (high watermark, or last stable offset
// for read_committed, minus committed offset).
//
// ParseConsumerLag reads one statistics document; ConsumerLagBoard keeps the latest partitions of
// every consumer handle of the process and sums them per (topic, group): what KafkaBus reports as
// Bus::ReportedConsumerLag and the lag monitor exports as faxflow_bus_consumer_lag.
// Threading: ParseConsumerLag is pure; ConsumerLagBoard is thread-safe (one mutex).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "topics/bus.h"

namespace faxflow::bus {

struct PartitionLag {
  std::string topic;
  int32_t partition = 0;
  int64_t consumer_lag = 0;          // end offset - committed offset (>= 0)
  int64_t consumer_lag_stored = -1;  // end offset - stored offset; -1 unknown
  int64_t committed_offset = -1;
  int64_t hi_offset = -1;  // high watermark (the end for read_uncommitted consumers)
  int64_t ls_offset = -1;  // last stable offset (the end for read_committed consumers)
};

// The partitions of one statistics document that have a known lag: partition -1 (librdkafka's
// internal UA partition) and partitions whose consumer_lag is negative (no committed offset or no
// watermark yet) are left out. Permanent error when the text is not a statistics object.
Result<std::vector<PartitionLag>> ParseConsumerLag(std::string_view stats_json);

class ConsumerLagBoard {
 public:
  // Replaces what consumer `consumer` (of `group`) reported last: `lags`, restricted to the
  // partitions in `assigned` (librdkafka keeps stale entries of partitions it no longer fetches).
  void Update(uint64_t consumer, const std::string& group, const std::vector<PartitionLag>& lags,
              const std::set<TopicPartition>& assigned);
  // The consumer closed: its partitions no longer count.
  void Forget(uint64_t consumer);
  // Sum over every reporting consumer's partitions of `topic` in `group`; nullopt when no
  // consumer of the group has reported a partition of the topic.
  std::optional<int64_t> Lag(const std::string& topic, const std::string& group) const;

 private:
  struct Report {
    std::string group;
    std::vector<PartitionLag> lags;
  };
  mutable std::mutex mu_;
  std::map<uint64_t, Report> reports_;
};

}  // namespace faxflow::bus
