#include "producers/gateway/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "topics/catalogue.h"

namespace faxflow {
namespace {

constexpr std::string_view kKeyPrefix = "ffk_";
constexpr size_t kKeyIdHex = 12;
constexpr size_t kSecretHex = 40;

std::string ToJson(const ApiKeyRecord& r) {
  return nlohmann::json{{"key_id", r.key_id},
                        {"tenant", r.tenant},
                        {"name", r.name},
                        {"sha256", r.sha256},
                        {"created_at_ms", r.created_at_ms},
                        {"revoked_at_ms", r.revoked_at_ms}}
      .dump();
}

std::optional<ApiKeyRecord> FromJson(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  try {
    ApiKeyRecord r;
    r.key_id = j.at("key_id").get<std::string>();
    r.tenant = j.at("tenant").get<std::string>();
    r.name = j.value("name", "");
    r.sha256 = j.at("sha256").get<std::string>();
    r.created_at_ms = j.value("created_at_ms", int64_t{0});
    r.revoked_at_ms = j.value("revoked_at_ms", int64_t{0});
    return r;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

bool IsHex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// key_id of a well-formed key text, or nullopt.
std::optional<std::string> KeyIdOf(std::string_view key) {
  if (key.size() != kKeyPrefix.size() + kKeyIdHex + 1 + kSecretHex || !key.starts_with(kKeyPrefix))
    return std::nullopt;
  const auto id = key.substr(kKeyPrefix.size(), kKeyIdHex);
  if (key[kKeyPrefix.size() + kKeyIdHex] != '_') return std::nullopt;
  if (!IsHex(id) || !IsHex(key.substr(kKeyPrefix.size() + kKeyIdHex + 1))) return std::nullopt;
  return std::string(id);
}

Result<std::pair<ApiKeyRecord, std::string>> NewKey(Clock& clock, const std::string& tenant,
                                                    const std::string& name) {
  if (!ValidTenantName(tenant))
    return Status::Permanent(Code::kInvalidArgument, "tenant must be 1-64 characters of [a-z0-9_-]");
  if (name.size() > 100)
    return Status::Permanent(Code::kInvalidArgument, "key name longer than 100 characters");
  ApiKeyRecord r;
  r.key_id = RandomHex(kKeyIdHex / 2);
  const std::string text = std::string(kKeyPrefix) + r.key_id + "_" + RandomHex(kSecretHex / 2);
  r.tenant = tenant;
  r.name = name;
  r.sha256 = Sha256Hex(text);
  r.created_at_ms = clock.NowMillis();
  return std::make_pair(r, text);
}

bus::Message KeyMessage(const ApiKeyRecord& r) {
  bus::Message m;
  m.topic = std::string(bus::topic::kApiKeys);
  m.key = r.key_id;
  m.value = ToJson(r);
  m.headers.push_back({std::string(bus::header::kSchema), "faxflow.v1.ApiKey+json"});
  return m;
}

}  // namespace

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1)
    throw std::runtime_error("RAND_bytes failed");  // no entropy: nothing safe to do
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(hex[c >> 4]);
    out.push_back(hex[c & 0xf]);
  }
  return out;
}

bool ValidTenantName(std::string_view tenant) {
  if (tenant.empty() || tenant.size() > 64) return false;
  for (char c : tenant)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  return true;
}

ApiKeyStore::ApiKeyStore(bus::Bus& bus, Clock& clock) : bus_(bus), clock_(clock) {}
ApiKeyStore::~ApiKeyStore() { Stop(); }

Status ApiKeyStore::Start() {
  FF_ASSIGN_OR_RETURN(producer_, bus_.NewProducer("gateway-keys"));
  follower_ = std::make_unique<TopicFollower>(bus_, std::string(bus::topic::kApiKeys),
                                              [this](const bus::Record& r) { Apply(r); });
  follower_->SetHeartbeats(heartbeats_);
  return follower_->Start();
}

void ApiKeyStore::Stop() {
  if (follower_) follower_->Stop();
}

void ApiKeyStore::Apply(const bus::Record& record) {
  auto r = FromJson(record.value);
  if (!r) {
    FF_LOG_WARN(Logger("gateway"), "fax.keys record {}/{} does not decode; ignored", record.partition,
                record.offset);
    return;
  }
  std::lock_guard lock(mu_);
  auto& slot = keys_[r->key_id];
  // A revocation is final, whatever order records are replayed in.
  const int64_t revoked = slot.revoked_at_ms != 0 ? slot.revoked_at_ms : r->revoked_at_ms;
  slot = *r;
  slot.revoked_at_ms = revoked;
}

Status ApiKeyStore::Publish(const ApiKeyRecord& record) {
  FF_ASSIGN_OR_RETURN(auto pos, producer_->Produce(KeyMessage(record)));
  return follower_->WaitApplied(pos.partition, pos.offset, std::chrono::seconds(10));
}

Result<std::pair<ApiKeyRecord, std::string>> ApiKeyStore::Create(const std::string& tenant,
                                                                 const std::string& name) {
  FF_ASSIGN_OR_RETURN(auto created, NewKey(clock_, tenant, name));
  FF_RETURN_IF_ERROR(Publish(created.first));
  return created;
}

Status ApiKeyStore::Revoke(const std::string& key_id) {
  ApiKeyRecord r;
  {
    std::lock_guard lock(mu_);
    auto it = keys_.find(key_id);
    if (it == keys_.end()) return Status::Permanent(Code::kNotFound, "no API key with id '" + key_id + "'");
    r = it->second;
  }
  if (r.revoked_at_ms != 0) return Status::Ok();
  r.revoked_at_ms = clock_.NowMillis();
  return Publish(r);
}

std::vector<ApiKeyRecord> ApiKeyStore::List(const std::string& tenant) const {
  std::vector<ApiKeyRecord> out;
  std::lock_guard lock(mu_);
  for (const auto& [id, r] : keys_)
    if (tenant.empty() || r.tenant == tenant) out.push_back(r);
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.created_at_ms < b.created_at_ms; });
  return out;
}

Result<Caller> ApiKeyStore::Authenticate(std::string_view key_text) const {
  const auto id = KeyIdOf(key_text);
  if (!id) return Status::Permanent(Code::kUnauthenticated, "malformed API key (expected ffk_<id>_<secret>)");
  const std::string hash = Sha256Hex(key_text);
  std::lock_guard lock(mu_);
  auto it = keys_.find(*id);
  // Constant-time compare of the hashes; the same message for unknown and wrong keys.
  if (it == keys_.end() || it->second.sha256.size() != hash.size() ||
      CRYPTO_memcmp(it->second.sha256.data(), hash.data(), hash.size()) != 0)
    return Status::Permanent(Code::kUnauthenticated, "unknown API key");
  if (it->second.revoked_at_ms != 0) return Status::Permanent(Code::kUnauthenticated, "API key revoked");
  return Caller{it->second.tenant, it->second.key_id};
}

Result<std::pair<ApiKeyRecord, std::string>> CreateApiKeyOnBus(bus::Bus& bus, Clock& clock,
                                                               const std::string& tenant,
                                                               const std::string& name) {
  FF_ASSIGN_OR_RETURN(auto created, NewKey(clock, tenant, name));
  FF_ASSIGN_OR_RETURN(auto producer, bus.NewProducer("faxflow-keys"));
  FF_RETURN_IF_ERROR(producer->Produce(KeyMessage(created.first)).status());
  return created;
}

}  // namespace faxflow
