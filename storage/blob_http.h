// The blob store shared across processes: an HTTP blob server and the BlobStore client for it.
//
// In a distributed deployment each faxflow process (gateway, imaging, modem) has its own data dir,
// so a RocksBlobStore is private to one process. `faxflow blobs` runs a BlobServer over one
// RocksBlobStore; every other role sets `blob.url` and opens the store with OpenHttpBlobStore(),
// which implements the same BlobStore interface (blob_store.h) over HTTP.
//
// Wire protocol (docs/storage.md, "Shared blob server"):
//   PUT  /v1/blobs        body = content -> 201 (new) / 200 (already stored) {"id": "<blake3>"}
//   GET  /v1/blobs/{id}   -> 200 application/octet-stream | 404 absent | 400 malformed id
//   HEAD /v1/blobs/{id}   -> 200 | 404 | 400 (no body)
//   GET  /healthz         -> 200 "ok" (never needs the token)
// Errors carry a JSON body {"code": "<CodeName>", "severity": "...", "message": "..."}.
// With a token configured, every request but /healthz needs `Authorization: Bearer <token>`
// (401 otherwise).
//
// Both sides verify content addresses: the client checks the id the server returns for a Put and
// the BLAKE3 id of every body it gets, so neither a faulty server nor a damaged transfer can hand a
// worker the wrong page.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "common/metrics.h"
#include "common/status.h"
#include "storage/blob_store.h"

namespace httplib {
class Server;
}

namespace faxflow {

// Metrics of the blob server, declared in one place:
//   faxflow_blob_server_requests_total{method=PUT|GET|HEAD|other, code=<HTTP status>}
// Status codes the server emits are a small fixed set (200, 201, 400, 401, 404, 413, 500, 503).
struct BlobServerMetrics {
  explicit BlobServerMetrics(MetricsRegistry& registry);
  prometheus::Family<prometheus::Counter>& requests;
};

struct BlobServerOptions {
  std::string token;                        // empty: no authentication
  uint64_t max_body_bytes = 128ULL << 20;   // larger PUT bodies get 413
  int keep_alive_timeout_seconds = 2;       // idle keep-alive connections; also bounds Stop()
  int read_timeout_seconds = 30;            // per socket read of a request
  int write_timeout_seconds = 30;           // per socket write of a response
  // Connection threads. httplib holds one thread per open connection, idle keep-alive ones
  // included (until keep_alive_timeout_seconds), so size it for every client process's pool
  // (HttpBlobStoreOptions::max_idle_connections each) plus headroom.
  size_t threads = 32;
};

// BlobServer serves a BlobStore (normally a RocksBlobStore) over HTTP for the other processes of
// a deployment (the `faxflow blobs` role).
//
// Lifecycle: construct over a store that outlives it, Start(host, port) binds and starts the
// listener thread (port 0 picks a free port; port() tells which), Stop() (or the destructor)
// stops accepting, finishes in-flight requests and joins. Start may be called once.
// Threading: httplib answers each connection on its own pool thread; the store must be
// thread-safe (every BlobStore is). port() is safe from any thread after Start.
class BlobServer {
 public:
  // `registry` may be null (no metrics).
  BlobServer(BlobStore& store, BlobServerOptions options, MetricsRegistry* registry);
  ~BlobServer();
  BlobServer(const BlobServer&) = delete;
  BlobServer& operator=(const BlobServer&) = delete;

  // kUnavailable (fatal) when the address cannot be bound; returns once the server accepts.
  Status Start(const std::string& host, int port);
  void Stop();
  int port() const { return port_; }

 private:
  void Routes();

  BlobStore& store_;
  BlobServerOptions options_;
  std::unique_ptr<BlobServerMetrics> metrics_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = -1;
};

struct HttpBlobStoreOptions {
  // Base URL of the blob server: http(s)://host[:port][/path-prefix].
  std::string url = "http://127.0.0.1:9470";
  std::string token;                  // sent as `Authorization: Bearer <token>` when not empty
  int64_t connect_timeout_ms = 2000;
  int64_t io_timeout_ms = 30000;      // per socket read/write, not per whole transfer
  // Transport errors and 502/503/504 are retried this many times (after the first try) with
  // exponential backoff from backoff_initial_ms, capped at backoff_max_ms. 0 = no retry.
  int retries = 3;
  int64_t backoff_initial_ms = 100;
  int64_t backoff_max_ms = 2000;
  size_t max_idle_connections = 8;    // keep-alive connections kept for reuse
  // How the client waits between tries; default std::this_thread::sleep_for (tests inject).
  std::function<void(std::chrono::milliseconds)> sleep;
};

// Opens a BlobStore backed by a blob server. Does not contact the server (processes may start
// before it); the first call that cannot reach it returns kUnavailable (retryable).
// kInvalidArgument (permanent) for a malformed url.
//
// Error mapping of the returned store:
//   unreachable, timeouts, 502/503/504 after the retries -> kUnavailable (retryable)
//   404 -> kNotFound (permanent); 400 -> kInvalidArgument (permanent); 401 -> kUnauthenticated
//   (permanent); 413 -> kResourceExhausted (permanent); content or id not matching its BLAKE3 id
//   (from the server, or checked here) -> kCorruption (fatal); other 5xx -> kUnavailable.
// CollectGarbage -> kFailedPrecondition (permanent): run GC on the blob server's own store.
// Threading: thread-safe; each call borrows a connection from a small pool.
Result<std::unique_ptr<BlobStore>> OpenHttpBlobStore(const HttpBlobStoreOptions& options);

// GET /healthz of the server at options.url (one try, no retries): OK, or kUnavailable
// (retryable) with the reason. For readiness checks of roles that use a blob server.
Status PingBlobServer(const HttpBlobStoreOptions& options);

}  // namespace faxflow
