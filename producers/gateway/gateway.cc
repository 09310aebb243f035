#include "producers/gateway/gateway.h"

#include <httplib.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include <chrono>
#include <cstring>

#include "common/log.h"
#include "common/metrics.h"
#include "producers/gateway/api_json.h"

namespace faxflow {

struct Gateway::Metrics {
  explicit Metrics(prometheus::Registry& r)
      : requests(prometheus::BuildCounter()
                     .Name("faxflow_gateway_requests_total")
                     .Help("HTTP requests answered by the gateway, by route and status code class.")
                     .Register(r)),
        latency(prometheus::BuildHistogram()
                    .Name("faxflow_gateway_request_seconds")
                    .Help("Time to answer an HTTP request (from routing to the response written), by route "
                          "template, method and status code class.")
                    .Register(r)) {}
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Histogram>& latency;
};

namespace {

// When this thread started routing the request it is answering (for
// faxflow_gateway_request_seconds); stamped by MarkGatewayRequestStart(), cleared when observed.
thread_local std::chrono::steady_clock::time_point g_request_start{};

void SendJson(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(2) + "\n", "application/json");
}

}  // namespace

void MarkGatewayRequestStart() { g_request_start = std::chrono::steady_clock::now(); }

Result<std::pair<std::string, int>> ParseListen(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos)
    return Status::Permanent(Code::kInvalidArgument,
                             "listen address must be host:port, got '" + listen + "'");
  try {
    int port = std::stoi(listen.substr(colon + 1));
    if (port < 0 || port > 65535) throw std::out_of_range("port");
    return std::make_pair(listen.substr(0, colon), port);
  } catch (const std::exception&) {
    return Status::Permanent(Code::kInvalidArgument, "bad port in listen address '" + listen + "'");
  }
}

Gateway::Gateway(GatewayOptions options, SubmissionService& submissions, StatusStore& status,
                 BlobStore& blobs, prometheus::Registry& registry, std::function<Status()> ready)
    : Gateway(std::move(options), submissions, status, blobs, registry, std::move(ready), ApiDeps{}) {}

Gateway::Gateway(GatewayOptions options, SubmissionService& submissions, StatusStore& status,
                 BlobStore& blobs, prometheus::Registry& registry, std::function<Status()> ready, ApiDeps api)
    : options_(std::move(options)),
      submissions_(submissions),
      status_(status),
      blobs_(blobs),
      registry_(registry),
      ready_(std::move(ready)),
      metrics_(std::make_unique<Metrics>(registry)),
      server_(std::make_unique<httplib::Server>()),
      api_(std::make_unique<FaxesApi>(std::move(api), submissions, status, blobs, registry)) {
  Routes();
}

Gateway::~Gateway() { Stop(); }

void Gateway::Routes() {
  auto& srv = *server_;
  srv.set_payload_max_length(static_cast<size_t>(options_.max_body_bytes));
  // Requests mostly wait on the bus (a produce is acknowledged when durable): more threads than
  // cores keep many clients served at once.
  srv.new_task_queue = [] { return new httplib::ThreadPool(32); };
  // Answers are written as headers + body: without TCP_NODELAY the body waits for the client's
  // delayed ACK (~40 ms per request on Linux), which capped a keep-alive client at ~25 req/s.
  srv.set_tcp_nodelay(true);
  // httplib closes a keep-alive connection after 5 requests by default; with its listen backlog
  // of 5, reconnect bursts of many clients lose SYNs and wait 1 s for the retransmission.
  srv.set_keep_alive_max_count(1000);

  api_->Register(srv);
  // Stamps the start of every request (a handler installed later, e.g. owner routing's, calls
  // MarkGatewayRequestStart() itself).
  srv.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
    MarkGatewayRequestStart();
    return httplib::Server::HandlerResponse::Unhandled;
  });

  srv.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(SerializeMetrics(registry_), "text/plain; version=0.0.4");
  });
  srv.Get("/healthz",
          [](const httplib::Request&, httplib::Response& res) { res.set_content("ok\n", "text/plain"); });
  srv.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    Status s = ready_ ? ready_() : Status::Ok();
    res.status = s.ok() ? 200 : 503;
    res.set_content(s.ok() ? "ready\n" : s.ToString() + "\n", "text/plain");
  });

  srv.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    SendJson(res, 500, ErrorJson("internal", what));
  });
  srv.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413) {
      SendJson(res, 413,
               ErrorJson("request_too_large", "the request body is larger than gateway.max_upload_bytes"));
    } else if (res.status == 404) {
      SendJson(res, 404, ErrorJson("not_found", "no such endpoint"));
    }
  });
  srv.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    // Bounded route label: ids are replaced by placeholders, unknown paths are "other".
    std::string route = "other";
    const std::string& p = req.path;
    if (p == "/v1/faxes" || p == "/metrics" || p == "/healthz" || p == "/readyz" || p == "/v1/admin/keys") {
      route = p;
    } else if (p.rfind("/v1/faxes/", 0) == 0) {
      route = "/v1/faxes/{id}";
      for (const char* sub : {"/cancel", "/events", "/report"})
        if (p.size() > std::strlen(sub) &&
            p.compare(p.size() - std::strlen(sub), std::string::npos, sub) == 0)
          route += sub;
      if (p.find("/pages/") != std::string::npos) route = "/v1/faxes/{id}/pages/{n}";
    } else if (p.rfind("/v1/admin/keys/", 0) == 0) {
      route = "/v1/admin/keys/{id}";
    } else if (p.rfind("/v1/", 0) == 0) {
      const auto slash = p.find('/', 4);
      route = slash == std::string::npos ? p.substr(0, 40) : p.substr(0, std::min<size_t>(slash, 40)) + "/*";
      if (res.status == 404) route = "other";  // unknown endpoints must not grow the label set
    }
    std::string method = req.method;
    if (method != "GET" && method != "POST" && method != "PUT" && method != "DELETE" && method != "PATCH" &&
        method != "HEAD")
      method = "other";
    const std::string code = std::to_string(res.status / 100) + "xx";
    metrics_->requests.Add({{"route", route}, {"method", method}, {"code", code}}).Increment();
    if (g_request_start != std::chrono::steady_clock::time_point{}) {
      const std::chrono::duration<double> took = std::chrono::steady_clock::now() - g_request_start;
      g_request_start = {};
      metrics_->latency.Add({{"route", route}, {"method", method}, {"code", code}}, LatencyBucketsSeconds())
          .Observe(took.count());
    }
  });
}

Status Gateway::Start() {
  if (options_.port == 0) {
    port_ = server_->bind_to_any_port(options_.host);
    if (port_ < 0) return Status::Fatal(Code::kUnavailable, "gateway cannot bind " + options_.host);
  } else {
    if (!server_->bind_to_port(options_.host, options_.port))
      return Status::Fatal(Code::kUnavailable, "gateway cannot listen on " + options_.host + ":" +
                                                   std::to_string(options_.port) +
                                                   " (in use? set gateway.listen)");
    port_ = options_.port;
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  FF_LOG_INFO(Logger("gateway"), "REST API on http://{}:{}", options_.host, port_);
  return Status::Ok();
}

void Gateway::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace faxflow
