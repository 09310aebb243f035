#include "storage/blob_http.h"

#include <algorithm>
#include <mutex>
#include <utility>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <prometheus/counter.h>

#include "common/log.h"

namespace faxflow {
namespace {

constexpr char kBlobsPath[] = "/v1/blobs";
constexpr char kOctetStream[] = "application/octet-stream";

// ---------------------------------------------------------------------------------------------
// Shared helpers

// Compares without an early exit so the time taken does not reveal how much of a token matched.
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff = static_cast<unsigned char>(diff | (x ^ y));
  }
  return diff == 0;
}

std::string ErrorBody(const Status& s) {
  nlohmann::json j = {{"code", std::string(CodeName(s.code()))},
                      {"severity", std::string(SeverityName(s.severity()))},
                      {"message", s.message()}};
  return j.dump();
}

void SendError(httplib::Response& res, int http_status, const Status& s) {
  res.status = http_status;
  res.set_content(ErrorBody(s), "application/json");
}

// The HTTP status a store error is answered with. Retryable conditions (a busy or full store)
// become 503 so clients back off and retry; anything else the client cannot fix is 500.
int HttpStatusFor(const Status& s) {
  switch (s.code()) {
    case Code::kInvalidArgument: return 400;
    case Code::kNotFound: return 404;
    case Code::kUnauthenticated: return 401;
    default: return s.retryable() ? 503 : 500;
  }
}

std::string MethodLabel(const std::string& method) {
  if (method == "PUT" || method == "GET" || method == "HEAD") return method;
  return "other";
}

// The code label is the HTTP status when it is one the server emits, else a class ("4xx").
std::string CodeLabel(int status) {
  switch (status) {
    case 200: case 201: case 400: case 401: case 404: case 413: case 500: case 503:
      return std::to_string(status);
    default:
      return std::to_string(status / 100) + "xx";
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// BlobServer

BlobServerMetrics::BlobServerMetrics(MetricsRegistry& registry)
    : requests(prometheus::BuildCounter()
                   .Name("faxflow_blob_server_requests_total")
                   .Help("HTTP requests answered by the blob server, by method (PUT, GET, HEAD, other) and "
                         "status code.")
                   .Register(registry)) {}

BlobServer::BlobServer(BlobStore& store, BlobServerOptions options, MetricsRegistry* registry)
    : store_(store), options_(std::move(options)),
      metrics_(registry ? std::make_unique<BlobServerMetrics>(*registry) : nullptr),
      server_(std::make_unique<httplib::Server>()) {
  Routes();
}

BlobServer::~BlobServer() { Stop(); }

void BlobServer::Routes() {
  auto& srv = *server_;
  srv.set_payload_max_length(static_cast<size_t>(options_.max_body_bytes));
  srv.set_keep_alive_timeout(options_.keep_alive_timeout_seconds);
  srv.set_read_timeout(options_.read_timeout_seconds);
  srv.set_write_timeout(options_.write_timeout_seconds);
  // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs add ~40 ms to every small answer.
  srv.set_tcp_nodelay(true);
  const size_t threads = std::max<size_t>(options_.threads, 1);
  srv.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };

  // Authentication runs before the request body is read, so an unauthenticated client cannot
  // make the server buffer a large upload.
  srv.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    // Everything but the health check needs the token (default deny for any path).
    if (options_.token.empty() || req.path == "/healthz") return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) == 0 && ConstantTimeEquals(std::string_view(auth).substr(7), options_.token)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    res.set_header("WWW-Authenticate", "Bearer realm=\"faxflow-blobs\"");
    // The body (if any) is left unread, so this connection cannot carry another request.
    res.set_header("Connection", "close");
    SendError(res, 401,
              Status::Permanent(Code::kUnauthenticated,
                                auth.empty() ? "missing bearer token" : "wrong bearer token"));
    return httplib::Server::HandlerResponse::Handled;
  });

  srv.Put(kBlobsPath, [this](const httplib::Request& req, httplib::Response& res) {
    // 201 for content new to the store, 200 when it was already there (the Put only refreshed
    // its retention time). A concurrent Put of the same content may make both answer 201.
    auto existed = store_.Exists(BlobId(req.body));
    if (!existed.ok()) return SendError(res, HttpStatusFor(existed.status()), existed.status());
    auto id = store_.Put(req.body);
    if (!id.ok()) return SendError(res, HttpStatusFor(id.status()), id.status());
    res.status = *existed ? 200 : 201;
    res.set_content(nlohmann::json{{"id", *id}}.dump(), "application/json");
  });

  // httplib routes HEAD to the GET handlers and never sends a body for it; the handler answers
  // HEAD from Exists so the content is not read.
  srv.Get(R"(/v1/blobs/([^/]*))", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    if (!IsBlobId(id)) {
      return SendError(res, 400,
                       Status::Permanent(Code::kInvalidArgument, "a blob id is 64 lowercase hex characters"));
    }
    if (req.method == "HEAD") {
      auto exists = store_.Exists(id);
      if (!exists.ok()) return SendError(res, HttpStatusFor(exists.status()), exists.status());
      res.status = *exists ? 200 : 404;
      return;
    }
    auto content = store_.Get(id);
    if (!content.ok()) return SendError(res, HttpStatusFor(content.status()), content.status());
    res.status = 200;
    res.set_content(std::move(*content), kOctetStream);
  });

  srv.Get("/healthz", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok\n", "text/plain"); });

  srv.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    SendError(res, 500, Status::Fatal(Code::kInternal, "blob server: " + what));
  });
  srv.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty() || req.method == "HEAD") return;
    if (res.status == 413) {
      SendError(res, 413, Status::Permanent(Code::kResourceExhausted, "blob larger than the server's max body size"));
    } else if (res.status == 404) {
      SendError(res, 404, Status::Permanent(Code::kNotFound, "no such endpoint"));
    }
  });
  srv.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    if (metrics_) metrics_->requests.Add({{"method", MethodLabel(req.method)}, {"code", CodeLabel(res.status)}}).Increment();
  });
}

Status BlobServer::Start(const std::string& host, int port) {
  if (thread_.joinable()) return Status::Permanent(Code::kFailedPrecondition, "blob server already started");
  if (port == 0) {
    port_ = server_->bind_to_any_port(host);
    if (port_ < 0) return Status::Fatal(Code::kUnavailable, "blob server cannot bind " + host);
  } else {
    if (!server_->bind_to_port(host, port)) {
      return Status::Fatal(Code::kUnavailable, "blob server cannot listen on " + host + ":" + std::to_string(port) +
                                                   " (in use? set blob.listen)");
    }
    port_ = port;
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // Stop() only works once the accept loop runs, so wait for it (it starts within microseconds).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!server_->is_running()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return Status::Fatal(Code::kInternal, "blob server accept loop did not start");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  FF_LOG_INFO(Logger("blobs"), "blob server on http://{}:{}{}", host, port_,
              options_.token.empty() ? "" : " (bearer token required)");
  return Status::Ok();
}

void BlobServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

// ---------------------------------------------------------------------------------------------
// HttpBlobStore (client)

namespace {

// Splits http(s)://host[:port][/prefix] into the origin httplib wants and a path prefix.
// (Hand-parsed: std::regex trips GCC 12's -Wmaybe-uninitialized in sanitizer builds.)
Result<std::pair<std::string, std::string>> ParseBlobUrl(const std::string& url) {
  const Status bad = Status::Permanent(Code::kInvalidArgument,
                                       "blob.url must look like http://host:port[/prefix], got '" + url + "'");
  size_t scheme_end = 0;
  if (url.rfind("http://", 0) == 0) {
    scheme_end = 7;
  } else if (url.rfind("https://", 0) == 0) {
    scheme_end = 8;
  } else {
    return bad;
  }
  const size_t slash = url.find('/', scheme_end);
  const std::string authority = url.substr(scheme_end, slash == std::string::npos ? std::string::npos : slash - scheme_end);
  std::string prefix = slash == std::string::npos ? "" : url.substr(slash);
  if (authority.empty()) return bad;
  for (char c : url) {
    if (c == '?' || c == '#' || c == ' ' || c == '\t' || c == '\n' || c == '\r') return bad;
  }
  if (authority.find('@') != std::string::npos) return bad;  // no userinfo: use blob.token
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return std::make_pair(url.substr(0, scheme_end) + authority, prefix);
}

Code CodeFromName(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(Code::kInternal); ++i) {
    if (CodeName(static_cast<Code>(i)) == name) return static_cast<Code>(i);
  }
  return Code::kInternal;
}

// The server's error message (and code name) from its JSON error body, if it sent one.
std::pair<std::string, std::string> ServerError(const httplib::Response& res) {
  nlohmann::json j = nlohmann::json::parse(res.body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string()) {
    std::string code = j.contains("code") && j["code"].is_string() ? j["code"].get<std::string>() : "";
    return {code, j["message"].get<std::string>()};
  }
  return {"", res.body.substr(0, 200)};
}

// Maps an HTTP answer other than 200/201 to a typed status.
Status StatusFromHttp(std::string_view op, const httplib::Response& res) {
  auto [code_name, message] = ServerError(res);
  const std::string what = std::string(op) + ": blob server answered " + std::to_string(res.status) +
                           (message.empty() ? "" : ": " + message);
  switch (res.status) {
    case 400: return Status::Permanent(Code::kInvalidArgument, what);
    case 401: return Status::Permanent(Code::kUnauthenticated, what + " (check blob.token)");
    case 403: return Status::Permanent(Code::kPermissionDenied, what);
    case 404: return Status::Permanent(Code::kNotFound, what);
    case 413: return Status::Permanent(Code::kResourceExhausted, what);
    default: break;
  }
  if (res.status >= 500) {
    // Damaged content on the server is as fatal to the caller as damaged content locally: the
    // page cannot be produced again from this id. Any other server failure may clear (restart).
    if (CodeFromName(code_name) == Code::kCorruption) return Status::Fatal(Code::kCorruption, what);
    return Status::Retryable(Code::kUnavailable, what);
  }
  return Status::Permanent(Code::kInternal, what + " (unexpected; is blob.url a faxflow blob server?)");
}

bool RetryableHttpStatus(int status) { return status == 502 || status == 503 || status == 504; }

// BlobStore over HTTP. See OpenHttpBlobStore in blob_http.h for the contract.
// Lifecycle: built by OpenHttpBlobStore; destroying it closes the pooled connections.
// Threading: thread-safe; every call borrows an httplib::Client (not safe for concurrent use)
// from a mutex-guarded pool, or makes a new one when none is idle.
class HttpBlobStore final : public BlobStore {
 public:
  HttpBlobStore(HttpBlobStoreOptions options, std::string origin, std::string prefix)
      : options_(std::move(options)), origin_(std::move(origin)), prefix_(std::move(prefix)) {
    if (!options_.sleep) options_.sleep = [](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); };
  }

  Result<std::string> Put(std::string_view content) override {
    const std::string expected = BlobId(content);
    const std::string path = prefix_ + kBlobsPath;
    FF_ASSIGN_OR_RETURN(httplib::Response res, Call("put blob", /*with_body=*/true, [&](httplib::Client& c) {
      return c.Put(path.c_str(), content.data(), content.size(), kOctetStream);
    }));
    if (res.status != 200 && res.status != 201) return StatusFromHttp("put blob", res);
    nlohmann::json j = nlohmann::json::parse(res.body, nullptr, false);
    if (!j.is_object() || !j.contains("id") || !j["id"].is_string()) {
      return Status::Permanent(Code::kInternal, "put blob: blob server answer has no id: " + res.body.substr(0, 200));
    }
    std::string id = j["id"].get<std::string>();
    if (id != expected) {
      return Status::Fatal(Code::kCorruption,
                           "put blob: blob server returned id " + id.substr(0, 80) + " for content with BLAKE3 id " + expected);
    }
    return id;
  }

  Result<std::string> Get(std::string_view id) override {
    if (!IsBlobId(id)) return InvalidId(id);
    const std::string path = prefix_ + kBlobsPath + "/" + std::string(id);
    FF_ASSIGN_OR_RETURN(httplib::Response res,
                        Call("get blob", /*with_body=*/false, [&](httplib::Client& c) { return c.Get(path.c_str()); }));
    if (res.status != 200) return StatusFromHttp("get blob " + std::string(id), res);
    if (BlobId(res.body) != id) {
      return Status::Fatal(Code::kCorruption, "get blob " + std::string(id) + ": content from the blob server (" +
                                                  std::to_string(res.body.size()) + " bytes) does not match its id");
    }
    return std::move(res.body);
  }

  Result<bool> Exists(std::string_view id) override {
    if (!IsBlobId(id)) return InvalidId(id);
    const std::string path = prefix_ + kBlobsPath + "/" + std::string(id);
    FF_ASSIGN_OR_RETURN(httplib::Response res,
                        Call("blob exists", /*with_body=*/false, [&](httplib::Client& c) { return c.Head(path.c_str()); }));
    if (res.status == 200) return true;
    if (res.status == 404) return false;
    return StatusFromHttp("blob exists " + std::string(id), res);
  }

  Result<int64_t> CollectGarbage(int64_t, const std::function<bool(std::string_view)>&) override {
    return Status::Permanent(Code::kFailedPrecondition,
                             "this process uses a blob server (blob.url): run GC on the blob server");
  }

 private:
  static Status InvalidId(std::string_view id) {
    return Status::Permanent(Code::kInvalidArgument,
                             "malformed blob id '" + std::string(id.substr(0, 80)) + "' (64 lowercase hex characters)");
  }

  std::unique_ptr<httplib::Client> Acquire() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
    }
    auto c = std::make_unique<httplib::Client>(origin_);
    c->set_connection_timeout(std::chrono::milliseconds(options_.connect_timeout_ms));
    c->set_read_timeout(std::chrono::milliseconds(options_.io_timeout_ms));
    c->set_write_timeout(std::chrono::milliseconds(options_.io_timeout_ms));
    c->set_keep_alive(true);
    // Headers and body go out as separate writes; with Nagle's algorithm on, the body would
    // wait for the server's delayed ACK (~40 ms per Put).
    c->set_tcp_nodelay(true);
    if (!options_.token.empty()) c->set_bearer_token_auth(options_.token);
    return c;
  }

  void Release(std::unique_ptr<httplib::Client> c) {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < options_.max_idle_connections) idle_.push_back(std::move(c));
  }

  // Sends one request with bounded retries of transport errors and 502/503/504 (every request
  // of this protocol is idempotent). Returns the final HTTP answer, or kUnavailable.
  template <typename Send>
  Result<httplib::Response> Call(std::string_view op, bool with_body, Send&& send) {
    Status last;
    int64_t backoff_ms = std::max<int64_t>(options_.backoff_initial_ms, 0);
    const int tries = 1 + std::max(options_.retries, 0);
    for (int attempt = 1; attempt <= tries; ++attempt) {
      std::unique_ptr<httplib::Client> client = Acquire();
      httplib::Result r = send(*client);
      if (!r) {
        // The connection state is unknown after a transport error: do not reuse this client.
        last = Status::Retryable(Code::kUnavailable, std::string(op) + ": blob server " + origin_ +
                                                         " unreachable: " + httplib::to_string(r.error()));
      } else {
        // A server refusing an upload early (401, 413) may not have read the body; a fresh
        // connection for the next request is cheap insurance against a desynchronised stream.
        if (!(with_body && r->status >= 400)) Release(std::move(client));
        if (!RetryableHttpStatus(r->status)) return std::move(r.value());
        last = StatusFromHttp(op, r.value());
      }
      if (attempt < tries) {
        options_.sleep(std::chrono::milliseconds(backoff_ms));
        backoff_ms = std::min(backoff_ms * 2, options_.backoff_max_ms);
      }
    }
    return last.WithContext("after " + std::to_string(tries) + " tries");
  }

  HttpBlobStoreOptions options_;
  const std::string origin_;
  const std::string prefix_;
  std::mutex mu_;
  std::vector<std::unique_ptr<httplib::Client>> idle_;  // guarded by mu_
};

}  // namespace

Result<std::unique_ptr<BlobStore>> OpenHttpBlobStore(const HttpBlobStoreOptions& options) {
  FF_ASSIGN_OR_RETURN(auto parts, ParseBlobUrl(options.url));
  httplib::Client probe(parts.first);  // validates host/port syntax without connecting
  if (!probe.is_valid()) {
    return Status::Permanent(Code::kInvalidArgument, "blob.url '" + options.url + "' is not a usable URL");
  }
  if (options.retries < 0 || options.connect_timeout_ms <= 0 || options.io_timeout_ms <= 0) {
    return Status::Permanent(Code::kInvalidArgument, "blob client: retries must be >= 0 and timeouts > 0");
  }
  return std::unique_ptr<BlobStore>(std::make_unique<HttpBlobStore>(options, parts.first, parts.second));
}

Status PingBlobServer(const HttpBlobStoreOptions& options) {
  FF_ASSIGN_OR_RETURN(auto parts, ParseBlobUrl(options.url));
  httplib::Client c(parts.first);
  c.set_connection_timeout(std::chrono::milliseconds(options.connect_timeout_ms));
  c.set_read_timeout(std::chrono::milliseconds(options.io_timeout_ms));
  auto r = c.Get((parts.second + "/healthz").c_str());
  if (!r) {
    return Status::Retryable(Code::kUnavailable,
                             "blob server " + parts.first + " unreachable: " + httplib::to_string(r.error()));
  }
  if (r->status != 200) {
    return Status::Retryable(Code::kUnavailable,
                             "blob server " + parts.first + " /healthz answered " + std::to_string(r->status));
  }
  return Status::Ok();
}

}  // namespace faxflow
