// REST endpoints of webhooks (docs/webhooks.md), registered on the gateway's HTTP server:
//   POST   /v1/webhooks/endpoints                {url, events[], description} -> 201 {id, secret, ...}
//   GET    /v1/webhooks/endpoints                the tenant's endpoints (no secrets)
//   GET    /v1/webhooks/endpoints/{id}           one endpoint and its delivery log (newest first)
//   DELETE /v1/webhooks/endpoints/{id}
//   POST   /v1/webhooks/endpoints/{id}/rotate    new secret; the old one keeps signing for 24 h
//   GET    /v1/webhooks/callback-secret          secrets that sign per-fax callback_url deliveries
//   POST   /v1/webhooks/callback-secret/rotate
//   GET    /v1/webhooks/callbacks/{fax_id}       delivery log of a fax's callback_url
// Another tenant's endpoint answers 404.
//
// Threading: handlers run on httplib's pool; the store is thread-safe.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "common/clock.h"
#include "workers/notify/notify_store.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace faxflow::notify {

// The caller's tenant, or nullopt after answering the request (401/403).
using TenantOf = std::function<std::optional<std::string>(const httplib::Request&, httplib::Response&)>;

void RegisterWebhookRoutes(httplib::Server& server, NotifyStore& store, Clock& clock, TenantOf tenant_of);

}  // namespace faxflow::notify
