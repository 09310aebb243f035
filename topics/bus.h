// The message bus contract: everything above the bus (gateway, imaging, modem, status) is
// written once against these interfaces. Two implementations:
//   - topics/embedded: durable single-process bus on RocksDB (`faxflow all`, the default);
//   - topics/kafka:    Apache Kafka through librdkafka (distributed deployments).
// One contract test suite (tests/bus) runs unchanged against both.
//
// Semantics every implementation guarantees:
//   - Produce/ProduceBatch return only when the records are durable (embedded: WAL synced;
//     Kafka: acks=all with the idempotent producer). An OK status means the record will be
//     delivered to consumers; an error means it may or may not have been written (retry safely
//     only with an idempotent consumer or a dedup key).
//   - A partition is an ordered log; offsets start at 0 and increase by one per record in the
//     embedded backend (Kafka may skip offsets for transaction markers: never assume +1).
//   - A message without an explicit partition goes to PartitionForKey(key, partitions).
//   - Consumers use manual assignment only (claims are computed by faxflow, see topics/claims);
//     a consumer group exists only to store committed offsets. On Assign, each partition resumes
//     at the group's committed offset, or at the earliest offset when none is committed.
//   - Commit(offsets) stores "next offset to read" durably. Records after the committed offset
//     are redelivered after a restart: consumption is at-least-once unless the commit is part of
//     a transaction (TransactionalProducer::SendOffsets), which makes consume-produce atomic.
//   - read_committed consumers never see records of an aborted or still-open transaction.
//   - A TransactionalProducer opened with a transactional id fences every older producer with
//     the same id: their later Commit() fails with Code::kFenced (fatal for that producer).
//
// Threading: a Bus is thread-safe and outlives every client it creates. Producer is
// thread-safe. Consumer and TransactionalProducer are used by one thread at a time.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "topics/catalogue.h"

namespace faxflow::bus {

struct Header {
  std::string key;
  std::string value;
  bool operator==(const Header&) const = default;
};

// A record to produce.
struct Message {
  std::string topic;
  std::string key;
  std::string value;
  std::vector<Header> headers;
  std::optional<int32_t> partition;  // default: PartitionForKey(key, partition count)
};

struct TopicPartition {
  std::string topic;
  int32_t partition = 0;
  auto operator<=>(const TopicPartition&) const = default;
};

// "Next offset to read" of one partition.
struct TopicPartitionOffset {
  TopicPartition tp;
  int64_t offset = 0;
};

// A consumed record.
struct Record {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  std::string value;
  std::vector<Header> headers;
  int64_t timestamp_ms = 0;

  TopicPartition tp() const { return {topic, partition}; }
  const std::string* header(std::string_view name) const {
    for (const auto& h : headers)
      if (h.key == name) return &h.value;
    return nullptr;
  }
};

struct Position {
  int32_t partition = 0;
  int64_t offset = 0;
};

class Producer {
 public:
  virtual ~Producer() = default;
  // Blocks until the record is durable; returns where it was written.
  virtual Result<Position> Produce(const Message& message) = 0;
  // Blocks until every record is durable. Not atomic across records (use a transaction).
  virtual Status ProduceBatch(const std::vector<Message>& messages) = 0;
};

struct ConsumerOptions {
  std::string group;           // where committed offsets are stored
  std::string client_id;       // for logs and broker-side quotas
  bool read_committed = true;  // hide records of aborted/open transactions
};

class Consumer {
 public:
  virtual ~Consumer() = default;
  // Replaces the assignment. Newly assigned partitions resume at the committed offset (or the
  // earliest); partitions kept in the assignment keep their current position.
  virtual Status Assign(const std::vector<TopicPartition>& partitions) = 0;
  virtual std::vector<TopicPartition> Assignment() const = 0;
  // Waits up to `timeout` for records of assigned, non-paused partitions; returns at most
  // `max_records` (possibly none). Per partition, records come in offset order.
  virtual Result<std::vector<Record>> Poll(std::chrono::milliseconds timeout, size_t max_records) = 0;
  // Stores offsets (next offset to read) for the group; durable when it returns.
  virtual Status Commit(const std::vector<TopicPartitionOffset>& offsets) = 0;
  virtual Result<std::optional<int64_t>> Committed(const TopicPartition& tp) = 0;
  // Moves the read position of an assigned partition.
  virtual Status Seek(const TopicPartition& tp, int64_t offset) = 0;
  // Paused partitions stay assigned but Poll returns nothing from them.
  virtual Status Pause(const std::vector<TopicPartition>& partitions) = 0;
  virtual Status Resume(const std::vector<TopicPartition>& partitions) = 0;
  // Offset the next produced record of the partition will get (the high watermark; for
  // read_committed, the last stable offset). Used for lag.
  virtual Result<int64_t> EndOffset(const TopicPartition& tp) = 0;
};

// Consume-transform-produce, atomically: the sent records and the consumer offsets become
// visible together on Commit, or not at all.
class TransactionalProducer {
 public:
  virtual ~TransactionalProducer() = default;
  virtual Status Begin() = 0;
  virtual Status Send(const Message& message) = 0;
  virtual Status SendOffsets(const std::string& group, const std::vector<TopicPartitionOffset>& offsets) = 0;
  // kFenced (fatal) when a newer producer with the same transactional id exists; kAborted
  // (retryable) when the transaction had to be aborted: call Abort() and redo the work.
  virtual Status Commit() = 0;
  virtual Status Abort() = 0;
  virtual const std::string& transactional_id() const = 0;
};

class Bus {
 public:
  virtual ~Bus() = default;
  virtual std::string_view Name() const = 0;  // "embedded" or "kafka"
  virtual Result<std::unique_ptr<Producer>> NewProducer(const std::string& client_id) = 0;
  virtual Result<std::unique_ptr<Consumer>> NewConsumer(const ConsumerOptions& options) = 0;
  // Fences older producers that used the same id (their next Commit fails with kFenced).
  virtual Result<std::unique_ptr<TransactionalProducer>> NewTransactionalProducer(
      const std::string& transactional_id) = 0;
  // Creates missing topics of the specs; checks that existing ones have a compatible config and
  // says what differs if not (Code::kFailedPrecondition).
  virtual Status EnsureTopics(const std::vector<TopicSpec>& topics) = 0;
  virtual Result<int32_t> PartitionCount(const std::string& topic) = 0;
  // Lag of this process's consumers of `group` on `topic` as the client library measured it
  // (Kafka: librdkafka statistics, summed over the partitions assigned in this process; see
  // topics/kafka/consumer_stats.h); nullopt when the backend has no such statistics (embedded
  // bus), they are off, or none arrived yet. The lag monitor falls back to end - committed.
  virtual std::optional<int64_t> ReportedConsumerLag(const std::string& /*topic*/,
                                                     const std::string& /*group*/) {
    return std::nullopt;
  }
};

// All partitions of a topic.
Result<std::vector<TopicPartition>> AllPartitions(Bus& bus, const std::string& topic);

}  // namespace faxflow::bus
