// Webhook endpoints and callback secrets shared by every gateway node (docs/webhooks.md).
//
// Writes through the NotifyStore (REST routes, first use of a tenant's callback secret) are
// mirrored to the compacted topic fax.webhooks (key "ep/<endpoint id>" or "ts/<tenant>", value
// the record's JSON, a tombstone when an endpoint is deleted) before the local write, and every
// node follows that topic from the beginning into its own store (NotifyStore::ApplyMirrored). So
// an endpoint created on one node is read, and delivered to, by any node, and it survives the
// loss of the node that created it. Records are applied in log order: concurrent writes of one
// key converge on the last one in the log on every node.
//
// With ShareDeliveryLog() (several gateway nodes, owner routing on), the delivery log is shared
// the same way: each attempt's log entry goes to this node's outbox with the attempt
// (NotifyStore::RecordAttempt), the notifier's dispatch loop publishes the outbox to the retained
// topic fax.webhook-log (NotifyStore::PublishLog), and every node follows that topic from the
// beginning into its own log. So GET /v1/webhooks/endpoints/{id} (served by the tenant's owner)
// shows the attempts of every node, including a node that has since died or whose partitions
// moved (docs/webhooks.md).
//
// With ShareDeliveries() (same condition), the deliveries themselves are shared: each change of
// a delivery (created, attempted: pending with its next due time and attempt count, delivered,
// dead) goes to this node's delivery outbox (NotifyStore::RecordAttempt/AddDelivery), the notifier
// publishes it to the compacted topic fax.webhook-deliveries (key dl/<delivery id>), and every node
// follows that topic into its store, merging by progress. The owner of a delivery's partition
// makes its attempts, so a pending delivery is continued by the next owner when its node dies.
//
// Lifecycle: Start() installs the mirror, catches up with the topic (blocking, so a node serves
// webhook routes only with the table it had before) and follows it on a thread; Stop() joins.
// Threading: the mirror runs on the writer's thread (a synchronous produce); applies run on the
// follower thread; the store serialises both.
#pragma once

#include <memory>

#include "common/heartbeat.h"
#include "common/status.h"
#include "producers/gateway/topic_follower.h"
#include "topics/bus.h"
#include "workers/notify/notify_store.h"

namespace faxflow::notify {

class WebhookReplica {
 public:
  WebhookReplica(bus::Bus& bus, NotifyStore& store);
  ~WebhookReplica();
  WebhookReplica(const WebhookReplica&) = delete;
  WebhookReplica& operator=(const WebhookReplica&) = delete;

  // Liveness of the fax.webhooks follower loop (component follow_fax_webhooks); call before
  // Start(). Null: none.
  void SetHeartbeats(Heartbeats* heartbeats) { heartbeats_ = heartbeats; }
  // Shares the delivery log through fax.webhook-log (follower loop follow_fax_webhook_log); call
  // before Start().
  void ShareDeliveryLog() { share_log_ = true; }
  // Shares pending deliveries through fax.webhook-deliveries (follower loop
  // follow_fax_webhook_deliveries); call before Start().
  void ShareDeliveries() { share_deliveries_ = true; }
  Status Start();
  void Stop();

 private:
  bus::Bus& bus_;
  NotifyStore& store_;
  Heartbeats* heartbeats_ = nullptr;
  std::unique_ptr<bus::Producer> producer_;
  std::unique_ptr<TopicFollower> follower_;
  bool share_log_ = false;
  std::unique_ptr<TopicFollower> log_follower_;  // with share_log_
  bool share_deliveries_ = false;
  std::unique_ptr<TopicFollower> delivery_follower_;  // with share_deliveries_
};

}  // namespace faxflow::notify
