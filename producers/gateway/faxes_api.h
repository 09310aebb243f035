// The fax resources of the REST API v1 (docs/api.md, docs/openapi.yaml):
//   POST /v1/faxes                      submit (JSON or multipart), Idempotency-Key
//   GET  /v1/faxes                      list: state, tag, since/until, cursor pagination
//   GET  /v1/faxes/{id}                 status per recipient
//   POST /v1/faxes/{id}/cancel          cancel (fax.control + status of not-yet-dialled recipients)
//   GET  /v1/faxes/{id}/events          the event history
//   GET  /v1/faxes/{id}/report          the transmission report
//   GET  /v1/faxes/{id}/pages/{n}       page preview (PNG; ?format=tiff for the fax page itself);
//                                       with broadcast covers: the pages every recipient shares
//   GET  /v1/faxes/{id}/recipients/{rid}/pages/{n}   one recipient's pages as sent: its own
//                                       cover page first (broadcast covers), then the shared pages
//   POST/GET /v1/admin/keys, DELETE /v1/admin/keys/{key_id}   API keys (admin token)
// Every /v1 request other than /v1/admin is authenticated (gateway.auth=keys: an API key as
// `Authorization: Bearer ffk_...`), scoped to the key's tenant (another tenant's fax answers 404
// exactly like an unknown id), and admitted by the tenant's rate and concurrency limits (429 with
// Retry-After).
//
// Threading: handlers run on httplib's pool; every dependency is thread-safe.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/clock.h"
#include "producers/gateway/api_keys.h"
#include "producers/gateway/idempotency.h"
#include "producers/gateway/pricing.h"
#include "producers/gateway/rate_limit.h"
#include "producers/gateway/submission_service.h"
#include "storage/blob_store.h"
#include "storage/status_store.h"
#include "topics/bus.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace faxflow {

// What the API needs beyond the submission service and stores. Null members switch features
// off: no `keys` requires auth == "none"; no `idempotency` ignores Idempotency-Key; no
// `limiter` admits everything; no `producer` answers cancel with 503; no `fetch_url` refuses
// content_url.
struct ApiDeps {
  std::string auth = "none";  // "keys" or "none" (every caller is tenant "default")
  std::string admin_token;    // Bearer token of /v1/admin/*; empty: admin API off (404)
  ApiKeyStore* keys = nullptr;
  IdempotencyStore* idempotency = nullptr;
  TenantLimiter* limiter = nullptr;
  bus::Producer* producer = nullptr;
  // Fetches a client's content_url through the SSRF guard (producers/ingest UrlFetcher).
  std::function<Result<std::string>(const std::string& url)> fetch_url;
  Clock* clock = nullptr;  // default: the system clock
  // Prices of the cost shown by GET /v1/faxes/{id} (pricing.h); null or empty: no cost shown.
  const PriceList* prices = nullptr;
};

struct ApiMetrics {
  explicit ApiMetrics(prometheus::Registry& r);
  prometheus::Family<prometheus::Counter>& auth_failures;
  prometheus::Family<prometheus::Counter>& limited;
  prometheus::Family<prometheus::Counter>& idempotency;
  prometheus::Counter& cancels;
  prometheus::Family<prometheus::Counter>& submissions;
  prometheus::Counter& recipients;
};

// A request that passed authentication and admission; holds the concurrency permit.
struct CallContext {
  Caller caller;
  bool all_tenants = false;  // gateway.auth=none: reads by id are not tenant-checked
  std::optional<TenantLimiter::Permit> permit;
};

class FaxesApi {
 public:
  FaxesApi(ApiDeps deps, SubmissionService& submissions, StatusStore& status, BlobStore& blobs,
           prometheus::Registry& registry);
  void Register(httplib::Server& server);

  // Authentication + admission for any /v1 route (also for routes other files register):
  // answers 401/429 itself and returns nothing when the request must stop.
  std::optional<CallContext> Admit(const httplib::Request& req, httplib::Response& res);
  // Authentication only (answers 401 itself), without the per-tenant limits: the owner-routing
  // step uses it, so a request is admitted (counted) once, by the node that serves it.
  std::optional<CallContext> Authenticate(const httplib::Request& req, httplib::Response& res);

  // Owner routing (owner.h): called by Admit after authentication and before the per-tenant
  // limits; true when it answered the request (redirected or proxied to another node). Set before
  // the server starts.
  using Router = std::function<bool(const httplib::Request&, httplib::Response&, const std::string& tenant)>;
  void SetRouter(Router router) { router_ = std::move(router); }

 private:
  void Submit(const httplib::Request& req, httplib::Response& res);
  void List(const httplib::Request& req, httplib::Response& res);
  void Get(const httplib::Request& req, httplib::Response& res);
  // Adds "cost" to each priced recipient of `j` (FaxStatusJson) and the fax's total; false when
  // the events could not be read (answered 503).
  bool AddCost(const v1::FaxStatus& fax, nlohmann::json& j, httplib::Response& res);
  void Cancel(const httplib::Request& req, httplib::Response& res);
  void Events(const httplib::Request& req, httplib::Response& res);
  void Report(const httplib::Request& req, httplib::Response& res);
  void Page(const httplib::Request& req, httplib::Response& res);
  void RecipientPage(const httplib::Request& req, httplib::Response& res);
  // Answers the page `blob_id` as PNG, or as the TIFF itself (?format=tiff / Accept: image/tiff).
  void SendPage(const httplib::Request& req, httplib::Response& res, const std::string& blob_id);
  void AdminKeys(const httplib::Request& req, httplib::Response& res);
  bool AdminAllowed(const httplib::Request& req, httplib::Response& res);
  // The fax if it exists and belongs to the caller; otherwise answers 404/503.
  std::optional<v1::FaxStatus> OwnFax(const CallContext& ctx, const std::string& id, httplib::Response& res);
  // The fax's delivery events; otherwise answers 503 status_unavailable.
  std::optional<std::vector<v1::DeliveryEvent>> FaxEvents(const std::string& fax_id, httplib::Response& res);

  ApiDeps deps_;
  Router router_;
  SubmissionService& submissions_;
  StatusStore& status_;
  BlobStore& blobs_;
  Clock& clock_;
  ApiMetrics metrics_;
};

}  // namespace faxflow
