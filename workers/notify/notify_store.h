// Durable state of the webhook notifier, on RocksDB (<data_dir>/notify):
//   ep/<endpoint id>             Endpoint (tenant, url, subscribed types, secrets)
//   ts/<tenant>                  the tenant's secrets for per-fax callback_url deliveries
//   cb/<fax id>                  callback_url and tenant of a fax (from its Submission)
//   dl/<delivery id>             Delivery: one event for one target, with its retry state
//   due/<next ms>/<delivery id>  index of pending deliveries by due time
//   fin/<finished ms>/<delivery id>  index of finished (delivered, dead) deliveries by the time
//                                they finished, for pruning (PruneFinished); value as due/
//   meta/fin_index               marker: the fin/ index covers every finished delivery
//   log/<target>/<ms>/<id>/<n>   delivery log: one entry per attempt (GET .../endpoints/{id})
//   lout/<log key>               outbox: a log entry of this node not yet published to
//                                fax.webhook-log (only with a log mirror, several gateway nodes)
//   dout/<delivery id>           outbox: the latest state of a delivery changed on this node and
//                                not yet published to fax.webhook-deliveries (only with a
//                                delivery mirror, several gateway nodes)
// The value of a due/ entry is the delivery's notify partition (decimal; empty: unknown), so the
// dispatcher can skip the deliveries of partitions another node owns without reading them.
// Delivery ids are derived from (event id, target), so an event consumed twice (at-least-once)
// creates its deliveries once.
//
// Threading: thread-safe (one mutex around read-modify-write; RocksDB itself is thread-safe).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace rocksdb {
class DB;
}

namespace faxflow::notify {

struct Secret {
  std::string value;       // "whsec_..."
  int64_t expires_ms = 0;  // 0: current; else the old secret of a rotation, dropped after this
};

struct Endpoint {
  std::string id;  // "whe_..."
  std::string tenant;
  std::string url;
  std::vector<std::string> events;  // "fax.delivered", ..., or "*"
  std::vector<Secret> secrets;
  std::string description;
  int64_t created_ms = 0;
  bool Subscribed(const std::string& type) const;
};

struct Delivery {
  std::string id;      // "msg_..." = webhook-id
  std::string target;  // "ep:<endpoint id>" or "cb:<fax id>"
  std::string tenant;
  std::string url;
  std::string type;
  std::string event_id;
  std::string body;
  int64_t first_ms = 0;  // first attempt due (creation)
  int64_t next_ms = 0;   // next attempt due
  int attempts = 0;
  std::string state = "pending";  // pending | delivered | dead
  int last_status = 0;
  std::string last_error;
  // The partition of fax.submissions/fax.events the event came from (-1: none, e.g. broadcast
  // progress published in-process). With several gateway nodes, the node owning this partition
  // makes the delivery's attempts, so a pending delivery moves with its partition.
  int32_t partition = -1;
  // When the delivery finished (delivered or dead); 0 while pending, and in records written
  // before this field existed (then next_ms, the due time of its last attempt, stands in).
  int64_t finished_ms = 0;
};

struct LogEntry {
  std::string delivery_id;
  std::string type;
  std::string event_id;
  int attempt = 0;
  int64_t at_ms = 0;
  int status = 0;  // HTTP status, 0 when no answer
  std::string error;
  std::string state;  // state of the delivery after this attempt
};

class NotifyStore {
 public:
  static Result<std::unique_ptr<NotifyStore>> Open(const std::string& path);
  ~NotifyStore();

  // Several gateway nodes (docs/webhooks.md): every change of an endpoint or of a tenant's
  // callback secrets is first handed to the mirror (key "ep/<id>" or "ts/<tenant>", value the
  // record's JSON, empty when deleted), which publishes it to the compacted topic fax.webhooks
  // (replica.h); the local write follows only when the mirror succeeded. ApplyMirrored writes a
  // record read back from that topic (from any node) without mirroring it again. Records are
  // applied in log order, so all nodes converge on the last write of each key.
  using Mirror = std::function<Status(const std::string& key, const std::string& value)>;
  void SetMirror(Mirror mirror);  // before the first write
  Status ApplyMirrored(const std::string& key, const std::string& value);

  // Several gateway nodes: the delivery log is shared (docs/webhooks.md). With a log mirror, every
  // log entry written by RecordAttempt is also put in an outbox (same write batch); PublishLog()
  // hands the oldest outbox entries to the mirror (key = the "log/..." key, value = the entry's
  // JSON; it produces them to fax.webhook-log) and removes them once that succeeded. Every node
  // applies that topic with ApplyMirrored (keys "log/..."), so each node's log holds the attempts
  // of every node, and a re-published entry lands on the same key (idempotent).
  using LogMirror = std::function<Status(const std::vector<std::pair<std::string, std::string>>& entries)>;
  void SetLogMirror(LogMirror mirror);  // before the first write
  // Publishes up to `limit` outbox entries; returns how many. No mirror: 0.
  Result<size_t> PublishLog(size_t limit = 500);

  // Several gateway nodes: pending deliveries survive the node that holds them (docs/webhooks.md).
  // With a delivery mirror, every change of a delivery (AddDelivery, RecordAttempt) also puts its
  // new state in an outbox (same write batch, one entry per delivery: the latest state);
  // PublishDeliveries() hands the outbox to the mirror (key "dl/<delivery id>", value the
  // delivery's JSON; it produces them to the compacted topic fax.webhook-deliveries) and removes
  // each entry unless it changed meanwhile. Every node applies that topic with ApplyMirrored
  // (keys "dl/..."), merging by progress: a terminal state (delivered, dead) beats a pending one,
  // a pending one with more attempts beats one with fewer, otherwise the local copy stays. So
  // every node holds every delivery with its due time and attempt count, and the owner of its
  // partition continues it (Due() with a partition filter).
  void SetDeliveryMirror(LogMirror mirror);  // before the first write
  bool SharesDeliveries() const { return static_cast<bool>(delivery_mirror_); }
  // Publishes up to `limit` changed deliveries; returns how many. No mirror: 0.
  Result<size_t> PublishDeliveries(size_t limit = 500);

  Status PutEndpoint(const Endpoint& endpoint);
  Result<std::optional<Endpoint>> GetEndpoint(const std::string& id);
  Result<std::vector<Endpoint>> ListEndpoints(const std::string& tenant);
  Status DeleteEndpoint(const std::string& id);

  // The tenant's callback secrets, created on first use.
  Result<std::vector<Secret>> TenantSecrets(const std::string& tenant, int64_t now_ms);
  Status PutTenantSecrets(const std::string& tenant, const std::vector<Secret>& secrets);

  Status PutCallback(const std::string& fax_id, const std::string& url, const std::string& tenant);
  Result<std::optional<std::pair<std::string, std::string>>> GetCallback(
      const std::string& fax_id);  // url, tenant

  // Stores a new pending delivery; false (and nothing written) when it already exists.
  Result<bool> AddDelivery(const Delivery& delivery);
  Result<std::optional<Delivery>> GetDelivery(const std::string& id);
  // Pending deliveries due at `now_ms`, oldest first. With `take`, only those whose partition
  // (from the due index; -1 when unknown) it accepts.
  using PartitionFilter = std::function<bool(int32_t partition, const std::string& delivery_id)>;
  Result<std::vector<Delivery>> Due(int64_t now_ms, size_t limit, const PartitionFilter& take = nullptr);
  // Writes the delivery after an attempt (moving its due index) and appends the log entry.
  Status RecordAttempt(const Delivery& before, const Delivery& after, const LogEntry& entry);
  // Newest first.
  Result<std::vector<LogEntry>> Log(const std::string& target, size_t limit);
  Result<int64_t> PendingCount(const PartitionFilter& take = nullptr);

  // Retention of finished deliveries (docs/webhooks.md): removes up to `limit` deliveries that
  // finished (delivered or dead) before `finished_before_ms` and whose partition `take` accepts
  // (null: all). A pending delivery is never removed. With a delivery mirror (several gateway
  // nodes) each removal is first published as a tombstone (key "dl/<id>", empty value) to
  // fax.webhook-deliveries, and the local copy is deleted only once that succeeded; every other
  // node deletes its copy when it applies the tombstone (ApplyMirrored). The delivery log
  // ("log/...") is not touched. Scans at most 8 * limit index entries. Returns how many it removed.
  Result<size_t> PruneFinished(int64_t finished_before_ms, size_t limit,
                               const PartitionFilter& take = nullptr);

 private:
  NotifyStore() = default;
  // Builds the fin/ index for stores written before it existed (once, at Open).
  Status IndexFinished();
  Status Mirrored(const std::string& key, const std::string& value);
  std::unique_ptr<rocksdb::DB> db_;
  Mirror mirror_;
  // Up to `limit` records of the outbox `outbox` ("lout/", "dout/"), keyed for the mirror:
  // `mirror_prefix` + the key after the outbox prefix.
  Result<std::vector<std::pair<std::string, std::string>>> ScanOutbox(std::string_view outbox,
                                                                      std::string_view mirror_prefix, size_t limit);

  LogMirror log_mirror_;
  LogMirror delivery_mirror_;
  std::mutex publish_mu_;           // one PublishLog at a time
  std::mutex publish_delivery_mu_;  // one PublishDeliveries at a time
  std::mutex mu_;
};

}  // namespace faxflow::notify
