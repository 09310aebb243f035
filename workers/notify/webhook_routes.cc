#include "workers/notify/webhook_routes.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "common/ids.h"
#include "producers/ingest/url_fetcher.h"
#include "workers/notify/signature.h"

namespace faxflow::notify {
namespace {

using nlohmann::json;

void Send(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(2) + "\n", "application/json");
}
void Error(httplib::Response& res, int status, const std::string& code, const std::string& message) {
  Send(res, status, json{{"error", {{"code", code}, {"message", message}}}});
}

const std::vector<std::string>& KnownTypes() {
  static const std::vector<std::string> types = {
      "fax.queued",  "fax.rendered", "fax.attempt",   "fax.page",    "fax.delivered",
      "fax.partial", "fax.failed",   "fax.cancelled", "fax.expired", "broadcast.progress"};
  return types;
}

json Public(const Endpoint& e) {
  return {{"id", e.id},
          {"url", e.url},
          {"events", e.events},
          {"description", e.description},
          {"created_ms", e.created_ms}};
}

json LogJson(const std::vector<LogEntry>& log) {
  json a = json::array();
  for (const auto& l : log)
    a.push_back({{"webhook_id", l.delivery_id},
                 {"type", l.type},
                 {"event_id", l.event_id},
                 {"attempt", l.attempt},
                 {"at_ms", l.at_ms},
                 {"status", l.status},
                 {"error", l.error},
                 {"state", l.state}});
  return a;
}

}  // namespace

void RegisterWebhookRoutes(httplib::Server& srv, NotifyStore& store, Clock& clock, TenantOf tenant_of) {
  // Finds the caller's endpoint or answers 404.
  auto find = [&store](const std::string& tenant, const std::string& id,
                       httplib::Response& res) -> std::optional<Endpoint> {
    auto e = store.GetEndpoint(id);
    if (!e.ok()) {
      Error(res, 503, "store_unavailable", e.status().message());
      return std::nullopt;
    }
    if (!e->has_value() || (*e)->tenant != tenant) {
      Error(res, 404, "not_found", "no webhook endpoint with id '" + id + "'");
      return std::nullopt;
    }
    return **e;
  };

  srv.Post("/v1/webhooks/endpoints",
           [&store, &clock, tenant_of](const httplib::Request& req, httplib::Response& res) {
             auto tenant = tenant_of(req, res);
             if (!tenant) return;
             json j = json::parse(req.body, nullptr, false);
             if (j.is_discarded() || !j.is_object() || !j.contains("url") || !j["url"].is_string()) {
               Error(res, 400, "invalid_request", "body must be a JSON object with a string 'url'");
               return;
             }
             Endpoint e;
             e.url = j["url"];
             auto parts = ingest::ParseFetchableUrl(e.url);
             if (!parts.ok()) {
               Error(res, 422, "invalid_url", parts.status().message());
               return;
             }
             if (j.contains("events")) {
               if (!j["events"].is_array()) {
                 Error(res, 400, "invalid_request", "'events' must be an array of event types");
                 return;
               }
               for (const auto& t : j["events"]) {
                 if (!t.is_string()) {
                   Error(res, 400, "invalid_request", "'events' must be an array of event types");
                   return;
                 }
                 std::string type = t;
                 bool known = type == "*";
                 for (const auto& k : KnownTypes()) known = known || k == type || k == "fax." + type;
                 if (!known) {
                   Error(res, 422, "invalid_event_type", "unknown event type '" + type + "'");
                   return;
                 }
                 e.events.push_back(type);
               }
             }
             if (e.events.empty()) e.events.push_back("*");
             e.description = j.value("description", "");
             e.tenant = *tenant;
             e.created_ms = clock.NowMillis();
             e.id = NewId("whe", e.created_ms);
             e.secrets.push_back({NewSecret(), 0});
             Status s = store.PutEndpoint(e);
             if (!s.ok()) {
               Error(res, 503, "store_unavailable", s.message());
               return;
             }
             json out = Public(e);
             out["secret"] = e.secrets[0].value;
             res.set_header("Location", "/v1/webhooks/endpoints/" + e.id);
             Send(res, 201, out);
           });

  srv.Get("/v1/webhooks/endpoints", [&store, tenant_of](const httplib::Request& req, httplib::Response& res) {
    auto tenant = tenant_of(req, res);
    if (!tenant) return;
    auto list = store.ListEndpoints(*tenant);
    if (!list.ok()) {
      Error(res, 503, "store_unavailable", list.status().message());
      return;
    }
    json a = json::array();
    for (const auto& e : *list) a.push_back(Public(e));
    Send(res, 200, json{{"endpoints", a}});
  });

  srv.Get(R"(/v1/webhooks/endpoints/([A-Za-z0-9_]+))", [&store, find, tenant_of](const httplib::Request& req,
                                                                                 httplib::Response& res) {
    auto tenant = tenant_of(req, res);
    if (!tenant) return;
    auto e = find(*tenant, req.matches[1], res);
    if (!e) return;
    size_t limit = 100;
    if (req.has_param("limit"))
      limit = static_cast<size_t>(std::clamp(std::atoi(req.get_param_value("limit").c_str()), 1, 1000));
    auto log = store.Log("ep:" + e->id, limit);
    if (!log.ok()) {
      Error(res, 503, "store_unavailable", log.status().message());
      return;
    }
    json out = Public(*e);
    out["deliveries"] = LogJson(*log);
    Send(res, 200, out);
  });

  srv.Delete(R"(/v1/webhooks/endpoints/([A-Za-z0-9_]+))",
             [&store, find, tenant_of](const httplib::Request& req, httplib::Response& res) {
               auto tenant = tenant_of(req, res);
               if (!tenant) return;
               auto e = find(*tenant, req.matches[1], res);
               if (!e) return;
               Status s = store.DeleteEndpoint(e->id);
               if (!s.ok()) {
                 Error(res, 503, "store_unavailable", s.message());
                 return;
               }
               res.status = 204;
             });

  srv.Post(R"(/v1/webhooks/endpoints/([A-Za-z0-9_]+)/rotate)",
           [&store, &clock, find, tenant_of](const httplib::Request& req, httplib::Response& res) {
             auto tenant = tenant_of(req, res);
             if (!tenant) return;
             auto e = find(*tenant, req.matches[1], res);
             if (!e) return;
             const int64_t now = clock.NowMillis();
             std::vector<Secret> kept;
             for (auto s : e->secrets) {
               if (s.expires_ms != 0 && s.expires_ms <= now) continue;
               if (s.expires_ms == 0) s.expires_ms = now + 24LL * 3600 * 1000;
               kept.push_back(s);
             }
             if (kept.size() > 1) kept.erase(kept.begin(), kept.end() - 1);  // at most two secrets: old + new
             kept.push_back({NewSecret(), 0});
             e->secrets = kept;
             Status s = store.PutEndpoint(*e);
             if (!s.ok()) {
               Error(res, 503, "store_unavailable", s.message());
               return;
             }
             json out = Public(*e);
             out["secret"] = kept.back().value;
             out["previous_secret_expires_ms"] = kept.size() > 1 ? kept.front().expires_ms : 0;
             Send(res, 200, out);
           });

  srv.Get("/v1/webhooks/callback-secret",
          [&store, &clock, tenant_of](const httplib::Request& req, httplib::Response& res) {
            auto tenant = tenant_of(req, res);
            if (!tenant) return;
            auto s = store.TenantSecrets(*tenant, clock.NowMillis());
            if (!s.ok()) {
              Error(res, 503, "store_unavailable", s.status().message());
              return;
            }
            json a = json::array();
            for (const auto& x : *s) a.push_back({{"secret", x.value}, {"expires_ms", x.expires_ms}});
            Send(res, 200, json{{"secrets", a}});
          });

  srv.Post("/v1/webhooks/callback-secret/rotate",
           [&store, &clock, tenant_of](const httplib::Request& req, httplib::Response& res) {
             auto tenant = tenant_of(req, res);
             if (!tenant) return;
             const int64_t now = clock.NowMillis();
             auto cur = store.TenantSecrets(*tenant, now);
             if (!cur.ok()) {
               Error(res, 503, "store_unavailable", cur.status().message());
               return;
             }
             std::vector<Secret> next;
             for (auto s : *cur)
               if (s.expires_ms == 0) next.push_back({s.value, now + 24LL * 3600 * 1000});
             next.push_back({NewSecret(), 0});
             Status st = store.PutTenantSecrets(*tenant, next);
             if (!st.ok()) {
               Error(res, 503, "store_unavailable", st.message());
               return;
             }
             Send(res, 200, json{{"secret", next.back().value}});
           });

  srv.Get(R"(/v1/webhooks/callbacks/([A-Za-z0-9_]+))",
          [&store, tenant_of](const httplib::Request& req, httplib::Response& res) {
            auto tenant = tenant_of(req, res);
            if (!tenant) return;
            const std::string fax_id = req.matches[1];
            auto cb = store.GetCallback(fax_id);
            if (!cb.ok()) {
              Error(res, 503, "store_unavailable", cb.status().message());
              return;
            }
            if (!cb->has_value() || (*cb)->second != *tenant) {
              Error(res, 404, "not_found", "no callback_url deliveries for fax '" + fax_id + "'");
              return;
            }
            auto log = store.Log("cb:" + fax_id, 200);
            if (!log.ok()) {
              Error(res, 503, "store_unavailable", log.status().message());
              return;
            }
            Send(res, 200, json{{"fax_id", fax_id}, {"url", (*cb)->first}, {"deliveries", LogJson(*log)}});
          });
}

}  // namespace faxflow::notify
