// The webhook notifier: turns fax lifecycle events into signed HTTP POSTs (docs/webhooks.md).
//
// Input: fax.submissions (queued; remembers each fax's callback_url) and fax.events (rendered,
// attempt, page, delivered, partial, failed, cancelled, expired), consumed at least once with its
// own group faxflow-notify, plus Publish() from inside the process (broadcast progress).
// Targets of an event: the fax's callback_url (signed with the tenant's callback secret) and every
// endpoint of the tenant subscribed to the event type. One Delivery per (event, target), stored
// before the consumed offset is committed; its id is derived from both, so redelivered events
// do not create second deliveries.
//
// Output: POST <url> with the JSON payload and the headers webhook-id, webhook-timestamp,
// webhook-signature (signature.h), through the SSRF guard shared with content_url fetching
// (producers/ingest/url_fetcher.h). 2xx: delivered. Anything else (HTTP error, unreachable,
// refused by the guard): retried with exponential backoff (initial_backoff doubling up to
// max_backoff) until max_age after the first attempt, then dead-lettered (state "dead", kept in
// the delivery log, faxflow_webhook_dead_lettered_total). Every attempt is logged per target.
//
// Several gateway nodes (options.owns, docs/webhooks.md): each node consumes only the partitions
// of fax.submissions/fax.events it owns (partition p of both topics together), re-evaluated every
// ownership_interval, resuming at the shared group's committed offsets; a callback follower thread
// reads every fax.submissions partition (per-node group) so a taken-over partition knows its
// faxes' callback_urls. A moving partition may be handled twice: same webhook-id.
// Pending deliveries move with their partition too when the store shares deliveries
// (NotifyStore::SetDeliveryMirror, fax.webhook-deliveries): every node holds every delivery, the
// dispatcher attempts only those of the partitions it owns now, the consumer publishes the
// deliveries it created before committing their offsets, and the dispatcher publishes each
// attempt's new state in the same round. So the next owner of a partition retries its pending
// deliveries (same webhook-id, attempt count, due time and 24 h deadline) from its first dispatch
// round after the ownership change.
//
// Retention: every dispatch round also prunes finished deliveries older than finished_retention
// (PruneFinished; the owner of a delivery's partition tombstones it on fax.webhook-deliveries and
// every node's replica deletes its copy). Pending deliveries and the delivery log are kept.
//
// Lifecycle: construct, Start() (consumer thread + dispatcher thread, + callback follower with
// options.owns), Stop() joins them.
// Tests can skip Start() and drive Handle()/Publish()/DeliverDue() directly with a ManualClock.
// Threading: Handle/Publish/DeliverDue are thread-safe (the store serialises writes); the
// dispatcher sends up to `parallel` deliveries at once.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/config.h"
#include "common/heartbeat.h"
#include "common/status.h"
#include "producers/ingest/url_fetcher.h"
#include "topics/bus.h"
#include "workers/notify/metrics.h"
#include "workers/notify/notify_store.h"

namespace faxflow::notify {

struct NotifierOptions {
  std::chrono::milliseconds max_age{std::chrono::hours(24)};
  std::chrono::milliseconds initial_backoff{std::chrono::seconds(5)};
  std::chrono::milliseconds max_backoff{std::chrono::hours(1)};
  std::chrono::milliseconds poll_timeout{200};
  std::chrono::milliseconds dispatch_interval{200};
  // A finished (delivered or dead) delivery is removed this long after it finished: from the
  // local store, and with several gateway nodes by a tombstone on fax.webhook-deliveries written
  // by the owner of its partition. Must exceed max_age and the receivers' replay tolerance.
  std::chrono::milliseconds finished_retention{std::chrono::hours(72)};
  size_t prune_per_round = 100;  // most deliveries removed per dispatch round
  int parallel = 4;
  std::string group = "faxflow-notify";
  std::string user_agent = "faxflow-webhooks/0.1";
  // Several gateway nodes: the partitions this node notifies about. fax.submissions and fax.events
  // have the same partition count and key (fax id), so partition p of both goes to one node and a
  // fax's queued event and later events are handled by the same node. Null: every partition (one
  // node). Re-evaluated every `ownership_interval`; partitions resume at the committed offsets of
  // the shared `group`, so a partition that moves continues where its previous node stopped.
  std::function<bool(int32_t partition)> owns;
  std::chrono::milliseconds ownership_interval{500};
  // With `owns`: the group of this node's callback follower, which reads every partition of
  // fax.submissions to know every fax's callback_url before it takes over a partition.
  std::string callbacks_group;

  static NotifierOptions FromConfig(const Config& config);
};

// One event to notify about.
struct NotifyEvent {
  std::string event_id;  // unique per fact; deliveries are deduplicated on it
  std::string type;      // "fax.delivered", "broadcast.progress", ...
  std::string tenant;
  std::string fax_id;  // empty for broadcast events
  int64_t at_ms = 0;
  nlohmann::json data;
  // Partition of fax.submissions/fax.events the event was read from (Handle); -1 for events
  // published in-process (then derived from the fax id, or the event id, when partitions are known).
  int32_t partition = -1;
};

// Sends one request (production: UrlFetcher::Send, the shared SSRF guard).
using WebhookSender = std::function<Result<ingest::OutboundResponse>(const ingest::OutboundRequest&)>;

class Notifier {
 public:
  // `bus` may be null (no consumption: Publish/DeliverDue only).
  Notifier(NotifierOptions options, bus::Bus* bus, NotifyStore& store, WebhookSender sender,
           prometheus::Registry& registry, Clock& clock);
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  Status Start();
  void Stop();
  // Sets options.owns and options.callbacks_group (several gateway nodes); before Start().
  void SetOwnership(std::function<bool(int32_t partition)> owns, std::string callbacks_group) {
    options_.owns = std::move(owns);
    options_.callbacks_group = std::move(callbacks_group);
  }

  // Applies one consumed record of fax.submissions or fax.events.
  Status Handle(const bus::Record& record);
  // Creates the deliveries of one event (idempotent on event_id).
  Status Publish(const NotifyEvent& event);
  // Attempts every delivery due now; returns how many attempts were made.
  Result<int> DeliverDue();
  // Removes up to prune_per_round finished deliveries older than finished_retention (of the
  // partitions this node owns, with several nodes); returns how many. Run by the dispatch loop.
  Result<size_t> PruneFinished();

  NotifyStore& store() { return store_; }

  // The payload of an event: {"type", "timestamp", "data"}.
  static std::string Payload(const NotifyEvent& event);
  // Translates a fax.events record; nullopt for kinds that are not notified.
  static std::optional<NotifyEvent> FromDeliveryEvent(const std::string& value);

  // Liveness of this component's loops ("notify_consumer" and "notify_dispatch"; common/heartbeat.h).
  // Call before Start(). Null (the default): none. Must outlive the loops.
  void SetHeartbeats(Heartbeats* heartbeats) { heartbeats_ = heartbeats; }

 private:
  Heartbeats* heartbeats_ = nullptr;
  std::atomic<Heartbeat*> dispatch_beat_{nullptr};  // of DispatchLoop(), while it runs
  void ConsumeLoop();
  void DispatchLoop();
  void CallbackLoop();
  // With options_.owns: brings the assignment in line with the partitions owned now. A newly
  // owned partition is taken once the callback follower has read fax.submissions up to the end
  // it had when the partition was first seen as owned.
  Status Rebalance();
  std::vector<bus::TopicPartition> Owned(const std::vector<int32_t>& partitions) const;
  Status Attempt(const Delivery& delivery);
  // With shared deliveries and options_.owns: whether this node makes the attempts of deliveries
  // of `partition` (-1: derived from the delivery id). Null otherwise (every delivery).
  NotifyStore::PartitionFilter OwnedDeliveries() const;
  // Publishes the delivery outbox (all of it); error when a publish failed.
  Status FlushDeliveries();

  NotifierOptions options_;
  bus::Bus* bus_;
  NotifyStore& store_;
  WebhookSender sender_;
  Clock& clock_;
  NotifyMetrics metrics_;
  std::unique_ptr<bus::Consumer> consumer_;
  std::unique_ptr<bus::Consumer> callbacks_;  // with options_.owns
  std::mutex callbacks_mu_;
  std::map<int32_t, int64_t> callbacks_next_;  // fax.submissions partition -> next offset read
  std::map<int32_t, int64_t> taking_;          // partition to take -> submissions end to reach first
  std::map<int32_t, Clock::MonoTime> taking_since_;
  std::vector<int32_t> partitions_;          // all partition numbers (with options_.owns)
  std::atomic<int32_t> partition_count_{0};  // partitions_.size() once Start() set it
  Clock::MonoTime next_rebalance_{};
  Clock::MonoTime next_pending_count_{};  // shared deliveries: refresh of the pending gauge
  std::atomic<bool> stop_{false};
  std::thread consume_thread_;
  std::thread callback_thread_;
  std::thread dispatch_thread_;
};

}  // namespace faxflow::notify
