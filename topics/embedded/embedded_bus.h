// The embedded message bus: a durable, single-process implementation of the bus contract
// (topics/bus.h) on one RocksDB instance. It backs `faxflow all` and the unit tests; every
// stage runs as threads of one process and talks through it exactly as it would through Kafka.
//
// For whom: app/ (wires it when no Kafka brokers are configured) and ops tooling (Describe).
//
// What it guarantees, in addition to topics/bus.h:
//   - Produce/ProduceBatch/Commit/transaction Commit return after the RocksDB WAL is fsynced
//     (EmbeddedBusOptions::sync, default on): neither kill -9 nor power loss after an OK loses
//     the write.
//   - Offsets are dense: 0, 1, 2, ... per partition, assigned in the order records become
//     visible. A transaction's records and offsets are one WriteBatch: all or nothing.
//   - Transactions: records and offsets are written only at Commit, so read_committed and
//     read_uncommitted consumers see the same records (never an aborted or open transaction).
//   - EnsureTopics: a different partition count or compaction flag of an existing topic is
//     kFailedPrecondition; retention_ms and max_message_bytes are updated in place.
//     A record larger than max_message_bytes is refused with kResourceExhausted (permanent).
//   - Only one process may open a directory at a time (RocksDB's LOCK file); a second Open
//     fails with kUnavailable.
//
// Retention: records are kept until Trim() removes them; the bus does not expire or compact
// records by itself: the owner calls TrimCommitted() and Compact() periodically. Compact() is
// Kafka's log compaction for compacted topics (it leaves offset gaps, as Kafka does; there are
// no tombstones: the contract's Message has no null value). TrimCommitted() is the
// retention rule an operator or a periodic task applies: it drops records that every consumer
// group with a committed offset on the partition has consumed and that are older than the
// topic's retention_ms (records no group has committed past are never dropped). Trimmed
// offsets are never reused (the log start is stored durably).
//
// On-disk layout (one default column family; keys sort so that each partition is a range):
//   t/<topic>                                   topic spec
//   r/<topic>/<partition BE32><offset BE64>     record (timestamp, key, value, headers)
//   s/<topic>/<partition BE32>                  log start offset (after a trim)
//   o/<topic>/<partition BE32>/<group>          committed offset (next offset to read)
//   x/<transactional id>                        producer epoch (fencing)
// Topic names are restricted to Kafka's alphabet [A-Za-z0-9._-] (max 249), so '/' separates.
//
// Threading: the bus and Producer are thread-safe; Consumer and TransactionalProducer are used
// by one thread at a time (as the contract says). Writes use group commit: concurrent Produce,
// Commit and transaction commits queue up, and one caller at a time (the leader) writes the
// whole queue as one synced WriteBatch, so N concurrent producers share one fsync, on the same
// partition as well as on different ones. Poll blocks on a condition variable that every write
// signals (no polling loop, no fixed sleeps).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "topics/bus.h"

namespace faxflow::bus {

struct EmbeddedBusOptions {
  // fsync the WAL before Produce/Commit return. With false, writes are still handed to the
  // OS before returning (they survive kill -9 of the process) but the last ones may be lost
  // on power loss or a kernel crash; for benchmarks and throwaway demos only.
  bool sync = true;
  // Record timestamps (Record::timestamp_ms) and retention ages. Not owned; must outlive
  // the bus. Default: SystemClock::Instance().
  Clock* clock = nullptr;
};

// Per-partition state for metrics (queue depth, consumer lag) and `faxflow topics describe`.
struct PartitionDescription {
  std::string topic;
  int32_t partition = 0;
  int64_t start_offset = 0;  // first offset still stored (0 unless trimmed)
  int64_t end_offset = 0;    // offset the next record will get
};

struct GroupOffsetDescription {
  std::string group;
  std::string topic;
  int32_t partition = 0;
  int64_t committed = 0;  // next offset the group will read; lag = end_offset - committed
};

struct BusDescription {
  std::vector<TopicSpec> topics;
  std::vector<PartitionDescription> partitions;  // sorted by topic, partition
  std::vector<GroupOffsetDescription> groups;    // sorted by topic, partition, group
};

// The embedded bus, with its operations surface. Created by Open (or OpenEmbeddedBus when
// only the contract is needed); closed when destroyed, which must happen after every
// producer/consumer it created is gone.
class EmbeddedBus : public Bus {
 public:
  // Opens (creating if missing) the bus stored in `dir`. kUnavailable if another process
  // holds the directory, kCorruption if stored data does not decode.
  static Result<std::unique_ptr<EmbeddedBus>> Open(const std::string& dir,
                                                   const EmbeddedBusOptions& options = {});

  // End offsets of every partition and committed offsets of every group. Consistent per
  // partition, not across partitions (it is a live view).
  virtual Result<BusDescription> Describe() = 0;

  // Deletes the records of a partition with offsets < before_offset (clamped to the end
  // offset). Consumers positioned before the new start continue at the start. Durable.
  virtual Status Trim(const TopicPartition& tp, int64_t before_offset) = 0;

  // Retention rule: for every partition of every non-compacted topic with retention_ms >= 0,
  // trims the records older than retention_ms that every group with a committed offset on the
  // partition has consumed. A partition no group has committed on is never trimmed (nothing
  // unconsumed is ever dropped). Returns the number of records deleted.
  virtual Result<int64_t> TrimCommitted() = 0;

  // Log compaction of every compacted topic: deletes each record whose key has a newer record
  // in the same partition. Returns the number of records deleted.
  virtual Result<int64_t> Compact() = 0;
};

// The bus contract only; see EmbeddedBus::Open.
Result<std::unique_ptr<Bus>> OpenEmbeddedBus(const std::string& dir,
                                             const EmbeddedBusOptions& options = {});

}  // namespace faxflow::bus
