#include "producers/gateway/idempotency.h"

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "producers/gateway/api_keys.h"
#include "topics/catalogue.h"

namespace faxflow {
namespace {

std::string Slot(const std::string& tenant, const std::string& key) { return tenant + "/" + key; }

}  // namespace

IdempotencyStore::IdempotencyStore(bus::Bus& bus, Clock& clock, IdempotencyOptions options)
    : bus_(bus), clock_(clock), options_(options) {}

IdempotencyStore::~IdempotencyStore() { Stop(); }

Status IdempotencyStore::Start() {
  FF_ASSIGN_OR_RETURN(producer_, bus_.NewProducer("gateway-idempotency"));
  follower_ = std::make_unique<TopicFollower>(bus_, std::string(bus::topic::kIdempotency),
                                              [this](const bus::Record& r) { Apply(r); });
  follower_->SetHeartbeats(heartbeats_);
  return follower_->Start();
}

void IdempotencyStore::Stop() {
  if (follower_) follower_->Stop();
}

bool IdempotencyStore::ValidKey(std::string_view key) {
  if (key.empty() || key.size() > 255) return false;
  for (unsigned char c : key)
    if (c < 0x21 || c > 0x7e) return false;
  return true;
}

size_t IdempotencyStore::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

// The log's rules, identical on every node (they only use what is in the records).
void IdempotencyStore::Apply(const bus::Record& record) {
  auto j = nlohmann::json::parse(record.value, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return;
  const std::string type = j.value("type", "");
  const std::string claim = j.value("claim_id", "");
  const int64_t at = j.value("at_ms", int64_t{0});
  const int64_t ttl = options_.ttl.count();
  std::lock_guard lock(mu_);
  Entry& e = entries_[record.key];
  const bool done_live = e.state == Entry::State::kDone && at < e.at_ms + ttl;
  const bool claim_live = e.state == Entry::State::kClaimed && at < e.at_ms + e.lease_ms;
  if (type == "claim") {
    if (done_live || (claim_live && e.claim_id != claim)) return;  // someone is ahead
    e.state = Entry::State::kClaimed;
    e.claim_id = claim;
    e.fingerprint = j.value("fingerprint", "");
    e.at_ms = at;
    e.lease_ms = j.value("lease_ms", int64_t{30'000});
  } else if (type == "done") {
    if (done_live) return;  // the first answer stays the answer
    e.state = Entry::State::kDone;
    e.claim_id = claim;
    e.fingerprint = j.value("fingerprint", "");
    e.at_ms = at;
    e.answer.http_status = j.value("status", 0);
    e.answer.body = j.value("body", "");
    e.answer.location = j.value("location", "");
  } else if (type == "release") {
    if (e.state == Entry::State::kClaimed && e.claim_id == claim) e = Entry();
  }
  if (++applied_ % 4096 == 0) Prune(clock_.NowMillis());
}

void IdempotencyStore::Prune(int64_t now_ms) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    const Entry& e = it->second;
    const bool dead = e.state == Entry::State::kNone ||
                      (e.state == Entry::State::kDone && now_ms >= e.at_ms + options_.ttl.count()) ||
                      (e.state == Entry::State::kClaimed && now_ms >= e.at_ms + options_.ttl.count());
    it = dead ? entries_.erase(it) : std::next(it);
  }
}

IdempotencyStore::Decision IdempotencyStore::Judge(const Entry& e, const std::string& fingerprint,
                                                   int64_t now_ms) const {
  Decision d;
  if (e.state == Entry::State::kDone && now_ms < e.at_ms + options_.ttl.count()) {
    d.verdict = e.fingerprint == fingerprint ? Verdict::kReplay : Verdict::kMismatch;
    d.answer = e.answer;
  } else if (e.state == Entry::State::kClaimed && now_ms < e.at_ms + e.lease_ms) {
    d.verdict = e.fingerprint == fingerprint ? Verdict::kInFlight : Verdict::kMismatch;
    d.retry_after_seconds = 1;
  }
  return d;
}

Result<bus::Position> IdempotencyStore::Append(const std::string& slot, const std::string& json) {
  bus::Message m;
  m.topic = std::string(bus::topic::kIdempotency);
  m.key = slot;
  m.value = json;
  m.headers.push_back({std::string(bus::header::kSchema), "faxflow.v1.Idempotency+json"});
  FF_ASSIGN_OR_RETURN(auto pos, producer_->Produce(m));
  FF_RETURN_IF_ERROR(follower_->WaitApplied(pos.partition, pos.offset, std::chrono::seconds(10)));
  return pos;
}

Result<IdempotencyStore::Decision> IdempotencyStore::Begin(const std::string& tenant, const std::string& key,
                                                           const std::string& fingerprint) {
  const std::string slot = Slot(tenant, key);
  const int64_t now = clock_.NowMillis();
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(slot);
    if (it != entries_.end()) {
      Decision d = Judge(it->second, fingerprint, now);
      if (d.verdict != Verdict::kProceed) return d;
    }
    if (local_in_flight_.count(slot)) {
      Decision d;
      d.verdict = Verdict::kInFlight;
      return d;
    }
    local_in_flight_.insert(slot);
  }
  Decision mine;
  mine.claim_id = RandomHex(12);
  const nlohmann::json claim{{"type", "claim"},
                             {"claim_id", mine.claim_id},
                             {"fingerprint", fingerprint},
                             {"at_ms", now},
                             {"lease_ms", options_.lease.count()}};
  auto pos = Append(slot, claim.dump());
  std::lock_guard lock(mu_);
  if (!pos.ok()) {
    local_in_flight_.erase(slot);
    return pos.status();
  }
  const Entry& e = entries_[slot];
  if (e.state == Entry::State::kClaimed && e.claim_id == mine.claim_id) return mine;
  // Another node's claim or answer came first.
  local_in_flight_.erase(slot);
  Decision d = Judge(e, fingerprint, clock_.NowMillis());
  if (d.verdict == Verdict::kProceed) d.verdict = Verdict::kInFlight;  // lost the race; let the client retry
  return d;
}

Status IdempotencyStore::Complete(const std::string& tenant, const std::string& key,
                                  const std::string& claim_id, const std::string& fingerprint,
                                  const StoredAnswer& answer) {
  const std::string slot = Slot(tenant, key);
  const nlohmann::json done{{"type", "done"},
                            {"claim_id", claim_id},
                            {"fingerprint", fingerprint},
                            {"at_ms", clock_.NowMillis()},
                            {"status", answer.http_status},
                            {"body", answer.body},
                            {"location", answer.location}};
  auto pos = Append(slot, done.dump());
  std::lock_guard lock(mu_);
  local_in_flight_.erase(slot);
  return pos.status();
}

Status IdempotencyStore::Release(const std::string& tenant, const std::string& key,
                                 const std::string& claim_id) {
  const std::string slot = Slot(tenant, key);
  const nlohmann::json rel{{"type", "release"}, {"claim_id", claim_id}, {"at_ms", clock_.NowMillis()}};
  auto pos = Append(slot, rel.dump());
  std::lock_guard lock(mu_);
  local_in_flight_.erase(slot);
  return pos.status();
}

}  // namespace faxflow
