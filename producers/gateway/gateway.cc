#include "producers/gateway/gateway.h"

#include <chrono>

#include <httplib.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>

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
        submissions(prometheus::BuildCounter()
                        .Name("faxflow_gateway_submissions_total")
                        .Help("Fax submissions by outcome: accepted or the API error code.")
                        .Register(r)),
        recipients(prometheus::BuildCounter()
                       .Name("faxflow_gateway_recipients_accepted_total")
                       .Help("Recipients accepted (one outbound job each).")
                       .Register(r)
                       .Add({})),
        latency(prometheus::BuildHistogram()
                    .Name("faxflow_gateway_request_seconds")
                    .Help("Time to answer an HTTP request, by route.")
                    .Register(r)) {}
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Counter>& submissions;
  prometheus::Counter& recipients;
  prometheus::Family<prometheus::Histogram>& latency;
};

namespace {

void SendJson(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(2) + "\n", "application/json");
}

// The fax's status, or nothing after answering 404 (unknown id) or 503 (store unavailable).
std::optional<v1::FaxStatus> FindFax(StatusStore& store, const std::string& id, httplib::Response& res) {
  auto s = store.Get(id);
  if (!s.ok()) {
    SendJson(res, 503, ErrorJson("status_unavailable", s.status().message()));
    return std::nullopt;
  }
  if (!s->has_value()) SendJson(res, 404, ErrorJson("not_found", "no fax with id '" + id + "'"));
  return std::move(*s);
}

Status ParseOptionsInto(const nlohmann::json& j, SubmitRequest& req) {
  auto& o = req.options;
  try {
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      if (k == "to") {
        if (it->is_array()) {
          for (const auto& n : *it) req.to.push_back(n.get<std::string>());
        } else {
          req.to.push_back(it->get<std::string>());
        }
      } else if (k == "resolution") {
        const auto v = it->get<std::string>();
        if (v == "fine") o.set_resolution(v1::RESOLUTION_FINE);
        else if (v == "normal" || v == "standard") o.set_resolution(v1::RESOLUTION_NORMAL);
        else return Status::Permanent(Code::kInvalidArgument, "resolution must be fine or normal");
      } else if (k == "paper") {
        const auto v = it->get<std::string>();
        if (v == "a4") o.set_paper(v1::PAPER_A4);
        else if (v == "letter") o.set_paper(v1::PAPER_LETTER);
        else return Status::Permanent(Code::kInvalidArgument, "paper must be a4 or letter");
      } else if (k == "header_text") {
        o.set_header_text(it->get<std::string>());
      } else if (k == "tsi") {
        o.set_tsi(it->get<std::string>());
      } else if (k == "priority") {
        o.set_priority(it->get<int>());
      } else if (k == "tags") {
        for (const auto& t : *it) o.add_tags(t.get<std::string>());
      } else {
        return Status::Permanent(Code::kInvalidArgument, "unknown option '" + k + "'");
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return Status::Permanent(Code::kInvalidArgument, std::string("options: wrong type: ") + e.what());
  }
  return Status::Ok();
}

}  // namespace

Result<std::pair<std::string, int>> ParseListen(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) return Status::Permanent(Code::kInvalidArgument, "listen address must be host:port, got '" + listen + "'");
  try {
    int port = std::stoi(listen.substr(colon + 1));
    if (port < 0 || port > 65535) throw std::out_of_range("port");
    return std::make_pair(listen.substr(0, colon), port);
  } catch (const std::exception&) {
    return Status::Permanent(Code::kInvalidArgument, "bad port in listen address '" + listen + "'");
  }
}

Gateway::Gateway(GatewayOptions options, SubmissionService& submissions, StatusStore& status, BlobStore& blobs,
                 prometheus::Registry& registry, std::function<Status()> ready)
    : options_(std::move(options)), submissions_(submissions), status_(status), blobs_(blobs), registry_(registry),
      ready_(std::move(ready)), metrics_(std::make_unique<Metrics>(registry)),
      server_(std::make_unique<httplib::Server>()) {
  Routes();
}

Gateway::~Gateway() { Stop(); }

void Gateway::Routes() {
  auto& srv = *server_;
  srv.set_payload_max_length(static_cast<size_t>(options_.max_body_bytes));

  srv.Post("/v1/faxes", [this](const httplib::Request& req, httplib::Response& res) {
    SubmitRequest sr;
    sr.source = "rest";
    if (!req.is_multipart_form_data()) {
      metrics_->submissions.Add({{"outcome", "unsupported_media_type"}}).Increment();
      SendJson(res, 415, ErrorJson("unsupported_media_type", "POST /v1/faxes takes multipart/form-data: fields 'file' (one or more documents), 'to' (one or more numbers), optional 'options' (JSON)"));
      return;
    }
    for (const auto& [name, part] : req.files) {
      if (name == "to") {
        // One number per field, or several separated by commas.
        std::string v = part.content;
        size_t start = 0;
        while (start <= v.size()) {
          size_t end = v.find(',', start);
          if (end == std::string::npos) end = v.size();
          std::string n = v.substr(start, end - start);
          while (!n.empty() && (n.front() == ' ')) n.erase(n.begin());
          while (!n.empty() && (n.back() == ' ' || n.back() == '\n' || n.back() == '\r')) n.pop_back();
          if (!n.empty()) sr.to.push_back(n);
          start = end + 1;
        }
      } else if (name == "options") {
        nlohmann::json j = nlohmann::json::parse(part.content, nullptr, false);
        if (j.is_discarded() || !j.is_object()) {
          SendJson(res, 400, ErrorJson("invalid_options", "'options' must be a JSON object", "options"));
          return;
        }
        Status s = ParseOptionsInto(j, sr);
        if (!s.ok()) {
          SendJson(res, 400, ErrorJson("invalid_option", s.message(), "options"));
          return;
        }
      } else if (name == "file" || name == "file[]" || !part.filename.empty()) {
        sr.documents.push_back({part.filename, part.content});
      } else {
        SendJson(res, 400, ErrorJson("unknown_field", "unknown form field '" + name + "'", name));
        return;
      }
    }
    SubmitOutcome out = submissions_.Submit(sr);
    if (!out.ok()) {
      metrics_->submissions.Add({{"outcome", out.error_code}}).Increment();
      SendJson(res, out.http_status, ErrorJson(out.error_code, out.message, out.field));
      return;
    }
    metrics_->submissions.Add({{"outcome", "accepted"}}).Increment();
    metrics_->recipients.Increment(static_cast<double>(out.submission.recipients_size()));
    res.set_header("Location", "/v1/faxes/" + out.submission.fax_id());
    SendJson(res, 202, AcceptedJson(out.submission));
  });

  srv.Get(R"(/v1/faxes/([A-Za-z0-9_]+))", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    auto fax = FindFax(status_, id, res);
    if (fax) SendJson(res, 200, FaxStatusJson(*fax));
  });

  srv.Get(R"(/v1/faxes/([A-Za-z0-9_]+)/pages/([0-9]{1,5}))", [this](const httplib::Request& req,
                                                                      httplib::Response& res) {
    const std::string id = req.matches[1];
    const int n = std::stoi(req.matches[2]);
    auto found = FindFax(status_, id, res);
    if (!found) return;
    const auto& fax = *found;
    if (n < 1 || n > fax.page_blob_ids_size()) {
      SendJson(res, 404, ErrorJson("not_found", "fax '" + id + "' has " + std::to_string(fax.page_blob_ids_size()) +
                                                    " rendered pages"));
      return;
    }
    auto page = blobs_.Get(fax.page_blob_ids(n - 1));
    if (!page.ok()) {
      SendJson(res, page.status().code() == Code::kNotFound ? 410 : 503,
               ErrorJson("page_unavailable", page.status().message()));
      return;
    }
    res.set_content(*page, "image/tiff");
  });

  srv.Get("/v1/faxes", [this](const httplib::Request& req, httplib::Response& res) {
    size_t limit = 50;
    if (req.has_param("limit")) {
      try {
        limit = static_cast<size_t>(std::clamp(std::stoi(req.get_param_value("limit")), 1, 500));
      } catch (const std::exception&) {
        SendJson(res, 400, ErrorJson("invalid_parameter", "limit must be a number", "limit"));
        return;
      }
    }
    auto list = status_.List("default", limit, req.get_param_value("after"));
    if (!list.ok()) {
      SendJson(res, 503, ErrorJson("status_unavailable", list.status().message()));
      return;
    }
    nlohmann::json j{{"faxes", nlohmann::json::array()}};
    for (const auto& f : *list) j["faxes"].push_back(FaxStatusJson(f));
    if (list->size() == limit) j["next"] = list->back().fax_id();
    SendJson(res, 200, j);
  });

  srv.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(SerializeMetrics(registry_), "text/plain; version=0.0.4");
  });
  srv.Get("/healthz", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok\n", "text/plain"); });
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
      SendJson(res, 413, ErrorJson("request_too_large", "the request body is larger than gateway.max_upload_bytes"));
    } else if (res.status == 404) {
      SendJson(res, 404, ErrorJson("not_found", "no such endpoint"));
    }
  });
  srv.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    std::string route = req.path;
    if (req.path.rfind("/v1/faxes/", 0) == 0)
      route = req.path.find("/pages/") != std::string::npos ? "/v1/faxes/{id}/pages/{n}" : "/v1/faxes/{id}";
    if (route != "/v1/faxes" && route != "/v1/faxes/{id}" && route != "/v1/faxes/{id}/pages/{n}" && route != "/metrics" && route != "/healthz" &&
        route != "/readyz")
      route = "other";
    metrics_->requests.Add({{"route", route}, {"method", req.method}, {"code", std::to_string(res.status / 100) + "xx"}})
        .Increment();
  });
}

Status Gateway::Start() {
  if (options_.port == 0) {
    port_ = server_->bind_to_any_port(options_.host);
    if (port_ < 0) return Status::Fatal(Code::kUnavailable, "gateway cannot bind " + options_.host);
  } else {
    if (!server_->bind_to_port(options_.host, options_.port))
      return Status::Fatal(Code::kUnavailable,
                           "gateway cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
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
