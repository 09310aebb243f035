#include "workers/notify/notifier.h"

#include <openssl/sha.h>

#include <algorithm>
#include <ctime>
#include <future>
#include <map>
#include <set>

#include "common/log.h"
#include "common/time_format.h"
#include "schemas/event.pb.h"
#include "schemas/submission.pb.h"
#include "storage/status_store.h"
#include "topics/catalogue.h"
#include "workers/notify/signature.h"

namespace faxflow::notify {
namespace {

using nlohmann::json;

std::string Iso8601(int64_t ms) { return FormatUtc(ms, "%Y-%m-%dT%H:%M:%S.%f") + "Z"; }

// msg_ + 24 hex chars of sha256(event id | target): stable across redeliveries and retries.
std::string DeliveryId(const std::string& event_id, const std::string& target) {
  const std::string in = event_id + "|" + target;
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(in.data()), in.size(), md);
  static const char* hex = "0123456789abcdef";
  std::string out = "msg_";
  for (int i = 0; i < 12; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

std::vector<std::string> LiveSecrets(const std::vector<Secret>& secrets, int64_t now_ms) {
  std::vector<std::string> out;
  for (const auto& s : secrets)
    if (s.expires_ms == 0 || s.expires_ms > now_ms) out.push_back(s.value);
  return out;
}

}  // namespace

NotifierOptions NotifierOptions::FromConfig(const Config& config) {
  NotifierOptions o;
  auto ms = [](double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); };
  o.max_age = ms(config.webhooks_max_age_seconds);
  o.initial_backoff = ms(config.webhooks_initial_backoff_seconds);
  o.max_backoff = ms(config.webhooks_max_backoff_seconds);
  o.finished_retention = ms(config.webhooks_finished_retention_hours * 3600);
  return o;
}

Notifier::Notifier(NotifierOptions options, bus::Bus* bus, NotifyStore& store, WebhookSender sender,
                   prometheus::Registry& registry, Clock& clock)
    : options_(std::move(options)),
      bus_(bus),
      store_(store),
      sender_(std::move(sender)),
      clock_(clock),
      metrics_(registry) {}

Notifier::~Notifier() { Stop(); }

Status Notifier::Start() {
  FF_ASSIGN_OR_RETURN(int64_t pending, store_.PendingCount());
  if (!store_.SharesDeliveries()) metrics_.pending.Set(static_cast<double>(pending));
  if (bus_) {
    FF_ASSIGN_OR_RETURN(consumer_, bus_->NewConsumer({options_.group, "notify", true}));
    if (!options_.owns) {
      std::vector<bus::TopicPartition> parts;
      for (auto topic : {bus::topic::kSubmissions, bus::topic::kEvents}) {
        FF_ASSIGN_OR_RETURN(auto p, bus::AllPartitions(*bus_, std::string(topic)));
        parts.insert(parts.end(), p.begin(), p.end());
      }
      FF_RETURN_IF_ERROR(consumer_->Assign(parts));
      metrics_.partitions.Set(static_cast<double>(parts.size() / 2));
    } else {
      FF_ASSIGN_OR_RETURN(int32_t n, bus_->PartitionCount(std::string(bus::topic::kSubmissions)));
      FF_ASSIGN_OR_RETURN(int32_t events, bus_->PartitionCount(std::string(bus::topic::kEvents)));
      if (n != events)
        return Status::Permanent(Code::kFailedPrecondition,
                                 "webhooks on several gateway nodes need as many fax.events partitions (" +
                                     std::to_string(events) + ") as fax.submissions partitions (" +
                                     std::to_string(n) + ")");
      if (options_.callbacks_group.empty())
        return Status::Permanent(Code::kInvalidArgument, "notifier: owns without callbacks_group");
      for (int32_t p = 0; p < n; ++p) partitions_.push_back(p);
      partition_count_ = n;
      FF_ASSIGN_OR_RETURN(callbacks_,
                          bus_->NewConsumer({options_.callbacks_group, "notify-callbacks", true}));
      FF_ASSIGN_OR_RETURN(auto subs, bus::AllPartitions(*bus_, std::string(bus::topic::kSubmissions)));
      for (const auto& tp : subs) {
        FF_ASSIGN_OR_RETURN(auto committed, callbacks_->Committed(tp));
        callbacks_next_[tp.partition] = committed.value_or(0);
      }
      FF_RETURN_IF_ERROR(callbacks_->Assign(subs));
      callback_thread_ = std::thread([this] { CallbackLoop(); });
    }
    consume_thread_ = std::thread([this] { ConsumeLoop(); });
  }
  dispatch_thread_ = std::thread([this] { DispatchLoop(); });
  return Status::Ok();
}

void Notifier::Stop() {
  stop_ = true;
  if (consume_thread_.joinable()) consume_thread_.join();
  if (callback_thread_.joinable()) callback_thread_.join();
  if (dispatch_thread_.joinable()) dispatch_thread_.join();
}

std::vector<bus::TopicPartition> Notifier::Owned(const std::vector<int32_t>& partitions) const {
  std::vector<bus::TopicPartition> out;
  for (auto topic : {bus::topic::kSubmissions, bus::topic::kEvents})
    for (int32_t p : partitions) out.push_back({std::string(topic), p});
  return out;
}

Status Notifier::Rebalance() {
  std::set<int32_t> current;
  for (const auto& tp : consumer_->Assignment()) current.insert(tp.partition);
  std::set<int32_t> want;
  for (int32_t p : partitions_)
    if (options_.owns(p)) want.insert(p);
  for (auto it = taking_.begin(); it != taking_.end();) {
    if (want.count(it->first)) {
      ++it;
      continue;
    }
    taking_since_.erase(it->first);
    it = taking_.erase(it);
  }
  std::vector<int32_t> next;
  for (int32_t p : want) {
    if (current.count(p)) {
      next.push_back(p);
      continue;
    }
    // Newly owned: first let the callback follower read every submission up to the present, so
    // the callback_url of a fax submitted while another node owned the partition is known.
    if (!taking_.count(p)) {
      FF_ASSIGN_OR_RETURN(int64_t end, consumer_->EndOffset({std::string(bus::topic::kSubmissions), p}));
      taking_[p] = end;
      taking_since_[p] = clock_.Monotonic();
    }
    int64_t read = 0;
    {
      std::lock_guard l(callbacks_mu_);
      read = callbacks_next_[p];
    }
    if (read >= taking_[p]) {
      next.push_back(p);
    } else if (clock_.Monotonic() - taking_since_[p] > std::chrono::seconds(10)) {
      // Offsets may skip (transaction markers): do not wait forever for an exact position.
      FF_LOG_WARN(Logger("notify"),
                  "taking fax.events partition {} before the callback follower reached {} (at {})", p,
                  taking_[p], read);
      next.push_back(p);
    }
  }
  std::set<int32_t> next_set(next.begin(), next.end());
  if (next_set == current) return Status::Ok();
  for (int32_t p : next) {
    taking_.erase(p);
    taking_since_.erase(p);
  }
  FF_RETURN_IF_ERROR(consumer_->Assign(Owned(next)));
  metrics_.partitions.Set(static_cast<double>(next.size()));
  FF_LOG_INFO(Logger("notify"),
              "webhook notifier now handles {} of {} partition(s) of fax.submissions/fax.events", next.size(),
              partitions_.size());
  return Status::Ok();
}

void Notifier::CallbackLoop() {
  auto log = Logger("notify");
  auto beat = RegisterHeartbeat(heartbeats_, "notify_callbacks");
  while (!stop_) {
    beat->Beat();
    auto polled = callbacks_->Poll(options_.poll_timeout, 500);
    if (!polled.ok()) {
      FF_LOG_WARN(log, "callback follower poll failed: {}", polled.status().ToString());
      clock_.SleepUntil(clock_.Monotonic() + std::chrono::milliseconds(500));
      continue;
    }
    std::map<bus::TopicPartition, int64_t> next;
    bool failed = false;
    for (const auto& r : *polled) {
      v1::Submission sub;
      if (sub.ParseFromString(r.value) && !sub.options().callback_url().empty()) {
        Status s = store_.PutCallback(sub.fax_id(), sub.options().callback_url(), sub.tenant());
        if (!s.ok()) {
          FF_LOG_WARN(log, "callback follower {}/{}: {} (will retry)", r.partition, r.offset, s.ToString());
          (void)callbacks_->Seek(r.tp(), r.offset);
          failed = true;
          break;
        }
      }
      next[r.tp()] = r.offset + 1;
    }
    if (!next.empty()) {
      std::vector<bus::TopicPartitionOffset> offsets;
      for (const auto& [tp, off] : next) offsets.push_back({tp, off});
      Status s = callbacks_->Commit(offsets);
      if (!s.ok()) FF_LOG_WARN(log, "callback follower commit failed: {}", s.ToString());
      std::lock_guard l(callbacks_mu_);
      for (const auto& [tp, off] : next) callbacks_next_[tp.partition] = off;
    }
    if (failed) clock_.SleepUntil(clock_.Monotonic() + std::chrono::milliseconds(500));
  }
}

void Notifier::ConsumeLoop() {
  auto log = Logger("notify");
  auto beat = RegisterHeartbeat(heartbeats_, "notify_consumer");
  while (!stop_) {
    beat->Beat();
    if (options_.owns && clock_.Monotonic() >= next_rebalance_) {
      next_rebalance_ = clock_.Monotonic() + options_.ownership_interval;
      Status s = Rebalance();
      if (!s.ok()) FF_LOG_WARN(log, "webhook partition ownership: {}", s.ToString());
    }
    if (options_.owns && consumer_->Assignment().empty()) {  // nothing owned (yet)
      clock_.SleepUntil(clock_.Monotonic() + options_.poll_timeout);
      continue;
    }
    auto polled = consumer_->Poll(options_.poll_timeout, 500);
    if (!polled.ok()) {
      FF_LOG_WARN(log, "poll failed: {}", polled.status().ToString());
      clock_.SleepUntil(clock_.Monotonic() + std::chrono::milliseconds(500));
      continue;
    }
    // Submissions first: a fax's callback_url must be known before its events are handled.
    std::vector<const bus::Record*> ordered;
    for (const auto& r : *polled)
      if (r.topic == bus::topic::kSubmissions) ordered.push_back(&r);
    for (const auto& r : *polled)
      if (r.topic != bus::topic::kSubmissions) ordered.push_back(&r);
    std::map<bus::TopicPartition, int64_t> next;
    std::map<bus::TopicPartition, int64_t> rewind;
    for (const bus::Record* r : ordered) {
      if (rewind.count(r->tp())) continue;
      Status s = Handle(*r);
      if (!s.ok()) {
        FF_LOG_WARN(log, "{}/{}/{}: {} (will retry)", r->topic, r->partition, r->offset, s.ToString());
        rewind[r->tp()] = r->offset;
        continue;
      }
      next[r->tp()] = r->offset + 1;
    }
    for (const auto& [tp, offset] : rewind) {
      Status seek = consumer_->Seek(tp, offset);
      if (!seek.ok()) FF_LOG_ERROR(log, "seek {}/{} failed: {}", tp.topic, tp.partition, seek.ToString());
      next.erase(tp);
    }
    if (!next.empty()) {
      // Shared deliveries: the new deliveries are on fax.webhook-deliveries before their records
      // are committed, so a node dying after the commit leaves them to the partition's next owner.
      Status flushed = FlushDeliveries();
      if (!flushed.ok()) {
        FF_LOG_WARN(log, "webhook deliveries not published, offsets not committed: {}", flushed.ToString());
        next.clear();
      }
    }
    if (!next.empty()) {
      std::vector<bus::TopicPartitionOffset> offsets;
      for (const auto& [tp, off] : next) offsets.push_back({tp, off});
      Status s = consumer_->Commit(offsets);
      if (!s.ok()) FF_LOG_WARN(log, "commit failed (records will be handled again): {}", s.ToString());
    }
    if (!rewind.empty()) clock_.SleepUntil(clock_.Monotonic() + std::chrono::milliseconds(500));
  }
}

void Notifier::DispatchLoop() {
  auto log = Logger("notify");
  auto beat = RegisterHeartbeat(heartbeats_, "notify_dispatch");
  dispatch_beat_ = beat.get();
  while (!stop_) {
    beat->Beat();
    auto n = DeliverDue();
    if (!n.ok()) FF_LOG_WARN(log, "dispatch: {}", n.status().ToString());
    // Several gateway nodes: this node's new delivery log entries to fax.webhook-log (a failure
    // keeps them in the outbox for the next round).
    auto published = store_.PublishLog();
    if (!published.ok()) FF_LOG_WARN(log, "delivery log: {}", published.status().ToString());
    // ... and the new states of its deliveries to fax.webhook-deliveries (kept on failure).
    Status flushed = FlushDeliveries();
    if (!flushed.ok()) FF_LOG_WARN(log, "webhook deliveries: {}", flushed.ToString());
    // Retention: finished deliveries older than finished_retention go (tombstones with several
    // nodes), at most prune_per_round per round so a backlog does not hold up deliveries.
    auto pruned = PruneFinished();
    if (!pruned.ok()) FF_LOG_WARN(log, "pruning finished deliveries: {}", pruned.status().ToString());
    if (store_.SharesDeliveries() && clock_.Monotonic() >= next_pending_count_) {
      // Every node holds every delivery: the gauge counts those of the partitions owned here
      // (instead of counting this node's creations and completions).
      next_pending_count_ = clock_.Monotonic() + std::chrono::seconds(1);
      auto pending = store_.PendingCount(OwnedDeliveries());
      if (pending.ok()) metrics_.pending.Set(static_cast<double>(*pending));
    }
    if (n.ok() && *n > 0) continue;  // more may be due
    clock_.SleepUntil(clock_.Monotonic() + options_.dispatch_interval);
  }
  dispatch_beat_ = nullptr;
}

std::optional<NotifyEvent> Notifier::FromDeliveryEvent(const std::string& value) {
  v1::DeliveryEvent ev;
  if (!ev.ParseFromString(value)) return std::nullopt;
  NotifyEvent out;
  out.event_id = ev.event_id();
  out.tenant = ev.tenant();
  out.fax_id = ev.fax_id();
  out.at_ms = ev.at_ms();
  json d{{"fax_id", ev.fax_id()}};
  if (!ev.recipient_id().empty()) d["recipient_id"] = ev.recipient_id();
  switch (ev.kind_case()) {
    case v1::DeliveryEvent::kRendered:
      out.type = "fax.rendered";
      d["pages"] = ev.rendered().page_count();
      break;
    case v1::DeliveryEvent::kAttemptStarted:
      out.type = "fax.attempt";
      d["attempt"] = ev.attempt_started().attempt();
      d["first_page"] = ev.attempt_started().first_page();
      d["status"] = "started";
      break;
    case v1::DeliveryEvent::kRetryScheduled:
      out.type = "fax.attempt";
      d["attempt"] = ev.retry_scheduled().attempt();
      d["status"] = "retry_scheduled";
      d["reason"] = ReasonName(ev.retry_scheduled().reason());
      d["retry_at"] = Iso8601(ev.retry_scheduled().retry_at_ms());
      break;
    case v1::DeliveryEvent::kPageConfirmed:
      out.type = "fax.page";
      d["attempt"] = ev.page_confirmed().attempt();
      d["page"] = ev.page_confirmed().page();
      break;
    case v1::DeliveryEvent::kResult: {
      const auto& r = ev.result();
      if (!r.terminal()) return std::nullopt;  // the retry_scheduled event tells about the retry
      out.type = "fax." + StateName(r.state());
      d["state"] = StateName(r.state());
      if (r.reason() != v1::REASON_UNSPECIFIED) d["reason"] = ReasonName(r.reason());
      d["pages_sent"] = r.pages_sent();
      d["pages_total"] = r.pages_total();
      d["attempt"] = r.attempt();
      if (!r.detail().empty()) d["detail"] = r.detail();
      break;
    }
    default:
      return std::nullopt;
  }
  out.data = std::move(d);
  return out;
}

std::string Notifier::Payload(const NotifyEvent& event) {
  json p{{"type", event.type},
         {"timestamp", Iso8601(event.at_ms)},
         {"event_id", event.event_id},
         {"data", event.data}};
  return p.dump();
}

Status Notifier::Handle(const bus::Record& record) {
  if (record.topic == bus::topic::kSubmissions) {
    v1::Submission sub;
    if (!sub.ParseFromString(record.value)) return Status::Ok();  // the status worker dead-letters it
    if (!sub.options().callback_url().empty())
      FF_RETURN_IF_ERROR(store_.PutCallback(sub.fax_id(), sub.options().callback_url(), sub.tenant()));
    NotifyEvent ev;
    ev.event_id = "queued_" + sub.fax_id();
    ev.type = "fax.queued";
    ev.tenant = sub.tenant();
    ev.fax_id = sub.fax_id();
    ev.at_ms = sub.submitted_at_ms();
    json rcp = json::array();
    for (const auto& r : sub.recipients()) rcp.push_back({{"id", r.recipient_id()}, {"to", r.number()}});
    ev.data = {{"fax_id", sub.fax_id()}, {"recipients", rcp}};
    ev.partition = record.partition;
    return Publish(ev);
  }
  if (record.topic == bus::topic::kEvents) {
    auto ev = FromDeliveryEvent(record.value);
    if (!ev) return Status::Ok();
    ev->partition = record.partition;
    return Publish(*ev);
  }
  return Status::Ok();
}

Status Notifier::Publish(const NotifyEvent& event) {
  const int64_t now = clock_.NowMillis();
  const std::string body = Payload(event);
  std::vector<std::pair<std::string, std::string>> targets;  // target, url
  if (!event.fax_id.empty()) {
    FF_ASSIGN_OR_RETURN(auto cb, store_.GetCallback(event.fax_id));
    if (cb) targets.emplace_back("cb:" + event.fax_id, cb->first);
  }
  FF_ASSIGN_OR_RETURN(auto endpoints, store_.ListEndpoints(event.tenant));
  for (const auto& e : endpoints)
    if (e.Subscribed(event.type)) targets.emplace_back("ep:" + e.id, e.url);
  bool counted = false;
  for (const auto& [target, url] : targets) {
    Delivery d;
    d.id = DeliveryId(event.event_id, target);
    d.target = target;
    d.tenant = event.tenant;
    d.url = url;
    d.type = event.type;
    d.event_id = event.event_id;
    d.body = body;
    d.first_ms = now;
    d.next_ms = now;
    d.partition = event.partition;
    if (const int32_t n = partition_count_.load(); d.partition < 0 && n > 0)
      d.partition = bus::PartitionForKey(event.fax_id.empty() ? event.event_id : event.fax_id, n);
    FF_ASSIGN_OR_RETURN(bool created, store_.AddDelivery(d));
    if (!created) {
      metrics_.duplicates.Increment();
      continue;
    }
    if (!store_.SharesDeliveries()) metrics_.pending.Increment();
    if (!counted) {
      metrics_.events.Add({{"type", event.type}}).Increment();
      counted = true;
    }
  }
  return Status::Ok();
}

NotifyStore::PartitionFilter Notifier::OwnedDeliveries() const {
  if (!options_.owns || !store_.SharesDeliveries()) return nullptr;
  // One ownership answer per partition per scan (owns() reads the member table).
  auto owned = std::make_shared<std::map<int32_t, bool>>();
  const int32_t n = partition_count_.load();
  return [this, owned, n](int32_t partition, const std::string& delivery_id) {
    if (partition < 0) {
      if (n == 0) return true;  // no partition count known (no bus): this node's own deliveries
      partition = bus::PartitionForKey(delivery_id, n);
    }
    auto it = owned->find(partition);
    if (it == owned->end()) it = owned->emplace(partition, options_.owns(partition)).first;
    return it->second;
  };
}

Result<size_t> Notifier::PruneFinished() {
  const int64_t before = clock_.NowMillis() - options_.finished_retention.count();
  FF_ASSIGN_OR_RETURN(size_t n, store_.PruneFinished(before, options_.prune_per_round, OwnedDeliveries()));
  if (n > 0) metrics_.pruned.Increment(static_cast<double>(n));
  return n;
}

Status Notifier::FlushDeliveries() {
  for (;;) {
    FF_ASSIGN_OR_RETURN(size_t n, store_.PublishDeliveries(500));
    if (n < 500) return Status::Ok();
  }
}

Result<int> Notifier::DeliverDue() {
  FF_ASSIGN_OR_RETURN(auto due, store_.Due(clock_.NowMillis(), 64, OwnedDeliveries()));
  int n = 0;
  for (size_t i = 0; i < due.size(); i += static_cast<size_t>(options_.parallel)) {
    if (Heartbeat* b = dispatch_beat_.load()) b->Beat();  // a batch takes up to one send timeout
    std::vector<std::future<Status>> running;
    for (size_t j = i; j < std::min(due.size(), i + static_cast<size_t>(options_.parallel)); ++j)
      running.push_back(std::async(std::launch::async, [this, &due, j] { return Attempt(due[j]); }));
    for (auto& f : running) {
      Status s = f.get();
      if (!s.ok()) return s;
      ++n;
    }
  }
  return n;
}

Status Notifier::Attempt(const Delivery& delivery) {
  const int64_t now = clock_.NowMillis();
  std::vector<std::string> secrets;
  if (delivery.target.rfind("ep:", 0) == 0) {
    FF_ASSIGN_OR_RETURN(auto ep, store_.GetEndpoint(delivery.target.substr(3)));
    if (ep) secrets = LiveSecrets(ep->secrets, now);
  } else {
    FF_ASSIGN_OR_RETURN(auto ts, store_.TenantSecrets(delivery.tenant, now));
    secrets = LiveSecrets(ts, now);
  }
  Delivery after = delivery;
  after.attempts = delivery.attempts + 1;
  LogEntry entry;
  entry.delivery_id = delivery.id;
  entry.type = delivery.type;
  entry.event_id = delivery.event_id;
  entry.attempt = after.attempts;
  entry.at_ms = now;

  bool ok = false;
  bool permanent = false;
  if (secrets.empty()) {  // endpoint deleted since the event: nothing to deliver to
    entry.error = "endpoint no longer exists";
    permanent = true;
  } else {
    const int64_t ts = now / 1000;
    FF_ASSIGN_OR_RETURN(std::string sig, SignatureHeader(secrets, delivery.id, ts, delivery.body));
    ingest::OutboundRequest req;
    req.method = "POST";
    req.url = delivery.url;
    req.body = delivery.body;
    req.headers = {{"Content-Type", "application/json"},
                   {"User-Agent", options_.user_agent},
                   {"webhook-id", delivery.id},
                   {"webhook-timestamp", std::to_string(ts)},
                   {"webhook-signature", sig}};
    const auto start = std::chrono::steady_clock::now();
    auto res = sender_(req);
    metrics_.attempt_seconds.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (res.ok()) {
      entry.status = res->status;
      ok = res->status >= 200 && res->status < 300;
      metrics_.attempts.Add({{"outcome", ok ? "ok" : "http_error"}}).Increment();
      if (!ok) entry.error = "HTTP " + std::to_string(res->status);
    } else {
      entry.error = res.status().message();
      const bool refused = res.status().code() == Code::kPermissionDenied;
      metrics_.attempts.Add({{"outcome", refused ? "refused" : "unreachable"}}).Increment();
    }
  }
  after.last_status = entry.status;
  after.last_error = entry.error;
  if (ok) {
    after.state = "delivered";
    after.finished_ms = now;
    metrics_.delivered.Increment();
    if (!store_.SharesDeliveries()) metrics_.pending.Decrement();
  } else {
    // Exponential backoff: initial * 2^(attempts-1), capped; dead after max_age from the first attempt.
    int64_t delay = options_.initial_backoff.count();
    for (int i = 1; i < after.attempts && delay < options_.max_backoff.count(); ++i) delay *= 2;
    delay = std::min<int64_t>(delay, options_.max_backoff.count());
    const int64_t next = now + delay;
    if (permanent || next > delivery.first_ms + options_.max_age.count()) {
      after.state = "dead";
      after.finished_ms = now;
      metrics_.dead_lettered.Increment();
      if (!store_.SharesDeliveries()) metrics_.pending.Decrement();
      FF_LOG_WARN(Logger("notify"), "webhook {} to {} dead-lettered after {} attempt(s): {}", delivery.id,
                  delivery.target, after.attempts, entry.error);
    } else {
      after.next_ms = next;
    }
  }
  entry.state = after.state;
  return store_.RecordAttempt(delivery, after, entry);
}

}  // namespace faxflow::notify
