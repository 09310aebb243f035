// The REST gateway (docs/api.md, docs/openapi.yaml): the fax resources of faxes_api.h (submit,
// list, status, cancel, events, report, page previews, admin keys), the routes other components
// add through http_server(), plus GET /metrics (Prometheus text), /healthz and /readyz.
//
// Lifecycle: construct, Start() binds and serves on a background thread (port 0 picks a free
// port, see port()), Stop() stops accepting and joins. Threading: httplib serves requests on a
// thread pool; the SubmissionService and StatusStore it calls are thread-safe.
#pragma once

#include <prometheus/registry.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/status.h"
#include "producers/gateway/faxes_api.h"
#include "producers/gateway/submission_service.h"
#include "storage/status_store.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace faxflow {

struct GatewayOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port
  int64_t max_body_bytes = 52428800;
};

// Parses "host:port".
Result<std::pair<std::string, int>> ParseListen(const std::string& listen);

// Marks that the calling httplib thread starts routing a request: the gateway's request logger
// observes faxflow_gateway_request_seconds from this instant. The gateway's own pre-routing
// handler calls it; a component that replaces the pre-routing handler must call it first.
void MarkGatewayRequestStart();

class Gateway {
 public:
  // `ready` answers /readyz: OK when every dependency of the process is usable.
  Gateway(GatewayOptions options, SubmissionService& submissions, StatusStore& status, BlobStore& blobs,
          prometheus::Registry& registry, std::function<Status()> ready);
  // With tenants, API keys, idempotency, limits and control (faxes_api.h). The constructor above
  // is this one with ApiDeps{} (gateway.auth=none, no idempotency, no limits).
  Gateway(GatewayOptions options, SubmissionService& submissions, StatusStore& status, BlobStore& blobs,
          prometheus::Registry& registry, std::function<Status()> ready, ApiDeps api);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  Status Start();
  void Stop();
  int port() const { return port_; }
  // Other components (webhooks, broadcasts, owner routing) add their routes here before Start().
  httplib::Server& http_server() { return *server_; }
  // Authentication and per-tenant admission for routes registered by other components: answers
  // 401/429 itself and returns nothing when the request must stop; otherwise the caller's tenant.
  std::optional<CallContext> Admit(const httplib::Request& req, httplib::Response& res) {
    return api_->Admit(req, res);
  }
  // Owner routing (owner.h) in the admission step, after the body is read; before Start().
  void SetRouter(FaxesApi::Router router) { api_->SetRouter(std::move(router)); }

 private:
  struct Metrics;
  void Routes();

  GatewayOptions options_;
  SubmissionService& submissions_;
  StatusStore& status_;
  BlobStore& blobs_;
  prometheus::Registry& registry_;
  std::function<Status()> ready_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<httplib::Server> server_;
  std::unique_ptr<FaxesApi> api_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace faxflow
