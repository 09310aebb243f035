// Tenants and API keys. A key is shown to its owner once, at creation:
//   ffk_<key id: 12 hex>_<secret: 40 hex>
// and only SHA-256(key) is stored, next to the key id, tenant, name and times. The key id is a
// public handle (listed, revoked, logged, recorded on submissions as api_key_id).
//
// The table is shared by every gateway node: records go to the compacted topic fax.keys (key:
// key id, value: JSON) and every node follows that topic into memory (TopicFollower). On the
// embedded bus this is the local durable queue. A create or revoke returns once this node has
// applied it; other nodes apply it within their poll interval (typically < 100 ms).
//
// Threading: thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/heartbeat.h"
#include "common/status.h"
#include "producers/gateway/topic_follower.h"
#include "storage/blob_store.h"  // Sha256Hex
#include "topics/bus.h"

namespace faxflow {

struct ApiKeyRecord {
  std::string key_id;
  std::string tenant;
  std::string name;
  std::string sha256;  // hex of SHA-256 over the whole key text
  int64_t created_at_ms = 0;
  int64_t revoked_at_ms = 0;  // 0: active
};

// Who is calling: the tenant every read and write is scoped to.
struct Caller {
  std::string tenant;
  std::string key_id;  // "" with gateway.auth=none
};

// Random lower-case hex of `bytes` random bytes (OpenSSL RAND_bytes).
std::string RandomHex(size_t bytes);
// Tenant names: 1-64 of [a-z0-9_-].
bool ValidTenantName(std::string_view tenant);

class ApiKeyStore {
 public:
  explicit ApiKeyStore(bus::Bus& bus, Clock& clock);
  ~ApiKeyStore();
  // Follows fax.keys (catches up first).
  Status Start();
  void Stop();

  // Creates a key for `tenant`; returns the record and the key text (shown once).
  Result<std::pair<ApiKeyRecord, std::string>> Create(const std::string& tenant, const std::string& name);
  Status Revoke(const std::string& key_id);
  // Every key of `tenant` ("" = every tenant), oldest first.
  std::vector<ApiKeyRecord> List(const std::string& tenant) const;
  // kUnauthenticated (permanent) when the key is malformed, unknown, revoked or does not match.
  Result<Caller> Authenticate(std::string_view key_text) const;

  // Liveness of this component's loop (its topic follower, common/heartbeat.h); call before Start().
  // Null (the default): none. Must outlive the loop.
  void SetHeartbeats(Heartbeats* heartbeats) { heartbeats_ = heartbeats; }

 private:
  Heartbeats* heartbeats_ = nullptr;
  void Apply(const bus::Record& record);
  Status Publish(const ApiKeyRecord& record);

  bus::Bus& bus_;
  Clock& clock_;
  std::unique_ptr<bus::Producer> producer_;
  std::unique_ptr<TopicFollower> follower_;
  mutable std::mutex mu_;
  std::map<std::string, ApiKeyRecord> keys_;  // by key id
};

// `faxflow keys` without a running gateway: writes the record straight to fax.keys.
Result<std::pair<ApiKeyRecord, std::string>> CreateApiKeyOnBus(bus::Bus& bus, Clock& clock,
                                                               const std::string& tenant,
                                                               const std::string& name);

}  // namespace faxflow
