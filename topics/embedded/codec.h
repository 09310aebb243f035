// Internal to the embedded bus: the RocksDB key layout and the record/topic value encodings
// (see embedded_bus.h for the layout). Pure functions, no state; tested directly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "topics/bus.h"
#include "topics/catalogue.h"

namespace faxflow::bus::embedded {

// Kafka's topic name rule: 1..249 chars of [A-Za-z0-9._-], not "." or "..".
bool ValidTopicName(std::string_view name);

void PutBigEndian32(std::string& out, uint32_t v);
void PutBigEndian64(std::string& out, uint64_t v);
uint32_t GetBigEndian32(const char* p);
uint64_t GetBigEndian64(const char* p);

std::string TopicKey(std::string_view topic);                 // t/<topic>
inline constexpr std::string_view kTopicPrefix = "t/";
std::string PartitionPrefix(std::string_view topic, int32_t partition);  // r/<topic>/<BE32>
std::string RecordKey(std::string_view topic, int32_t partition, int64_t offset);
// Offset of a record key that starts with PartitionPrefix(topic, partition).
int64_t RecordKeyOffset(std::string_view key);
std::string StartOffsetKey(std::string_view topic, int32_t partition);  // s/<topic>/<BE32>
std::string CommittedKey(std::string_view topic, int32_t partition, std::string_view group);
inline constexpr std::string_view kCommittedPrefix = "o/";
// Splits an o/ key into topic, partition, group.
bool ParseCommittedKey(std::string_view key, std::string* topic, int32_t* partition, std::string* group);
std::string EpochKey(std::string_view transactional_id);      // x/<id>

std::string EncodeInt64(int64_t v);
Result<int64_t> DecodeInt64(std::string_view bytes);

// A record value: version, timestamp, key, value, headers.
std::string EncodeRecord(int64_t timestamp_ms, std::string_view key, std::string_view value,
                         const std::vector<Header>& headers);
// Fills key/value/headers/timestamp_ms of `out`; kCorruption (fatal) if malformed.
Status DecodeRecord(std::string_view bytes, Record* out);
// Only the timestamp (for retention).
Result<int64_t> DecodeRecordTimestamp(std::string_view bytes);

std::string EncodeTopicSpec(const TopicSpec& spec);
Result<TopicSpec> DecodeTopicSpec(std::string_view name, std::string_view bytes);

}  // namespace faxflow::bus::embedded
