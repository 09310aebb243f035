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
  Status Start();
  void Stop();

 private:
  bus::Bus& bus_;
  NotifyStore& store_;
  Heartbeats* heartbeats_ = nullptr;
  std::unique_ptr<bus::Producer> producer_;
  std::unique_ptr<TopicFollower> follower_;
};

}  // namespace faxflow::notify
