#include "workers/notify/notify_store.h"

#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "workers/notify/signature.h"

namespace faxflow::notify {
namespace {

using nlohmann::json;

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  if (s.IsCorruption()) return Status::Fatal(Code::kCorruption, "notify store " + what + ": " + s.ToString());
  if (s.IsBusy() || s.IsTryAgain() || s.IsTimedOut())
    return Status::Retryable(Code::kUnavailable, "notify store " + what + ": " + s.ToString());
  return Status::Fatal(Code::kIoError, "notify store " + what + ": " + s.ToString());
}

std::string Pad(int64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%016lld", static_cast<long long>(v));
  return buf;
}

json SecretsJson(const std::vector<Secret>& secrets) {
  json a = json::array();
  for (const auto& s : secrets) a.push_back({{"value", s.value}, {"expires_ms", s.expires_ms}});
  return a;
}
std::vector<Secret> SecretsFrom(const json& a) {
  std::vector<Secret> out;
  for (const auto& s : a)
    out.push_back({s.at("value").get<std::string>(), s.value("expires_ms", int64_t{0})});
  return out;
}

json ToJson(const Endpoint& e) {
  return {{"id", e.id},
          {"tenant", e.tenant},
          {"url", e.url},
          {"events", e.events},
          {"secrets", SecretsJson(e.secrets)},
          {"description", e.description},
          {"created_ms", e.created_ms}};
}
Endpoint EndpointFrom(const json& j) {
  Endpoint e;
  e.id = j.at("id");
  e.tenant = j.at("tenant");
  e.url = j.at("url");
  e.events = j.at("events").get<std::vector<std::string>>();
  e.secrets = SecretsFrom(j.at("secrets"));
  e.description = j.value("description", "");
  e.created_ms = j.value("created_ms", int64_t{0});
  return e;
}

json ToJson(const Delivery& d) {
  return {{"id", d.id},
          {"target", d.target},
          {"tenant", d.tenant},
          {"url", d.url},
          {"type", d.type},
          {"event_id", d.event_id},
          {"body", d.body},
          {"first_ms", d.first_ms},
          {"next_ms", d.next_ms},
          {"attempts", d.attempts},
          {"state", d.state},
          {"last_status", d.last_status},
          {"last_error", d.last_error},
          {"partition", d.partition},
          {"finished_ms", d.finished_ms}};
}
Delivery DeliveryFrom(const json& j) {
  Delivery d;
  d.id = j.at("id");
  d.target = j.at("target");
  d.tenant = j.at("tenant");
  d.url = j.at("url");
  d.type = j.at("type");
  d.event_id = j.at("event_id");
  d.body = j.at("body");
  d.first_ms = j.at("first_ms");
  d.next_ms = j.at("next_ms");
  d.attempts = j.at("attempts");
  d.state = j.at("state");
  d.last_status = j.at("last_status");
  d.last_error = j.at("last_error");
  d.partition = j.value("partition", int32_t{-1});
  d.finished_ms = j.value("finished_ms", int64_t{0});
  return d;
}

json ToJson(const LogEntry& l) {
  return {{"delivery_id", l.delivery_id},
          {"type", l.type},
          {"event_id", l.event_id},
          {"attempt", l.attempt},
          {"at_ms", l.at_ms},
          {"status", l.status},
          {"error", l.error},
          {"state", l.state}};
}
LogEntry LogFrom(const json& j) {
  LogEntry l;
  l.delivery_id = j.at("delivery_id");
  l.type = j.at("type");
  l.event_id = j.value("event_id", "");
  l.attempt = j.at("attempt");
  l.at_ms = j.at("at_ms");
  l.status = j.at("status");
  l.error = j.at("error");
  l.state = j.at("state");
  return l;
}

template <typename T, typename F>
Result<std::optional<T>> GetJson(rocksdb::DB* db, const std::string& key, F from) {
  std::string v;
  auto s = db->Get(rocksdb::ReadOptions(), key, &v);
  if (s.IsNotFound()) return std::optional<T>();
  FF_RETURN_IF_ERROR(FromRocks(s, "get " + key));
  try {
    return std::optional<T>(from(json::parse(v)));
  } catch (const std::exception& e) {
    return Status::Fatal(Code::kCorruption, "notify store: bad record " + key + ": " + e.what());
  }
}

std::string DueKey(const Delivery& d) { return "due/" + Pad(d.next_ms) + "/" + d.id; }
std::string DueValue(const Delivery& d) { return d.partition >= 0 ? std::to_string(d.partition) : ""; }
bool Finished(const Delivery& d) { return d.state != "pending"; }
// Index of finished deliveries by the time they finished (older records: their last due time).
std::string FinKey(const Delivery& d) {
  return "fin/" + Pad(d.finished_ms > 0 ? d.finished_ms : d.next_ms) + "/" + d.id;
}
constexpr char kFinIndexMarker[] = "meta/fin_index";

// Progress order of two states of one delivery (fax.webhook-deliveries): terminal beats pending,
// then more attempts beat fewer. True when `incoming` is strictly further than `local`.
bool Further(const Delivery& incoming, const Delivery& local) {
  const bool in_done = incoming.state != "pending", local_done = local.state != "pending";
  if (local_done) return false;
  if (in_done) return true;
  return incoming.attempts > local.attempts;
}

rocksdb::WriteOptions Synced() {
  rocksdb::WriteOptions w;
  w.sync = true;
  return w;
}

}  // namespace

bool Endpoint::Subscribed(const std::string& type) const {
  for (const auto& e : events) {
    if (e == "*" || e == type) return true;
    if (type.rfind("fax.", 0) == 0 && e == type.substr(4)) return true;  // "delivered" == "fax.delivered"
  }
  return false;
}

Result<std::unique_ptr<NotifyStore>> NotifyStore::Open(const std::string& path) {
  rocksdb::Options o;
  o.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(o, path, &raw);
  FF_RETURN_IF_ERROR(FromRocks(s, "open " + path));
  std::unique_ptr<NotifyStore> store(new NotifyStore());
  store->db_.reset(raw);
  FF_RETURN_IF_ERROR(store->IndexFinished());
  return store;
}

NotifyStore::~NotifyStore() = default;

Status NotifyStore::IndexFinished() {
  std::string marker;
  auto s = db_->Get(rocksdb::ReadOptions(), kFinIndexMarker, &marker);
  if (s.ok()) return Status::Ok();
  if (!s.IsNotFound()) return FromRocks(s, "get fin index marker");
  // A store written before the fin/ index: index its finished deliveries once.
  rocksdb::WriteBatch b;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("dl/"); it->Valid() && it->key().starts_with("dl/"); it->Next()) {
    try {
      const Delivery d = DeliveryFrom(json::parse(it->value().ToString()));
      if (Finished(d)) b.Put(FinKey(d), DueValue(d));
    } catch (const std::exception& e) {
      return Status::Fatal(Code::kCorruption,
                           "notify store: bad delivery " + it->key().ToString() + ": " + e.what());
    }
  }
  FF_RETURN_IF_ERROR(FromRocks(it->status(), "scan deliveries"));
  b.Put(kFinIndexMarker, "1");
  return FromRocks(db_->Write(Synced(), &b), "index finished deliveries");
}

void NotifyStore::SetMirror(Mirror mirror) { mirror_ = std::move(mirror); }

Status NotifyStore::Mirrored(const std::string& key, const std::string& value) {
  if (!mirror_) return Status::Ok();
  return mirror_(key, value).WithContext("publishing " + key + " to fax.webhooks");
}

void NotifyStore::SetLogMirror(LogMirror mirror) { log_mirror_ = std::move(mirror); }

Result<std::vector<std::pair<std::string, std::string>>> NotifyStore::ScanOutbox(std::string_view outbox,
                                                                                 std::string_view mirror_prefix,
                                                                                 size_t limit) {
  std::vector<std::pair<std::string, std::string>> entries;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(rocksdb::Slice(outbox.data(), outbox.size()));
       it->Valid() && it->key().starts_with(rocksdb::Slice(outbox.data(), outbox.size())) && entries.size() < limit;
       it->Next())
    entries.emplace_back(std::string(mirror_prefix) + it->key().ToString().substr(outbox.size()),
                         it->value().ToString());
  FF_RETURN_IF_ERROR(FromRocks(it->status(), "scan outbox " + std::string(outbox)));
  return entries;
}

Result<size_t> NotifyStore::PublishLog(size_t limit) {
  if (!log_mirror_) return size_t{0};
  std::lock_guard publishing(publish_mu_);
  FF_ASSIGN_OR_RETURN(auto entries, ScanOutbox("lout/", "", limit));
  if (entries.empty()) return size_t{0};
  FF_RETURN_IF_ERROR(log_mirror_(entries).WithContext("publishing the delivery log to fax.webhook-log"));
  rocksdb::WriteBatch b;
  for (const auto& e : entries) b.Delete("lout/" + e.first);
  FF_RETURN_IF_ERROR(FromRocks(db_->Write(rocksdb::WriteOptions(), &b), "clear log outbox"));
  return entries.size();
}

void NotifyStore::SetDeliveryMirror(LogMirror mirror) { delivery_mirror_ = std::move(mirror); }

Result<size_t> NotifyStore::PublishDeliveries(size_t limit) {
  if (!delivery_mirror_) return size_t{0};
  std::lock_guard publishing(publish_delivery_mu_);
  FF_ASSIGN_OR_RETURN(auto entries, ScanOutbox("dout/", "dl/", limit));
  if (entries.empty()) return size_t{0};
  FF_RETURN_IF_ERROR(
      delivery_mirror_(entries).WithContext("publishing webhook deliveries to fax.webhook-deliveries"));
  // Remove what was published, unless the delivery changed since (its newer state stays queued).
  std::lock_guard lock(mu_);
  rocksdb::WriteBatch b;
  for (const auto& [key, value] : entries) {
    const std::string out_key = "dout/" + key.substr(3);
    std::string now;
    auto s = db_->Get(rocksdb::ReadOptions(), out_key, &now);
    if (s.IsNotFound()) continue;
    FF_RETURN_IF_ERROR(FromRocks(s, "get delivery outbox"));
    if (now == value) b.Delete(out_key);
  }
  FF_RETURN_IF_ERROR(FromRocks(db_->Write(rocksdb::WriteOptions(), &b), "clear delivery outbox"));
  return entries.size();
}

Status NotifyStore::ApplyMirrored(const std::string& key, const std::string& value) {
  if (key.rfind("dl/", 0) == 0) {
    if (value.empty()) {
      // A tombstone: the owner of the delivery's partition pruned it (PruneFinished).
      std::lock_guard lock(mu_);
      FF_ASSIGN_OR_RETURN(auto local, GetDelivery(key.substr(3)));
      rocksdb::WriteBatch b;
      b.Delete(key);
      b.Delete("dout/" + key.substr(3));
      if (local) b.Delete(Finished(*local) ? FinKey(*local) : DueKey(*local));
      return FromRocks(db_->Write(rocksdb::WriteOptions(), &b), "apply tombstone " + key);
    }
    // A delivery's state from any node (fax.webhook-deliveries): kept when it is further than
    // the local copy, with its due index entry (the owner of its partition continues it).
    Delivery in;
    try {
      in = DeliveryFrom(json::parse(value));
    } catch (const std::exception& e) {
      return Status::Permanent(Code::kInvalidArgument, "bad webhook delivery " + key + ": " + e.what());
    }
    if ("dl/" + in.id != key)
      return Status::Permanent(Code::kInvalidArgument, "delivery id mismatch: " + key);
    std::lock_guard lock(mu_);
    FF_ASSIGN_OR_RETURN(auto local, GetDelivery(in.id));
    if (local && !Further(in, *local)) return Status::Ok();
    rocksdb::WriteBatch b;
    if (local && local->state == "pending") b.Delete(DueKey(*local));
    b.Put(key, ToJson(in).dump());
    if (in.state == "pending") b.Put(DueKey(in), DueValue(in));
    if (Finished(in)) b.Put(FinKey(in), DueValue(in));
    // Not synced (like the log): the topic is the durable copy, re-read at every start.
    return FromRocks(db_->Write(rocksdb::WriteOptions(), &b), "apply " + key);
  }
  if (key.rfind("log/", 0) == 0) {
    // A delivery log entry of any node (fax.webhook-log). Not synced: the topic is the durable
    // copy, and a replica re-reads it from the beginning at every start.
    if (value.empty() || !json::accept(value))
      return Status::Permanent(Code::kInvalidArgument, "bad delivery log entry " + key);
    return FromRocks(db_->Put(rocksdb::WriteOptions(), key, value), "apply " + key);
  }
  if (key.rfind("ep/", 0) != 0 && key.rfind("ts/", 0) != 0)
    return Status::Permanent(Code::kInvalidArgument, "not a webhook record key: " + key);
  std::lock_guard lock(mu_);
  if (value.empty()) return FromRocks(db_->Delete(Synced(), key), "apply " + key);
  try {
    if (!json::accept(value)) throw std::invalid_argument("not JSON");
  } catch (const std::exception& e) {
    return Status::Permanent(Code::kInvalidArgument, "bad webhook record " + key + ": " + e.what());
  }
  return FromRocks(db_->Put(Synced(), key, value), "apply " + key);
}

Status NotifyStore::PutEndpoint(const Endpoint& endpoint) {
  const std::string value = ToJson(endpoint).dump();
  FF_RETURN_IF_ERROR(Mirrored("ep/" + endpoint.id, value));
  return FromRocks(db_->Put(Synced(), "ep/" + endpoint.id, value), "put endpoint");
}

Result<std::optional<Endpoint>> NotifyStore::GetEndpoint(const std::string& id) {
  return GetJson<Endpoint>(db_.get(), "ep/" + id, EndpointFrom);
}

Result<std::vector<Endpoint>> NotifyStore::ListEndpoints(const std::string& tenant) {
  std::vector<Endpoint> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("ep/"); it->Valid() && it->key().starts_with("ep/"); it->Next()) {
    try {
      Endpoint e = EndpointFrom(json::parse(it->value().ToString()));
      if (e.tenant == tenant) out.push_back(std::move(e));
    } catch (const std::exception& ex) {
      return Status::Fatal(Code::kCorruption, std::string("notify store: bad endpoint: ") + ex.what());
    }
  }
  FF_RETURN_IF_ERROR(FromRocks(it->status(), "list endpoints"));
  return out;
}

Status NotifyStore::DeleteEndpoint(const std::string& id) {
  FF_RETURN_IF_ERROR(Mirrored("ep/" + id, ""));
  return FromRocks(db_->Delete(Synced(), "ep/" + id), "delete endpoint");
}

Result<std::vector<Secret>> NotifyStore::TenantSecrets(const std::string& tenant, int64_t now_ms) {
  std::lock_guard lock(mu_);
  FF_ASSIGN_OR_RETURN(auto found, (GetJson<std::vector<Secret>>(db_.get(), "ts/" + tenant, SecretsFrom)));
  if (found) {
    std::vector<Secret> live;
    for (const auto& s : *found)
      if (s.expires_ms == 0 || s.expires_ms > now_ms) live.push_back(s);
    return live;
  }
  std::vector<Secret> fresh{{NewSecret(), 0}};
  FF_RETURN_IF_ERROR(Mirrored("ts/" + tenant, SecretsJson(fresh).dump()));
  FF_RETURN_IF_ERROR(
      FromRocks(db_->Put(Synced(), "ts/" + tenant, SecretsJson(fresh).dump()), "put tenant secret"));
  return fresh;
}

Status NotifyStore::PutTenantSecrets(const std::string& tenant, const std::vector<Secret>& secrets) {
  std::lock_guard lock(mu_);
  FF_RETURN_IF_ERROR(Mirrored("ts/" + tenant, SecretsJson(secrets).dump()));
  return FromRocks(db_->Put(Synced(), "ts/" + tenant, SecretsJson(secrets).dump()), "put tenant secret");
}

Status NotifyStore::PutCallback(const std::string& fax_id, const std::string& url,
                                const std::string& tenant) {
  return FromRocks(db_->Put(Synced(), "cb/" + fax_id, json{{"url", url}, {"tenant", tenant}}.dump()),
                   "put callback");
}

Result<std::optional<std::pair<std::string, std::string>>> NotifyStore::GetCallback(
    const std::string& fax_id) {
  using P = std::pair<std::string, std::string>;
  return GetJson<P>(db_.get(), "cb/" + fax_id, [](const json& j) {
    return P{j.at("url").get<std::string>(), j.at("tenant").get<std::string>()};
  });
}

Result<bool> NotifyStore::AddDelivery(const Delivery& delivery) {
  std::lock_guard lock(mu_);
  std::string v;
  auto s = db_->Get(rocksdb::ReadOptions(), "dl/" + delivery.id, &v);
  if (s.ok()) return false;
  if (!s.IsNotFound()) return FromRocks(s, "get delivery");
  rocksdb::WriteBatch b;
  const std::string value = ToJson(delivery).dump();
  b.Put("dl/" + delivery.id, value);
  b.Put(DueKey(delivery), DueValue(delivery));
  if (delivery_mirror_) b.Put("dout/" + delivery.id, value);  // published by PublishDeliveries
  FF_RETURN_IF_ERROR(FromRocks(db_->Write(Synced(), &b), "add delivery"));
  return true;
}

Result<std::optional<Delivery>> NotifyStore::GetDelivery(const std::string& id) {
  return GetJson<Delivery>(db_.get(), "dl/" + id, DeliveryFrom);
}

namespace {
int32_t DuePartition(const rocksdb::Slice& value) {
  if (value.empty()) return -1;
  try {
    return static_cast<int32_t>(std::stol(value.ToString()));
  } catch (const std::exception&) {
    return -1;
  }
}
}  // namespace

Result<std::vector<Delivery>> NotifyStore::Due(int64_t now_ms, size_t limit, const PartitionFilter& take) {
  std::vector<std::string> ids;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    const std::string end = "due/" + Pad(now_ms) + "0";
    for (it->Seek("due/"); it->Valid() && it->key().starts_with("due/") && ids.size() < limit; it->Next()) {
      const std::string key = it->key().ToString();
      if (key > end) break;
      std::string id = key.substr(key.rfind('/') + 1);
      if (take && !take(DuePartition(it->value()), id)) continue;  // another node's partition
      ids.push_back(std::move(id));
    }
    FF_RETURN_IF_ERROR(FromRocks(it->status(), "scan due"));
  }
  std::vector<Delivery> out;
  for (const auto& id : ids) {
    FF_ASSIGN_OR_RETURN(auto d, GetDelivery(id));
    if (d && d->state == "pending" && d->next_ms <= now_ms) out.push_back(std::move(*d));
  }
  return out;
}

Status NotifyStore::RecordAttempt(const Delivery& before, const Delivery& after, const LogEntry& entry) {
  std::lock_guard lock(mu_);
  rocksdb::WriteBatch b;
  // Several gateway nodes: while this attempt ran, another node's further state of the delivery
  // may have been applied (an ownership change overlap). Never step back from it.
  Delivery current = before;
  if (delivery_mirror_) {
    FF_ASSIGN_OR_RETURN(auto now, GetDelivery(before.id));
    if (now && Further(*now, before)) current = *now;
  }
  if (current.attempts == before.attempts && current.state == before.state) {
    b.Delete(DueKey(before));
    const std::string value = ToJson(after).dump();
    b.Put("dl/" + after.id, value);
    if (after.state == "pending") b.Put(DueKey(after), DueValue(after));
    if (Finished(after)) b.Put(FinKey(after), DueValue(after));
    if (delivery_mirror_) b.Put("dout/" + after.id, value);  // published by PublishDeliveries
  } else if (Further(after, current)) {
    if (current.state == "pending") b.Delete(DueKey(current));
    const std::string value = ToJson(after).dump();
    b.Put("dl/" + after.id, value);
    if (after.state == "pending") b.Put(DueKey(after), DueValue(after));
    if (Finished(after)) b.Put(FinKey(after), DueValue(after));
    b.Put("dout/" + after.id, value);
  }
  const std::string log_key =
      "log/" + after.target + "/" + Pad(entry.at_ms) + "/" + after.id + "/" + std::to_string(entry.attempt);
  const std::string log_value = ToJson(entry).dump();
  b.Put(log_key, log_value);
  if (log_mirror_) b.Put("lout/" + log_key, log_value);  // published by PublishLog
  return FromRocks(db_->Write(Synced(), &b), "record attempt");
}

Result<std::vector<LogEntry>> NotifyStore::Log(const std::string& target, size_t limit) {
  std::vector<LogEntry> out;
  const std::string prefix = "log/" + target + "/";
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  it->SeekForPrev(prefix + "\xff");
  for (; it->Valid() && it->key().starts_with(prefix) && out.size() < limit; it->Prev()) {
    try {
      out.push_back(LogFrom(json::parse(it->value().ToString())));
    } catch (const std::exception& e) {
      return Status::Fatal(Code::kCorruption, std::string("notify store: bad log entry: ") + e.what());
    }
  }
  FF_RETURN_IF_ERROR(FromRocks(it->status(), "scan log"));
  return out;
}

Result<int64_t> NotifyStore::PendingCount(const PartitionFilter& take) {
  int64_t n = 0;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("due/"); it->Valid() && it->key().starts_with("due/"); it->Next()) {
    if (take) {
      const std::string key = it->key().ToString();
      if (!take(DuePartition(it->value()), key.substr(key.rfind('/') + 1))) continue;
    }
    ++n;
  }
  FF_RETURN_IF_ERROR(FromRocks(it->status(), "count due"));
  return n;
}

Result<size_t> NotifyStore::PruneFinished(int64_t finished_before_ms, size_t limit,
                                          const PartitionFilter& take) {
  if (limit == 0) return size_t{0};
  // One publisher of fax.webhook-deliveries at a time: a tombstone never overtakes a state of the
  // same delivery still being published from the outbox.
  std::lock_guard publishing(publish_delivery_mu_);
  std::vector<std::pair<std::string, std::string>> candidates;  // fin key, delivery id
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    const std::string end = "fin/" + Pad(finished_before_ms);  // strictly before: "fin/<ms>/" > end
    size_t scanned = 0;
    for (it->Seek("fin/");
         it->Valid() && it->key().starts_with("fin/") && candidates.size() < limit && scanned < 8 * limit;
         it->Next(), ++scanned) {
      const std::string key = it->key().ToString();
      if (key >= end) break;
      std::string id = key.substr(key.rfind('/') + 1);
      if (take && !take(DuePartition(it->value()), id)) continue;  // another node's partition
      candidates.emplace_back(key, std::move(id));
    }
    FF_RETURN_IF_ERROR(FromRocks(it->status(), "scan finished"));
  }
  if (candidates.empty()) return size_t{0};
  std::vector<std::pair<std::string, std::string>> tombstones;  // the finished ones: removed
  for (const auto& [fin_key, id] : candidates) {
    FF_ASSIGN_OR_RETURN(auto d, GetDelivery(id));
    if (d && Finished(*d)) tombstones.emplace_back("dl/" + id, "");
  }
  if (delivery_mirror_ && !tombstones.empty())
    FF_RETURN_IF_ERROR(
        delivery_mirror_(tombstones).WithContext("publishing tombstones to fax.webhook-deliveries"));
  // The local copies (this node's follower may already have applied some of the tombstones).
  std::lock_guard lock(mu_);
  rocksdb::WriteBatch b;
  for (const auto& [fin_key, id] : candidates) {
    FF_ASSIGN_OR_RETURN(auto d, GetDelivery(id));
    b.Delete(fin_key);                  // stale entries (delivery gone) go too
    if (!d || !Finished(*d)) continue;  // never a pending one (a finished one never becomes pending)
    b.Delete("dl/" + id);
    b.Delete("dout/" + id);
    if (FinKey(*d) != fin_key) b.Delete(FinKey(*d));
  }
  FF_RETURN_IF_ERROR(FromRocks(db_->Write(rocksdb::WriteOptions(), &b), "prune finished deliveries"));
  return tombstones.size();
}

}  // namespace faxflow::notify
