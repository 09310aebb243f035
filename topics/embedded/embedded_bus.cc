#include "topics/embedded/embedded_bus.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <limits>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <utility>

#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include "common/log.h"
#include "topics/embedded/codec.h"

namespace faxflow::bus {
namespace {

using namespace embedded;  // NOLINT: the codec is this file's vocabulary

constexpr int32_t kMaxPartitions = 10000;

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::Ok();
  std::string msg = "embedded bus: " + std::string(what) + ": " + s.ToString();
  if (s.IsCorruption()) return Status::Fatal(Code::kCorruption, std::move(msg));
  return Status::Retryable(Code::kIoError, std::move(msg));
}

bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

Status NoSuchTopic(std::string_view topic) {
  return Status::Permanent(Code::kNotFound, "embedded bus: unknown topic '" + std::string(topic) + "'");
}

// One partition's log. Offsets are assigned by the write leader (see EmbeddedBusImpl::Write)
// under the bus's process_mu_, and `end` is published after the write, so records become
// visible in offset order.
struct PartitionState {
  int64_t next_offset = 0;          // guarded by EmbeddedBusImpl::process_mu_
  std::atomic<int64_t> end{0};      // published after the write is durable
  std::atomic<int64_t> start{0};    // log start (after Trim)
};

// A topic; partition count and compaction never change after creation, so pointers to it
// and its partitions stay valid for the bus's lifetime (topics are never deleted).
struct TopicState {
  TopicSpec spec;  // name, partitions, compacted, doc: immutable after creation
  std::atomic<int64_t> retention_ms{0};
  std::atomic<int32_t> max_message_bytes{0};
  std::vector<std::unique_ptr<PartitionState>> partitions;
};

// Fencing state of one transactional id. `mu` is held across a transaction's epoch check and
// its write (by the write leader), and across an epoch bump, so a fenced producer can never
// write after the bump and a new producer only starts once the old commit is visible.
struct TxnIdState {
  std::mutex mu;
  int64_t epoch = 0;  // guarded by mu
};

struct PendingRecord {
  TopicState* topic = nullptr;
  int32_t partition = 0;
  std::string value;  // encoded record
};

// One caller's write, queued for the write leader.
struct WriteRequest {
  const std::vector<PendingRecord>* records = nullptr;
  const std::map<std::string, int64_t>* offsets = nullptr;  // committed-offset key -> offset
  TxnIdState* fence = nullptr;  // transactions: written only if fence->epoch == epoch
  int64_t epoch = 0;
  std::vector<Position>* positions = nullptr;  // out, optional
  Status status;
  bool done = false;  // guarded by EmbeddedBusImpl::queue_mu_
};

struct DbDeleter {
  void operator()(rocksdb::DB* db) const {
    if (db == nullptr) return;
    rocksdb::Status s = db->Close();
    if (!s.ok()) FF_LOG_WARN(Logger("bus"), "embedded bus: close: {}", s.ToString());
    delete db;
  }
};
using DbPtr = std::unique_ptr<rocksdb::DB, DbDeleter>;

class EmbeddedBusImpl;

// Stateless handle: every call goes straight to the bus's group-commit write path.
class EmbeddedProducer final : public Producer {
 public:
  explicit EmbeddedProducer(EmbeddedBusImpl* bus) : bus_(bus) {}
  Result<Position> Produce(const Message& message) override;
  Status ProduceBatch(const std::vector<Message>& messages) override;

 private:
  EmbeddedBusImpl* bus_;
};

// Positions live in memory (per assigned partition); committed offsets in RocksDB. One thread
// at a time; Poll reads under a fresh iterator and blocks on the bus's data signal.
class EmbeddedConsumer final : public Consumer {
 public:
  EmbeddedConsumer(EmbeddedBusImpl* bus, ConsumerOptions options) : bus_(bus), options_(std::move(options)) {}
  Status Assign(const std::vector<TopicPartition>& partitions) override;
  std::vector<TopicPartition> Assignment() const override;
  Result<std::vector<Record>> Poll(std::chrono::milliseconds timeout, size_t max_records) override;
  Status Commit(const std::vector<TopicPartitionOffset>& offsets) override;
  Result<std::optional<int64_t>> Committed(const TopicPartition& tp) override;
  Status Seek(const TopicPartition& tp, int64_t offset) override;
  Status Pause(const std::vector<TopicPartition>& partitions) override;
  Status Resume(const std::vector<TopicPartition>& partitions) override;
  Result<int64_t> EndOffset(const TopicPartition& tp) override;

 private:
  struct Assigned {
    TopicPartition tp;
    PartitionState* ps = nullptr;
    int64_t position = 0;
    bool paused = false;
  };
  Assigned* Find(const TopicPartition& tp);
  Result<std::vector<Record>> ReadAvailable(size_t max_records);
  Status SetPaused(const std::vector<TopicPartition>& partitions, bool paused);

  EmbeddedBusImpl* bus_;
  ConsumerOptions options_;
  std::vector<Assigned> assigned_;  // sorted by tp
  size_t next_first_ = 0;           // round-robin start, so no partition starves the others
};

// Buffers Sends and SendOffsets in memory; Commit hands them to the bus as one write that the
// leader performs only if this producer's epoch is still current. Fenced is terminal.
class EmbeddedTxnProducer final : public TransactionalProducer {
 public:
  EmbeddedTxnProducer(EmbeddedBusImpl* bus, std::string id, std::shared_ptr<TxnIdState> state, int64_t epoch)
      : bus_(bus), id_(std::move(id)), state_(std::move(state)), epoch_(epoch) {}
  Status Begin() override;
  Status Send(const Message& message) override;
  Status SendOffsets(const std::string& group, const std::vector<TopicPartitionOffset>& offsets) override;
  Status Commit() override;
  Status Abort() override;
  const std::string& transactional_id() const override { return id_; }

 private:
  Status Fenced() const {
    return Status::Fatal(Code::kFenced, "embedded bus: transactional id '" + id_ +
                                            "' was taken over by a newer producer (epoch " +
                                            std::to_string(epoch_) + " is stale)");
  }
  Status NotInTransaction(std::string_view op) const {
    return Status::Permanent(Code::kFailedPrecondition,
                             "embedded bus: " + std::string(op) + " outside a transaction (call Begin)");
  }
  void Clear() {
    records_.clear();
    offsets_.clear();
    in_txn_ = false;
  }

  EmbeddedBusImpl* bus_;
  std::string id_;
  std::shared_ptr<TxnIdState> state_;
  int64_t epoch_;
  bool in_txn_ = false;
  bool fenced_ = false;
  std::vector<PendingRecord> records_;
  std::map<std::string, int64_t> offsets_;  // committed-offset key -> offset (last wins)
};

// Owns the RocksDB handle, the in-memory topic table (recovered at open) and the write queue.
class EmbeddedBusImpl final : public EmbeddedBus {
 public:
  EmbeddedBusImpl(DbPtr db, const EmbeddedBusOptions& options)
      : db_(std::move(db)), clock_(options.clock != nullptr ? options.clock : &SystemClock::Instance()) {
    write_options_.sync = options.sync;
  }

  Status Load() {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(std::string(kTopicPrefix)); it->Valid() && StartsWith(it->key().ToStringView(), kTopicPrefix);
         it->Next()) {
      std::string_view name = it->key().ToStringView().substr(kTopicPrefix.size());
      FF_ASSIGN_OR_RETURN(TopicSpec spec, DecodeTopicSpec(name, it->value().ToStringView()));
      FF_ASSIGN_OR_RETURN(auto topic, Recover(std::move(spec)));
      topics_.emplace(topic->spec.name, std::move(topic));
    }
    return FromRocks(it->status(), "reading topics");
  }

  std::string_view Name() const override { return "embedded"; }

  Result<std::unique_ptr<Producer>> NewProducer(const std::string& /*client_id*/) override {
    return std::unique_ptr<Producer>(std::make_unique<EmbeddedProducer>(this));
  }

  Result<std::unique_ptr<Consumer>> NewConsumer(const ConsumerOptions& options) override {
    return std::unique_ptr<Consumer>(std::make_unique<EmbeddedConsumer>(this, options));
  }

  Result<std::unique_ptr<TransactionalProducer>> NewTransactionalProducer(const std::string& id) override {
    if (id.empty())
      return Status::Permanent(Code::kInvalidArgument, "embedded bus: empty transactional id");
    std::shared_ptr<TxnIdState> state;
    {
      std::lock_guard lock(txn_mu_);
      auto& slot = txn_ids_[id];
      if (!slot) {
        auto fresh = std::make_shared<TxnIdState>();
        std::string stored;
        rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), EpochKey(id), &stored);
        if (s.ok()) {
          Result<int64_t> epoch = DecodeInt64(stored);
          if (!epoch.ok()) {
            txn_ids_.erase(id);
            return epoch.status();
          }
          fresh->epoch = *epoch;
        } else if (!s.IsNotFound()) {
          txn_ids_.erase(id);
          return FromRocks(s, "reading producer epoch");
        }
        slot = std::move(fresh);
      }
      state = slot;
    }
    std::lock_guard lock(state->mu);
    int64_t epoch = state->epoch + 1;
    FF_RETURN_IF_ERROR(FromRocks(db_->Put(write_options_, EpochKey(id), EncodeInt64(epoch)), "storing producer epoch"));
    state->epoch = epoch;
    return std::unique_ptr<TransactionalProducer>(std::make_unique<EmbeddedTxnProducer>(this, id, std::move(state), epoch));
  }

  Status EnsureTopics(const std::vector<TopicSpec>& specs) override {
    std::unique_lock lock(topics_mu_);
    std::map<std::string, TopicSpec> wanted;  // validated, deduplicated
    std::string problems;
    auto note = [&](const std::string& p) { problems += (problems.empty() ? "" : "; ") + p; };
    for (const auto& spec : specs) {
      if (!ValidTopicName(spec.name))
        return Status::Permanent(Code::kInvalidArgument, "embedded bus: invalid topic name '" + spec.name +
                                                              "' (1..249 of [A-Za-z0-9._-])");
      if (spec.partitions <= 0 || spec.partitions > kMaxPartitions || spec.max_message_bytes <= 0)
        return Status::Permanent(Code::kInvalidArgument,
                                 "embedded bus: topic '" + spec.name + "': partitions must be 1.." +
                                     std::to_string(kMaxPartitions) + " and max_message_bytes > 0");
      const TopicSpec* existing = nullptr;
      if (auto it = topics_.find(spec.name); it != topics_.end()) existing = &it->second->spec;
      if (auto it = wanted.find(spec.name); it != wanted.end()) existing = &it->second;
      if (existing != nullptr) {
        if (existing->partitions != spec.partitions)
          note("topic '" + spec.name + "' has " + std::to_string(existing->partitions) + " partitions, wanted " +
               std::to_string(spec.partitions));
        if (existing->compacted != spec.compacted)
          note("topic '" + spec.name + "' is " + (existing->compacted ? "" : "not ") + "compacted, wanted " +
               (spec.compacted ? "compacted" : "not compacted"));
      }
      wanted[spec.name] = spec;
    }
    if (!problems.empty())
      return Status::Permanent(Code::kFailedPrecondition, "embedded bus: incompatible topics: " + problems);

    // New topics are created; retention and max message size of existing ones are updated
    // (configs an operator may change, like `kafka-configs --alter`).
    rocksdb::WriteBatch batch;
    for (const auto& [name, spec] : wanted) {
      auto it = topics_.find(name);
      if (it != topics_.end() && it->second->retention_ms.load() == spec.retention_ms &&
          it->second->max_message_bytes.load() == spec.max_message_bytes)
        continue;
      TopicSpec stored = spec;
      if (it != topics_.end()) stored.doc = it->second->spec.doc;
      FF_RETURN_IF_ERROR(FromRocks(batch.Put(TopicKey(name), EncodeTopicSpec(stored)), "batching topic"));
    }
    if (batch.Count() == 0) return Status::Ok();
    FF_RETURN_IF_ERROR(FromRocks(db_->Write(write_options_, &batch), "storing topics"));
    for (const auto& [name, spec] : wanted) {
      auto it = topics_.find(name);
      if (it == topics_.end()) {
        topics_.emplace(name, NewTopicState(spec));
        FF_LOG_INFO(Logger("bus"), "embedded bus: created topic {} with {} partitions", name, spec.partitions);
      } else {
        it->second->retention_ms.store(spec.retention_ms);
        it->second->max_message_bytes.store(spec.max_message_bytes);
      }
    }
    return Status::Ok();
  }

  Result<int32_t> PartitionCount(const std::string& topic) override {
    FF_ASSIGN_OR_RETURN(TopicState * t, FindTopicState(topic));
    return t->spec.partitions;
  }

  Result<BusDescription> Describe() override {
    BusDescription out;
    {
      std::shared_lock lock(topics_mu_);
      for (const auto& [name, t] : topics_) {
        TopicSpec spec = t->spec;
        spec.retention_ms = t->retention_ms.load();
        spec.max_message_bytes = t->max_message_bytes.load();
        out.topics.push_back(std::move(spec));
        for (int32_t p = 0; p < t->spec.partitions; ++p) {
          const auto& ps = *t->partitions[static_cast<size_t>(p)];
          out.partitions.push_back({name, p, ps.start.load(), ps.end.load()});
        }
      }
    }
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(std::string(kCommittedPrefix)); it->Valid() && StartsWith(it->key().ToStringView(), kCommittedPrefix);
         it->Next()) {
      GroupOffsetDescription g;
      if (!ParseCommittedKey(it->key().ToStringView(), &g.topic, &g.partition, &g.group))
        return Status::Fatal(Code::kCorruption, "embedded bus: malformed committed-offset key");
      FF_ASSIGN_OR_RETURN(g.committed, DecodeInt64(it->value().ToStringView()));
      out.groups.push_back(std::move(g));
    }
    FF_RETURN_IF_ERROR(FromRocks(it->status(), "reading committed offsets"));
    return out;
  }

  Status Trim(const TopicPartition& tp, int64_t before_offset) override {
    FF_ASSIGN_OR_RETURN(PartitionState * ps, FindPartition(tp));
    std::lock_guard lock(process_mu_);
    int64_t bound = std::min(before_offset, ps->next_offset);
    if (bound <= ps->start.load()) return Status::Ok();
    rocksdb::WriteBatch batch;
    FF_RETURN_IF_ERROR(FromRocks(batch.DeleteRange(RecordKey(tp.topic, tp.partition, 0),
                                                   RecordKey(tp.topic, tp.partition, bound)),
                                 "batching trim"));
    FF_RETURN_IF_ERROR(FromRocks(batch.Put(StartOffsetKey(tp.topic, tp.partition), EncodeInt64(bound)), "batching trim"));
    FF_RETURN_IF_ERROR(FromRocks(db_->Write(write_options_, &batch), "trimming"));
    ps->start.store(bound);
    return Status::Ok();
  }

  Result<int64_t> TrimCommitted() override {
    std::vector<TopicState*> topics;
    {
      std::shared_lock lock(topics_mu_);
      for (const auto& [name, t] : topics_) topics.push_back(t.get());
    }
    const int64_t now_ms = clock_->NowMillis();
    int64_t trimmed = 0;
    for (TopicState* t : topics) {
      const int64_t retention = t->retention_ms.load();
      if (t->spec.compacted || retention < 0) continue;
      for (int32_t p = 0; p < t->spec.partitions; ++p) {
        FF_ASSIGN_OR_RETURN(std::optional<int64_t> min_committed, MinCommitted(t->spec.name, p));
        if (!min_committed) continue;
        PartitionState& ps = *t->partitions[static_cast<size_t>(p)];
        const int64_t start = ps.start.load();
        int64_t bound = std::min(*min_committed, ps.end.load());
        // Stop at the first record younger than the retention.
        std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
        const std::string prefix = PartitionPrefix(t->spec.name, p);
        for (it->Seek(RecordKey(t->spec.name, p, start)); it->Valid() && StartsWith(it->key().ToStringView(), prefix);
             it->Next()) {
          int64_t offset = RecordKeyOffset(it->key().ToStringView());
          if (offset >= bound) break;
          FF_ASSIGN_OR_RETURN(int64_t ts, DecodeRecordTimestamp(it->value().ToStringView()));
          if (now_ms - ts < retention) {
            bound = offset;
            break;
          }
        }
        FF_RETURN_IF_ERROR(FromRocks(it->status(), "scanning for retention"));
        if (bound <= start) continue;
        FF_RETURN_IF_ERROR(Trim({t->spec.name, p}, bound));
        trimmed += bound - start;
      }
    }
    return trimmed;
  }

  Result<int64_t> Compact() override {
    std::vector<TopicState*> topics;
    {
      std::shared_lock lock(topics_mu_);
      for (const auto& [name, t] : topics_)
        if (t->spec.compacted) topics.push_back(t.get());
    }
    int64_t deleted = 0;
    for (TopicState* t : topics) {
      for (int32_t p = 0; p < t->spec.partitions; ++p) {
        const int64_t end = t->partitions[static_cast<size_t>(p)]->end.load(std::memory_order_acquire);
        const std::string prefix = PartitionPrefix(t->spec.name, p);
        // Pass 1: newest offset per key below `end`; pass 2: delete the older ones.
        std::map<std::string, int64_t> newest;
        for (int pass = 0; pass < 2; ++pass) {
          rocksdb::WriteBatch batch;
          std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
          for (it->Seek(prefix); it->Valid() && StartsWith(it->key().ToStringView(), prefix); it->Next()) {
            const int64_t offset = RecordKeyOffset(it->key().ToStringView());
            if (offset >= end) break;
            Record r;
            FF_RETURN_IF_ERROR(DecodeRecord(it->value().ToStringView(), &r));
            if (pass == 0) {
              newest[r.key] = offset;
            } else if (newest[r.key] != offset) {
              FF_RETURN_IF_ERROR(FromRocks(batch.Delete(it->key()), "batching compaction"));
            }
          }
          FF_RETURN_IF_ERROR(FromRocks(it->status(), "scanning for compaction"));
          if (pass == 1 && batch.Count() > 0) {
            FF_RETURN_IF_ERROR(FromRocks(db_->Write(write_options_, &batch), "compacting"));
            deleted += batch.Count();
          }
        }
      }
    }
    return deleted;
  }

  // ---- shared with the clients ----

  Result<TopicState*> FindTopicState(std::string_view topic) const {
    std::shared_lock lock(topics_mu_);
    auto it = topics_.find(topic);
    if (it == topics_.end()) return NoSuchTopic(topic);
    return it->second.get();
  }

  Result<PartitionState*> FindPartition(const TopicPartition& tp) const {
    FF_ASSIGN_OR_RETURN(TopicState * t, FindTopicState(tp.topic));
    if (tp.partition < 0 || tp.partition >= t->spec.partitions)
      return Status::Permanent(Code::kNotFound, "embedded bus: topic '" + tp.topic + "' has no partition " +
                                                    std::to_string(tp.partition) + " (it has " +
                                                    std::to_string(t->spec.partitions) + ")");
    return t->partitions[static_cast<size_t>(tp.partition)].get();
  }

  // Validates a message and encodes it (timestamped now).
  Result<PendingRecord> Prepare(const Message& m) const {
    FF_ASSIGN_OR_RETURN(TopicState * t, FindTopicState(m.topic));
    PendingRecord rec;
    rec.topic = t;
    rec.partition = m.partition ? *m.partition : PartitionForKey(m.key, t->spec.partitions);
    if (rec.partition < 0 || rec.partition >= t->spec.partitions)
      return Status::Permanent(Code::kNotFound, "embedded bus: topic '" + m.topic + "' has no partition " +
                                                    std::to_string(rec.partition));
    rec.value = EncodeRecord(clock_->NowMillis(), m.key, m.value, m.headers);
    const int32_t limit = t->max_message_bytes.load();
    if (rec.value.size() > static_cast<size_t>(limit))
      return Status::Permanent(Code::kResourceExhausted,
                               "embedded bus: record of " + std::to_string(rec.value.size()) + " bytes exceeds " +
                                   m.topic + "'s max_message_bytes " + std::to_string(limit));
    return rec;
  }

  // Writes records (offsets assigned here) and committed offsets atomically, synced, with
  // group commit: concurrent callers queue their requests; one of them (the leader) takes the
  // whole queue, assigns offsets, writes it as one WriteBatch (one fsync) and publishes the
  // new end offsets; the others wait for the outcome. One leader at a time, so offsets become
  // visible in order. A failed RocksDB write fails every request of its group.
  Status Write(const std::vector<PendingRecord>& records, const std::map<std::string, int64_t>& offsets,
               std::vector<Position>* positions, TxnIdState* fence = nullptr, int64_t epoch = 0) {
    WriteRequest req;
    req.records = &records;
    req.offsets = &offsets;
    req.fence = fence;
    req.epoch = epoch;
    req.positions = positions;
    std::unique_lock lock(queue_mu_);
    queue_.push_back(&req);
    while (!req.done) {
      if (leader_active_) {
        queue_cv_.wait(lock);
        continue;
      }
      leader_active_ = true;
      std::vector<WriteRequest*> group;
      group.swap(queue_);
      lock.unlock();
      ProcessGroup(group);
      lock.lock();
      for (WriteRequest* r : group) r->done = true;
      leader_active_ = false;  // hand over: a waiting caller leads the next group
      queue_cv_.notify_all();
    }
    return req.status;
  }

  Result<std::optional<int64_t>> ReadCommitted(const std::string& group, const TopicPartition& tp) {
    std::string stored;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), CommittedKey(tp.topic, tp.partition, group), &stored);
    if (s.IsNotFound()) return std::optional<int64_t>();
    FF_RETURN_IF_ERROR(FromRocks(s, "reading committed offset"));
    FF_ASSIGN_OR_RETURN(int64_t offset, DecodeInt64(stored));
    return std::optional<int64_t>(offset);
  }

  Result<std::optional<int64_t>> MinCommitted(const std::string& topic, int32_t partition) {
    std::string prefix = CommittedKey(topic, partition, "");
    std::optional<int64_t> min;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && StartsWith(it->key().ToStringView(), prefix); it->Next()) {
      FF_ASSIGN_OR_RETURN(int64_t offset, DecodeInt64(it->value().ToStringView()));
      min = min ? std::min(*min, offset) : offset;
    }
    FF_RETURN_IF_ERROR(FromRocks(it->status(), "reading committed offsets"));
    return min;
  }

  Status WriteOffsets(const std::map<std::string, int64_t>& offsets) { return Write({}, offsets, nullptr); }

  rocksdb::DB* db() { return db_.get(); }

  uint64_t DataSeq() const { return data_seq_.load(std::memory_order_acquire); }

  // Blocks until a record was written after `seq` was read, or the deadline.
  void WaitForData(uint64_t seq, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(notify_mu_);
    notify_cv_.wait_until(lock, deadline, [&] { return data_seq_.load(std::memory_order_acquire) != seq; });
  }

 private:
  void ProcessGroup(const std::vector<WriteRequest*>& group) {
    std::lock_guard process(process_mu_);
    // Fencing: lock each transactional id once, check epochs, hold until the write is done.
    std::vector<TxnIdState*> fences;
    for (WriteRequest* r : group)
      if (r->fence != nullptr) fences.push_back(r->fence);
    std::sort(fences.begin(), fences.end());
    fences.erase(std::unique(fences.begin(), fences.end()), fences.end());
    std::vector<std::unique_lock<std::mutex>> fence_locks;
    fence_locks.reserve(fences.size());
    for (TxnIdState* f : fences) fence_locks.emplace_back(f->mu);

    rocksdb::WriteBatch batch;
    std::map<PartitionState*, int64_t> added;
    std::vector<WriteRequest*> written;
    for (WriteRequest* r : group) {
      if (r->fence != nullptr && r->fence->epoch != r->epoch) {
        r->status = Status::Fatal(Code::kFenced, "embedded bus: producer epoch is stale");
        continue;
      }
      if (r->positions != nullptr) r->positions->clear();
      Status s;
      for (const auto& rec : *r->records) {
        PartitionState* ps = rec.topic->partitions[static_cast<size_t>(rec.partition)].get();
        const int64_t offset = ps->next_offset + added[ps]++;
        s = FromRocks(batch.Put(RecordKey(rec.topic->spec.name, rec.partition, offset), rec.value), "batching");
        if (!s.ok()) break;
        if (r->positions != nullptr) r->positions->push_back({rec.partition, offset});
      }
      for (const auto& [key, offset] : *r->offsets) {
        if (!s.ok()) break;
        s = FromRocks(batch.Put(key, EncodeInt64(offset)), "batching");
      }
      if (!s.ok()) {  // the batch is now unusable: fail the whole group
        for (WriteRequest* other : group) other->status = s;
        return;
      }
      written.push_back(r);
    }
    Status s;
    if (batch.Count() > 0) s = FromRocks(db_->Write(write_options_, &batch), "writing records");
    for (WriteRequest* r : written) r->status = s;
    if (!s.ok()) return;
    for (const auto& [ps, n] : added) {
      ps->next_offset += n;
      ps->end.store(ps->next_offset, std::memory_order_release);
    }
    if (!added.empty()) NotifyData();
  }

  void NotifyData() {
    data_seq_.fetch_add(1, std::memory_order_acq_rel);
    { std::lock_guard lock(notify_mu_); }
    notify_cv_.notify_all();
  }

  static std::unique_ptr<TopicState> NewTopicState(const TopicSpec& spec) {
    auto t = std::make_unique<TopicState>();
    t->spec = spec;
    t->retention_ms.store(spec.retention_ms);
    t->max_message_bytes.store(spec.max_message_bytes);
    for (int32_t p = 0; p < spec.partitions; ++p) t->partitions.push_back(std::make_unique<PartitionState>());
    return t;
  }

  // Rebuilds a stored topic: log start and next offset of every partition.
  Result<std::unique_ptr<TopicState>> Recover(TopicSpec spec) {
    auto t = NewTopicState(spec);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (int32_t p = 0; p < spec.partitions; ++p) {
      PartitionState& ps = *t->partitions[static_cast<size_t>(p)];
      int64_t start = 0;
      std::string stored;
      rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), StartOffsetKey(spec.name, p), &stored);
      if (s.ok()) {
        FF_ASSIGN_OR_RETURN(start, DecodeInt64(stored));
      } else if (!s.IsNotFound()) {
        return FromRocks(s, "reading log start");
      }
      int64_t next = start;
      const std::string prefix = PartitionPrefix(spec.name, p);
      it->SeekForPrev(RecordKey(spec.name, p, std::numeric_limits<int64_t>::max()));
      if (it->Valid() && StartsWith(it->key().ToStringView(), prefix) &&
          it->key().size() == prefix.size() + 8)
        next = std::max(next, RecordKeyOffset(it->key().ToStringView()) + 1);
      FF_RETURN_IF_ERROR(FromRocks(it->status(), "recovering end offset"));
      ps.start.store(start);
      ps.next_offset = next;
      ps.end.store(next);
    }
    return t;
  }

  DbPtr db_;
  Clock* clock_;
  rocksdb::WriteOptions write_options_;

  mutable std::shared_mutex topics_mu_;
  std::map<std::string, std::unique_ptr<TopicState>, std::less<>> topics_;  // guarded by topics_mu_

  std::mutex txn_mu_;
  std::map<std::string, std::shared_ptr<TxnIdState>> txn_ids_;  // guarded by txn_mu_

  // Group commit (Write): the queue and whether a leader is processing a group.
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::vector<WriteRequest*> queue_;  // guarded by queue_mu_
  bool leader_active_ = false;        // guarded by queue_mu_
  // Held by the leader while it assigns offsets and writes; by Trim. Guards next_offset.
  std::mutex process_mu_;

  std::atomic<uint64_t> data_seq_{0};
  std::mutex notify_mu_;
  std::condition_variable notify_cv_;
};

// ---- Producer ----

Result<Position> EmbeddedProducer::Produce(const Message& message) {
  FF_ASSIGN_OR_RETURN(PendingRecord rec, bus_->Prepare(message));
  std::vector<PendingRecord> records;
  records.push_back(std::move(rec));
  std::vector<Position> positions;
  FF_RETURN_IF_ERROR(bus_->Write(records, {}, &positions));
  return positions.front();
}

Status EmbeddedProducer::ProduceBatch(const std::vector<Message>& messages) {
  std::vector<PendingRecord> records;
  records.reserve(messages.size());
  for (const auto& m : messages) {
    FF_ASSIGN_OR_RETURN(PendingRecord rec, bus_->Prepare(m));
    records.push_back(std::move(rec));
  }
  if (records.empty()) return Status::Ok();
  return bus_->Write(records, {}, nullptr);
}

// ---- Consumer ----

EmbeddedConsumer::Assigned* EmbeddedConsumer::Find(const TopicPartition& tp) {
  auto it = std::lower_bound(assigned_.begin(), assigned_.end(), tp,
                             [](const Assigned& a, const TopicPartition& b) { return a.tp < b; });
  return it != assigned_.end() && it->tp == tp ? &*it : nullptr;
}

Status EmbeddedConsumer::Assign(const std::vector<TopicPartition>& partitions) {
  std::vector<TopicPartition> wanted = partitions;
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  std::vector<Assigned> next;
  next.reserve(wanted.size());
  for (const auto& tp : wanted) {
    FF_ASSIGN_OR_RETURN(PartitionState * ps, bus_->FindPartition(tp));
    if (const Assigned* kept = Find(tp)) {
      next.push_back(*kept);
      continue;
    }
    int64_t position = ps->start.load();
    if (!options_.group.empty()) {
      FF_ASSIGN_OR_RETURN(std::optional<int64_t> committed, bus_->ReadCommitted(options_.group, tp));
      if (committed) position = *committed;
    }
    next.push_back({tp, ps, position, false});
  }
  assigned_ = std::move(next);
  return Status::Ok();
}

std::vector<TopicPartition> EmbeddedConsumer::Assignment() const {
  std::vector<TopicPartition> out;
  out.reserve(assigned_.size());
  for (const auto& a : assigned_) out.push_back(a.tp);
  return out;
}

Result<std::vector<Record>> EmbeddedConsumer::ReadAvailable(size_t max_records) {
  std::vector<Record> out;
  const size_t n = assigned_.size();
  if (n == 0 || max_records == 0) return out;
  // Ends are read before the iterator is created: everything below them is in its view.
  std::vector<int64_t> ends(n);
  bool any = false;
  for (size_t i = 0; i < n; ++i) {
    Assigned& a = assigned_[i];
    ends[i] = a.ps->end.load(std::memory_order_acquire);
    a.position = std::max(a.position, a.ps->start.load());
    any = any || (!a.paused && a.position < ends[i]);
  }
  if (!any) return out;
  std::unique_ptr<rocksdb::Iterator> it(bus_->db()->NewIterator(rocksdb::ReadOptions()));
  const size_t first = next_first_++ % n;
  for (size_t k = 0; k < n && out.size() < max_records; ++k) {
    const size_t i = (first + k) % n;
    Assigned& a = assigned_[i];
    if (a.paused || a.position >= ends[i]) continue;
    const std::string prefix = PartitionPrefix(a.tp.topic, a.tp.partition);
    bool full = false;
    for (it->Seek(RecordKey(a.tp.topic, a.tp.partition, a.position));
         it->Valid() && StartsWith(it->key().ToStringView(), prefix); it->Next()) {
      const int64_t offset = RecordKeyOffset(it->key().ToStringView());
      if (offset >= ends[i]) break;
      if (out.size() >= max_records) {
        full = true;
        break;
      }
      Record r;
      r.topic = a.tp.topic;
      r.partition = a.tp.partition;
      r.offset = offset;
      FF_RETURN_IF_ERROR(DecodeRecord(it->value().ToStringView(), &r));
      out.push_back(std::move(r));
      a.position = offset + 1;
    }
    FF_RETURN_IF_ERROR(FromRocks(it->status(), "reading records"));
    // Range exhausted: anything missing below the end was trimmed.
    if (!full && out.size() < max_records) a.position = std::max(a.position, ends[i]);
  }
  return out;
}

Result<std::vector<Record>> EmbeddedConsumer::Poll(std::chrono::milliseconds timeout, size_t max_records) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const uint64_t seq = bus_->DataSeq();
    FF_ASSIGN_OR_RETURN(std::vector<Record> records, ReadAvailable(max_records));
    if (!records.empty() || max_records == 0 || std::chrono::steady_clock::now() >= deadline) return records;
    bus_->WaitForData(seq, deadline);
  }
}

Status EmbeddedConsumer::Commit(const std::vector<TopicPartitionOffset>& offsets) {
  if (options_.group.empty())
    return Status::Permanent(Code::kFailedPrecondition, "embedded bus: Commit needs a consumer group");
  std::map<std::string, int64_t> batch;
  for (const auto& o : offsets) {
    FF_RETURN_IF_ERROR(bus_->FindPartition(o.tp).status());
    if (o.offset < 0) return Status::Permanent(Code::kInvalidArgument, "embedded bus: negative commit offset");
    batch[CommittedKey(o.tp.topic, o.tp.partition, options_.group)] = o.offset;
  }
  if (batch.empty()) return Status::Ok();
  return bus_->WriteOffsets(batch);
}

Result<std::optional<int64_t>> EmbeddedConsumer::Committed(const TopicPartition& tp) {
  FF_RETURN_IF_ERROR(bus_->FindPartition(tp).status());
  if (options_.group.empty()) return std::optional<int64_t>();
  return bus_->ReadCommitted(options_.group, tp);
}

Status EmbeddedConsumer::Seek(const TopicPartition& tp, int64_t offset) {
  Assigned* a = Find(tp);
  if (a == nullptr)
    return Status::Permanent(Code::kFailedPrecondition,
                             "embedded bus: Seek on unassigned partition " + tp.topic + "/" + std::to_string(tp.partition));
  if (offset < 0) return Status::Permanent(Code::kInvalidArgument, "embedded bus: negative seek offset");
  a->position = offset;
  return Status::Ok();
}

Status EmbeddedConsumer::SetPaused(const std::vector<TopicPartition>& partitions, bool paused) {
  for (const auto& tp : partitions)
    if (Find(tp) == nullptr)
      return Status::Permanent(Code::kFailedPrecondition, "embedded bus: partition " + tp.topic + "/" +
                                                              std::to_string(tp.partition) + " is not assigned");
  for (const auto& tp : partitions) Find(tp)->paused = paused;
  return Status::Ok();
}

Status EmbeddedConsumer::Pause(const std::vector<TopicPartition>& partitions) { return SetPaused(partitions, true); }
Status EmbeddedConsumer::Resume(const std::vector<TopicPartition>& partitions) { return SetPaused(partitions, false); }

Result<int64_t> EmbeddedConsumer::EndOffset(const TopicPartition& tp) {
  FF_ASSIGN_OR_RETURN(PartitionState * ps, bus_->FindPartition(tp));
  return ps->end.load(std::memory_order_acquire);
}

// ---- TransactionalProducer ----

Status EmbeddedTxnProducer::Begin() {
  if (fenced_) return Fenced();
  {
    std::lock_guard lock(state_->mu);
    if (state_->epoch != epoch_) {
      fenced_ = true;
      return Fenced();
    }
  }
  if (in_txn_)
    return Status::Permanent(Code::kFailedPrecondition, "embedded bus: Begin while a transaction is open");
  in_txn_ = true;
  return Status::Ok();
}

Status EmbeddedTxnProducer::Send(const Message& message) {
  if (fenced_) return Fenced();
  if (!in_txn_) return NotInTransaction("Send");
  FF_ASSIGN_OR_RETURN(PendingRecord rec, bus_->Prepare(message));
  records_.push_back(std::move(rec));
  return Status::Ok();
}

Status EmbeddedTxnProducer::SendOffsets(const std::string& group, const std::vector<TopicPartitionOffset>& offsets) {
  if (fenced_) return Fenced();
  if (!in_txn_) return NotInTransaction("SendOffsets");
  if (group.empty()) return Status::Permanent(Code::kInvalidArgument, "embedded bus: SendOffsets needs a group");
  for (const auto& o : offsets) {
    FF_RETURN_IF_ERROR(bus_->FindPartition(o.tp).status());
    if (o.offset < 0) return Status::Permanent(Code::kInvalidArgument, "embedded bus: negative offset");
    offsets_[CommittedKey(o.tp.topic, o.tp.partition, group)] = o.offset;
  }
  return Status::Ok();
}

Status EmbeddedTxnProducer::Commit() {
  if (fenced_) return Fenced();
  if (!in_txn_) return NotInTransaction("Commit");
  Status s = bus_->Write(records_, offsets_, nullptr, state_.get(), epoch_);
  Clear();
  if (s.code() == Code::kFenced) {
    fenced_ = true;
    return Fenced();
  }
  if (!s.ok())
    return Status::Retryable(Code::kAborted, "embedded bus: transaction aborted: " + s.message());
  return Status::Ok();
}

Status EmbeddedTxnProducer::Abort() {
  Clear();
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<EmbeddedBus>> EmbeddedBus::Open(const std::string& dir, const EmbeddedBusOptions& options) {
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  db_options.keep_log_file_num = 3;
  db_options.max_log_file_size = 8 << 20;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir, &raw);
  DbPtr db(raw);
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("lock") != std::string::npos)
      return Status::Retryable(Code::kUnavailable, "embedded bus: " + dir + " is in use by another process: " + s.ToString());
    return FromRocks(s, "opening " + dir);
  }
  auto bus = std::make_unique<EmbeddedBusImpl>(std::move(db), options);
  FF_RETURN_IF_ERROR(bus->Load().WithContext("embedded bus: opening " + dir));
  return std::unique_ptr<EmbeddedBus>(std::move(bus));
}

Result<std::unique_ptr<Bus>> OpenEmbeddedBus(const std::string& dir, const EmbeddedBusOptions& options) {
  FF_ASSIGN_OR_RETURN(std::unique_ptr<EmbeddedBus> bus, EmbeddedBus::Open(dir, options));
  return std::unique_ptr<Bus>(std::move(bus));
}

}  // namespace faxflow::bus
