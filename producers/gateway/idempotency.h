// Idempotency-Key for POST requests, with Stripe's semantics:
//   - same key, same request  -> the first answer again (status and body), for >= ttl (24 h);
//   - same key, other request -> 422 idempotency_key_reused;
//   - same key while the first request is still running -> 409 idempotency_request_in_flight.
// Keys are per tenant. Validation errors (4xx before anything was written) and transient
// failures (503) are not remembered: the client may retry them with the same key.
//
// Shared by every gateway node and durable across restarts: claims and answers are records on
// fax.idempotency (key "<tenant>/<Idempotency-Key>", so one key's records are ordered on one
// partition) that every node follows into memory. Deciding who runs a request:
//   1. a node appends a CLAIM (claim id, request fingerprint, time, lease);
//   2. it waits until it has applied its own CLAIM; every node applies the same log with the same
//      rules, so all agree on the winner: the first CLAIM of the key that is not behind a live
//      claim or a remembered answer;
//   3. the winner runs the request and appends DONE with the answer (or RELEASE); the others
//      answer 409 (or the answer, once DONE is in).
// A node that dies mid-request leaves a CLAIM whose lease (idempotency_lease) expires; a retry
// then claims again. The fax id and recipient ids of a keyed submission are derived from
// (tenant, key, fingerprint), so even two runners (an expired lease whose holder was only slow)
// produce the same fax: the status store and the modem's dial ledger absorb the duplicate record.
//
// Threading: thread-safe. Requests with the same key on one node are serialised locally too.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "common/clock.h"
#include "common/heartbeat.h"
#include "common/status.h"
#include "producers/gateway/topic_follower.h"
#include "topics/bus.h"

namespace faxflow {

struct IdempotencyOptions {
  std::chrono::milliseconds ttl{24LL * 3600 * 1000};
  std::chrono::milliseconds lease{30'000};
};

struct StoredAnswer {
  int http_status = 0;
  std::string body;
  std::string location;  // Location header, if any
};

class IdempotencyStore {
 public:
  enum class Verdict { kProceed, kReplay, kMismatch, kInFlight };
  struct Decision {
    Verdict verdict = Verdict::kProceed;
    std::string claim_id;         // kProceed: pass to Complete/Release
    StoredAnswer answer;          // kReplay
    int retry_after_seconds = 1;  // kInFlight
  };

  IdempotencyStore(bus::Bus& bus, Clock& clock, IdempotencyOptions options);
  ~IdempotencyStore();
  Status Start();
  void Stop();

  // Keys: 1-255 printable ASCII characters.
  static bool ValidKey(std::string_view key);

  Result<Decision> Begin(const std::string& tenant, const std::string& key, const std::string& fingerprint);
  // Records the answer of a claim that proceeded (the key is then answered with it for ttl).
  Status Complete(const std::string& tenant, const std::string& key, const std::string& claim_id,
                  const std::string& fingerprint, const StoredAnswer& answer);
  // Forgets a claim that proceeded but whose answer must not be remembered (validation error,
  // transient failure).
  Status Release(const std::string& tenant, const std::string& key, const std::string& claim_id);

  // Entries in memory (tests, metrics).
  size_t size() const;

  // Liveness of this component's loop (its topic follower, common/heartbeat.h); call before Start().
  // Null (the default): none. Must outlive the loop.
  void SetHeartbeats(Heartbeats* heartbeats) { heartbeats_ = heartbeats; }

 private:
  Heartbeats* heartbeats_ = nullptr;
  struct Entry {
    enum class State { kNone, kClaimed, kDone } state = State::kNone;
    std::string claim_id;
    std::string fingerprint;
    int64_t at_ms = 0;
    int64_t lease_ms = 0;
    StoredAnswer answer;
  };
  void Apply(const bus::Record& record);
  Result<bus::Position> Append(const std::string& slot, const std::string& json);
  // The verdict for `fingerprint` given the entry as known now (kProceed: nothing blocks).
  Decision Judge(const Entry& e, const std::string& fingerprint, int64_t now_ms) const;
  void Prune(int64_t now_ms);

  bus::Bus& bus_;
  Clock& clock_;
  IdempotencyOptions options_;
  std::unique_ptr<bus::Producer> producer_;
  std::unique_ptr<TopicFollower> follower_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;  // by slot "<tenant>/<key>"
  std::set<std::string> local_in_flight_;
  uint64_t applied_ = 0;
};

}  // namespace faxflow
