// Durable state of the webhook notifier, on RocksDB (<data_dir>/notify):
//   ep/<endpoint id>             Endpoint (tenant, url, subscribed types, secrets)
//   ts/<tenant>                  the tenant's secrets for per-fax callback_url deliveries
//   cb/<fax id>                  callback_url and tenant of a fax (from its Submission)
//   dl/<delivery id>             Delivery: one event for one target, with its retry state
//   due/<next ms>/<delivery id>  index of pending deliveries by due time
//   log/<target>/<ms>/<id>/<n>   delivery log: one entry per attempt (GET .../endpoints/{id})
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
  // Pending deliveries due at `now_ms`, oldest first.
  Result<std::vector<Delivery>> Due(int64_t now_ms, size_t limit);
  // Writes the delivery after an attempt (moving its due index) and appends the log entry.
  Status RecordAttempt(const Delivery& before, const Delivery& after, const LogEntry& entry);
  // Newest first.
  Result<std::vector<LogEntry>> Log(const std::string& target, size_t limit);
  Result<int64_t> PendingCount();

 private:
  NotifyStore() = default;
  Status Mirrored(const std::string& key, const std::string& value);
  std::unique_ptr<rocksdb::DB> db_;
  Mirror mirror_;
  std::mutex mu_;
};

}  // namespace faxflow::notify
