// The REST gateway (docs/api.md): POST /v1/faxes (multipart upload), GET /v1/faxes/{id},
// GET /v1/faxes/{id}/pages/{n} (the rendered page as TIFF), GET /v1/faxes, plus GET /metrics (Prometheus text), /healthz and /readyz.
//
// Lifecycle: construct, Start() binds and serves on a background thread (port 0 picks a free
// port, see port()), Stop() stops accepting and joins. Threading: httplib serves requests on a
// thread pool; the SubmissionService and StatusStore it calls are thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <prometheus/registry.h>

#include "common/status.h"
#include "producers/gateway/submission_service.h"
#include "storage/status_store.h"

namespace httplib {
class Server;
}

namespace faxflow {

struct GatewayOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port
  int64_t max_body_bytes = 52428800;
};

// Parses "host:port".
Result<std::pair<std::string, int>> ParseListen(const std::string& listen);

class Gateway {
 public:
  // `ready` answers /readyz: OK when every dependency of the process is usable.
  Gateway(GatewayOptions options, SubmissionService& submissions, StatusStore& status, BlobStore& blobs,
          prometheus::Registry& registry, std::function<Status()> ready);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  Status Start();
  void Stop();
  int port() const { return port_; }

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
  std::thread thread_;
  int port_ = 0;
};

}  // namespace faxflow
