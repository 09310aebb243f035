// Tenant ownership across gateway nodes (seed 001, docs/owners.md).
//
// Every gateway node heartbeats into the compacted topic fax.gateways (key and member id = its
// advertised base URL, value = WorkerLoad{worker, epoch, at_ms}; a tombstone when it stops) and
// follows that topic into a claims::MemberTable (topics/claims), so every node sees the same
// live members. A tenant belongs to one of `slots` partitions (PartitionForKey(tenant)), and a
// partition is owned by the live member with the highest rendezvous weight
// (claims::RendezvousWeight): a deterministic function of the member table, no coordinator.
// When a node dies its heartbeats stop; after member_timeout its partitions go, by rendezvous
// weight, to the survivors (and only its partitions move).
//
// Routing (Route, called from the gateway's admission step): status and control requests (GET /v1/faxes...,
// POST /v1/faxes/{id}/cancel, /v1/broadcasts..., /v1/webhooks...) and, with route_submissions, submissions
// (POST /v1/faxes, JSON or multipart) of a tenant owned by another node are
// answered with 307 to the owner (owner_mode=redirect) or forwarded to it and its answer relayed
// (owner_mode=proxy). Forwarded requests carry X-Faxflow-Forwarded-By and are always served where they land,
// so a disagreement between two nodes' tables cannot loop. A proxy that cannot reach the owner answers 503
// with Retry-After: 1 (the owner is about to be replaced). Counted: faxflow_gateway_owner_redirects_total,
// faxflow_gateway_owner_proxied_total{outcome}.
//
// Lifecycle: Start() publishes the first heartbeat, catches up with the table and starts the
// heartbeat thread; Stop() publishes a tombstone and joins. Threading: OwnerOf/Members and the
// installed handler are thread-safe.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/heartbeat.h"
#include "common/status.h"
#include "producers/gateway/topic_follower.h"
#include "topics/bus.h"
#include "topics/claims/member_table.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace faxflow {

struct OwnerOptions {
  std::string self_url;      // e.g. "http://10.0.0.5:8080"
  std::string mode = "off";  // off | redirect | proxy
  std::chrono::milliseconds member_timeout{5000};
  std::chrono::milliseconds heartbeat_interval{1000};
  int32_t slots = 12;
  std::chrono::milliseconds proxy_timeout{30'000};
  // POST /v1/faxes is routed too (gateway.route_submissions): the tenant's submission rate limit
  // then holds for the cluster, at the cost of one extra hop for uploads through another node.
  bool route_submissions = true;
};

class OwnerDirectory {
 public:
  OwnerDirectory(OwnerOptions options, bus::Bus& bus, prometheus::Registry& registry, Clock& clock);
  ~OwnerDirectory();
  OwnerDirectory(const OwnerDirectory&) = delete;
  OwnerDirectory& operator=(const OwnerDirectory&) = delete;

  Status Start();
  void Stop();

  // Base URL of the node owning `tenant` (this node when it is the only live one).
  std::string OwnerOf(const std::string& tenant) const;
  // Base URL of the node owning slot `slot` (also used for other keyed work split across the
  // gateway nodes, e.g. the webhook notifier's partitions of fax.events).
  std::string OwnerOfSlot(int32_t slot) const;
  std::vector<std::string> Members() const;
  const std::string& self() const { return options_.self_url; }

  // Routes an authenticated request of `tenant` (called by the gateway's admission step, after
  // the body was read and before the per-tenant limits): true when it was answered here (307 to
  // the owner, or proxied to it), false when this node serves it.
  bool Route(const httplib::Request& req, httplib::Response& res, const std::string& tenant);

  // Liveness of this component's loops ("owner" and its topic follower; common/heartbeat.h).
  // Call before Start(). Null (the default): none. Must outlive the loops.
  void SetHeartbeats(Heartbeats* heartbeats) { heartbeats_ = heartbeats; }

 private:
  Heartbeats* heartbeats_ = nullptr;
  Status Heartbeat(bool leaving);
  void Run();
  bool Routed(const httplib::Request& req) const;
  void Proxy(const std::string& owner, const httplib::Request& req, httplib::Response& res);

  OwnerOptions options_;
  bus::Bus& bus_;
  Clock& clock_;
  int64_t epoch_ = 0;
  claims::MemberTable table_;
  std::unique_ptr<bus::Producer> producer_;
  std::unique_ptr<TopicFollower> follower_;
  prometheus::Counter& redirects_;
  prometheus::Family<prometheus::Counter>& proxied_;
  prometheus::Gauge& members_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace faxflow
