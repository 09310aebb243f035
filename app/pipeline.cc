#include "app/pipeline.h"

#include <atomic>
#include <filesystem>

#include <httplib.h>

#include "common/log.h"
#include "common/metrics.h"
#include "monitoring/books_monitor.h"
#include "monitoring/health.h"
#include "producers/gateway/gateway.h"
#include "producers/ingest/ingest_worker.h"
#include "producers/ingest/url_fetcher.h"
#include "producers/gateway/broadcast.h"
#include "producers/gateway/broadcast_replica.h"
#include "producers/gateway/owner.h"
#include "workers/notify/notifier.h"
#include "workers/notify/replica.h"
#include "workers/notify/webhook_routes.h"
#include "producers/gateway/submission_service.h"
#include "storage/blob_http.h"
#include "storage/blob_store.h"
#include "storage/dedup_store.h"
#include "storage/metrics.h"
#include "storage/rocks_blob_store.h"
#include "storage/rocks_dedup_store.h"
#include "topics/catalogue.h"
#include "topics/claims/claims.h"
#include "topics/embedded/embedded_bus.h"
#include "topics/kafka/kafka_bus.h"
#include "topics/lag_monitor.h"
#include "workers/imaging/imaging_worker.h"
#include "workers/imaging/sniff.h"
#include "workers/modem/modem_worker.h"
#include "workers/modem/t38_line.h"
#include "workers/status/status_worker.h"

namespace faxflow {

// /metrics, /healthz, /readyz for processes without the gateway.
class AdminServer {
 public:
  AdminServer(prometheus::Registry& registry, std::function<Status()> ready) : registry_(registry), ready_(std::move(ready)) {
    server_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(SerializeMetrics(registry_), "text/plain; version=0.0.4");
    });
    server_.Get("/healthz", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok\n", "text/plain"); });
    server_.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
      Status s = ready_();
      res.status = s.ok() ? 200 : 503;
      res.set_content(s.ok() ? "ready\n" : s.ToString() + "\n", "text/plain");
    });
  }
  ~AdminServer() { Stop(); }
  Status Start(const std::string& host, int port) {
    port_ = port == 0 ? server_.bind_to_any_port(host) : (server_.bind_to_port(host, port) ? port : -1);
    if (port_ < 0) return Status::Fatal(Code::kUnavailable, "admin server cannot listen on " + host + ":" + std::to_string(port));
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    return Status::Ok();
  }
  void Stop() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return port_; }

 private:
  prometheus::Registry& registry_;
  std::function<Status()> ready_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = -1;
};

struct Pipeline::Parts {
  Config config;
  Roles roles;
  Clock* clock = nullptr;
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  // Blob store and dial ledger metrics (storage/metrics.h); outlives the stores below.
  std::unique_ptr<StorageMetrics> storage_metrics = std::make_unique<StorageMetrics>(*registry);
  // Destruction runs bottom-up: servers and workers first, then stores, then the bus.
  std::unique_ptr<bus::Bus> bus;
  std::unique_ptr<BlobStore> blobs;
  std::unique_ptr<StatusStore> status;
  std::unique_ptr<DedupStore> dedup;
  std::unique_ptr<modem::LineDriver> line;
  std::unique_ptr<bus::Producer> producer;
  // The gateway's read-only view of fax.members (partition preference); outlives `submissions`.
  std::unique_ptr<claims::ClaimsMember> members_view;
  std::unique_ptr<SubmissionService> submissions;
  std::unique_ptr<ingest::UrlFetcher> fetcher;
  std::unique_ptr<ingest::IngestWorker> ingest;
  std::unique_ptr<notify::NotifyStore> notify_store;   // webhooks (workers/notify)
  std::unique_ptr<ingest::UrlFetcher> webhook_fetcher;
  std::unique_ptr<notify::Notifier> notifier;
  std::unique_ptr<notify::WebhookReplica> webhook_replica;  // fax.webhooks <-> notify_store
  // Several gateway nodes: broadcasts shared through fax.broadcasts (outlives `broadcasts`, which
  // writes status through it); `owner_ready` is set once `owner` runs (the broadcast driver asks it).
  std::unique_ptr<BroadcastReplica> broadcast_replica;
  std::atomic<OwnerDirectory*> owner_ready{nullptr};
  std::unique_ptr<BroadcastService> broadcasts;  // POST /v1/broadcasts (producers/gateway/broadcast.h)
  std::unique_ptr<OwnerDirectory> owner;         // tenant ownership across gateway nodes (seed 001)
  std::unique_ptr<bus::LagMonitor> lag;
  std::unique_ptr<StatusWorker> status_worker;
  std::unique_ptr<imaging::ImagingWorker> imaging;
  // Load-weighted claims of this imaging worker (destroyed before `imaging`, which it drives).
  std::unique_ptr<claims::ClaimsMember> claims;
  std::unique_ptr<modem::ModemWorker> modem;
  // REST API v1: tenants/keys, idempotency, limits, content_url fetching (before `gateway`,
  // which uses them, so they are destroyed after it).
  std::unique_ptr<ApiKeyStore> api_keys;
  std::unique_ptr<IdempotencyStore> idempotency;
  std::unique_ptr<TenantLimiter> limiter;
  std::unique_ptr<PriceList> prices;  // cost in GET /v1/faxes/{id} (producers/gateway/pricing.h)
  std::unique_ptr<ingest::UrlFetcher> content_fetcher;
  std::unique_ptr<Gateway> gateway;
  std::unique_ptr<BlobServer> blob_server;
  std::unique_ptr<AdminServer> admin;
  // Declared last so they stop first: their threads call into the parts above.
  std::unique_ptr<monitoring::BooksMonitor> books;
  std::unique_ptr<monitoring::Health> health;

  // /readyz: every readiness check of `health` (which includes CoreReady as "pipeline").
  Status Ready() const { return health ? health->Ready() : CoreReady(); }

  // Every catalogue topic exists on the bus.
  Status TopicsPresent() const {
    if (!bus) return Status::Ok();
    for (const auto& spec : bus::Catalogue()) {
      auto n = bus->PartitionCount(spec.name);
      if (!n.ok()) return n.status().WithContext("topic " + spec.name);
    }
    return Status::Ok();
  }

  Status CoreReady() const {
    if (imaging) FF_RETURN_IF_ERROR(imaging->status());
    if (bus) {
      FF_ASSIGN_OR_RETURN(auto n, bus->PartitionCount(std::string(bus::topic::kJobs)));
      (void)n;
    }
    if (!config.blob_url.empty()) {
      HttpBlobStoreOptions o;
      o.url = config.blob_url;
      o.token = config.blob_token;
      FF_RETURN_IF_ERROR(PingBlobServer(o).WithContext("blob server"));
    }
    return Status::Ok();
  }

  bool stopped = false;

  void Stop() {
    if (stopped) return;
    stopped = true;
    auto log = Logger("app");
    if (health) health->Stop();
    if (books) books->Stop();
    if (gateway) gateway->Stop();      // stop accepting first
    if (notifier) notifier->Stop();
    if (broadcasts) broadcasts->Stop();
    if (broadcast_replica) broadcast_replica->Stop();
    if (owner) owner->Stop();
    if (ingest) ingest->Stop();
    if (imaging) imaging->Stop();
    if (claims) claims->Stop();  // tombstone: the others take our partitions at once
    if (members_view) members_view->Stop();
    if (modem) modem->Stop();
    if (status_worker) status_worker->Stop();
    if (lag) lag->Stop();
    if (blob_server) blob_server->Stop();
    if (admin) admin->Stop();
    FF_LOG_INFO(log, "stopped");
  }
};

Result<std::unique_ptr<bus::Bus>> OpenConfiguredBus(const Config& config, prometheus::Registry* registry) {
  if (config.bus_backend == "kafka") {
    bus::KafkaBusOptions o;
    o.bootstrap = config.kafka_bootstrap;
    o.properties = config.kafka_properties;
    o.metrics = registry;
    return bus::OpenKafkaBus(o);
  }
  std::filesystem::create_directories(config.data_dir + "/bus");
  FF_ASSIGN_OR_RETURN(auto b, bus::EmbeddedBus::Open(config.data_dir + "/bus"));
  return std::unique_ptr<bus::Bus>(std::move(b));
}

// The tenant of a request for routes registered outside the gateway (webhooks, broadcasts): the
// gateway's API-key authentication and per-tenant admission (401/429 answered by it).
static std::function<std::optional<std::string>(const httplib::Request&, httplib::Response&)> RequestTenantOf(
    Gateway& gateway) {
  return [&gateway](const httplib::Request& req, httplib::Response& res) -> std::optional<std::string> {
    auto ctx = gateway.Admit(req, res);
    if (!ctx) return std::nullopt;
    return ctx->caller.tenant;
  };
}

Pipeline::Pipeline(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

Pipeline::~Pipeline() { Stop(); }

void Pipeline::Stop() {
  if (parts_) parts_->Stop();
}

int Pipeline::http_port() const {
  if (parts_->gateway) return parts_->gateway->port();
  return parts_->admin ? parts_->admin->port() : -1;
}
StatusStore* Pipeline::status_store() const { return parts_->status.get(); }
BlobStore& Pipeline::blobs() const { return *parts_->blobs; }
prometheus::Registry& Pipeline::registry() const { return *parts_->registry; }
bus::Bus& Pipeline::bus() const { return *parts_->bus; }
Status Pipeline::Ready() const { return parts_->Ready(); }
monitoring::Health& Pipeline::health() const { return *parts_->health; }

Result<std::unique_ptr<Pipeline>> Pipeline::Start(const Config& config, Roles roles, Clock& clock) {
  auto log = Logger("app");
  auto p = std::make_unique<Parts>();
  p->config = config;
  p->roles = roles;
  p->clock = &clock;
  const std::string& dir = config.data_dir;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::Fatal(Code::kIoError, "cannot create data_dir " + dir + ": " + ec.message());
  p->health = std::make_unique<monitoring::Health>(*p->registry, clock);
  p->health->SetStallThreshold(
      std::chrono::milliseconds(static_cast<int64_t>(config.health_stall_seconds * 1000)));
  Heartbeats* beats = p->health.get();  // every worker loop beats into it (common/heartbeat.h)

  if (config.blob_url.empty() || roles.blobs) {
    FF_ASSIGN_OR_RETURN(p->blobs, RocksBlobStore::Open(dir + "/blobs", RocksBlobStoreOptions{},
                                                       [&clock] { return clock.NowMillis(); },
                                                       p->storage_metrics.get()));
  } else {
    HttpBlobStoreOptions o;
    o.url = config.blob_url;
    o.token = config.blob_token;
    FF_ASSIGN_OR_RETURN(p->blobs, OpenHttpBlobStore(o));
  }
  if (roles.blobs) {
    FF_ASSIGN_OR_RETURN(auto listen, ParseListen(config.blob_listen));
    BlobServerOptions bo;
    bo.token = config.blob_token;
    p->blob_server = std::make_unique<BlobServer>(*p->blobs, bo, p->registry.get());
    FF_RETURN_IF_ERROR(p->blob_server->Start(listen.first, listen.second));
    FF_LOG_INFO(log, "blob server on http://{}:{}/v1/blobs", listen.first, p->blob_server->port());
  }
  if (roles.uses_bus()) {
    FF_ASSIGN_OR_RETURN(p->bus, OpenConfiguredBus(config, p->registry.get()));
    FF_RETURN_IF_ERROR(p->bus->EnsureTopics(bus::Catalogue()).WithContext("topics"));
  }

  // Static split of partitions between processes of one role (instance.index of instance.count).
  auto owned = [&](std::string_view topic) -> Result<std::vector<int32_t>> {
    FF_ASSIGN_OR_RETURN(int32_t n, p->bus->PartitionCount(std::string(topic)));
    std::vector<int32_t> mine;
    for (int32_t i = 0; i < n; ++i)
      if (i % config.instance_count == config.instance_index) mine.push_back(i);
    return mine;
  };

  std::vector<bus::LagMonitor::Watch> watches;
  if (roles.gateway) {
    FF_ASSIGN_OR_RETURN(p->status, OpenRocksStatusStore(dir + "/status"));
    // One gateway: the shared group name. Several gateway nodes (owner routing on): each node's
    // store has its own group, named after the node's advertised URL (its identity in fax.gateways).
    std::string status_group(bus::group::kStatus);
    if (config.gateway_owner_mode != "off") {
      const std::string self =
          config.gateway_advertise_url.empty() ? "http://" + config.gateway_listen : config.gateway_advertise_url;
      status_group += "-" + Sha256Hex(self).substr(0, 12);
    }
    p->status_worker = std::make_unique<StatusWorker>(*p->bus, *p->status, *p->registry, clock, status_group);
    p->status_worker->SetHeartbeats(beats);
    FF_RETURN_IF_ERROR(p->status_worker->Start().WithContext("status worker"));
    p->books = std::make_unique<monitoring::BooksMonitor>([s = p->status.get()] { return s->GetBooks(); },
                                                          *p->registry);
    p->books->SetHeartbeats(beats);
    FF_RETURN_IF_ERROR(p->books->Start().WithContext("books monitor"));
    watches.push_back({std::string(bus::topic::kEvents), status_group});
    watches.push_back({std::string(bus::topic::kIngest), std::string(bus::group::kIngest)});
  }
  if (roles.imaging) {
    auto options = imaging::ImagingOptions::FromConfig(config);
    options.heartbeats = beats;
    const bool use_claims = claims::ClaimsEnabled(config);
    if (use_claims) {
      // Load-weighted claims (topics/claims, docs/claims.md) instead of the static split.
      auto co = claims::ClaimsOptions::FromConfig(config);
      options.follow_claims = true;
      options.worker_id = co.worker_id;
      p->claims = std::make_unique<claims::ClaimsMember>(
          co, *p->bus, std::make_unique<LoadSampler>(LoadOptions::FromConfig(config), clock), *p->registry, clock);
      claims::ClaimsMember* c = p->claims.get();
      options.on_partition_taken = [c](int32_t, double seconds) { c->ObserveTakeover(seconds); };
      options.on_partition_fenced = [c](int32_t) { c->CountFenced(); };
    } else if (config.instance_count > 1) {
      FF_ASSIGN_OR_RETURN(options.partitions, owned(bus::topic::kSubmissions));
      options.instance = std::to_string(config.instance_index);
    }
    p->imaging = std::make_unique<imaging::ImagingWorker>(options, *p->bus, *p->blobs, *p->registry, clock);
    FF_RETURN_IF_ERROR(p->imaging->Start().WithContext("imaging worker"));
    if (use_claims) {
      imaging::ImagingWorker* w = p->imaging.get();
      p->claims->SetOnAssignment([w](const std::vector<int32_t>& mine) { w->SetPartitions(mine); });
      p->claims->SetRendersInFlight([w] { return w->RendersInFlight(); });
      p->claims->SetHeartbeats(beats);
      FF_RETURN_IF_ERROR(p->claims->Start().WithContext("imaging claims"));
      FF_LOG_INFO(log, "imaging worker {} follows load-weighted claims", p->claims->worker_id());
      // /readyz "claims": this worker holds claims, unless there are more workers than partitions.
      p->health->AddReadinessCheck("claims", [c = p->claims.get(), b = p->bus.get()]() -> Status {
        if (!c->Owned().empty()) return Status::Ok();
        FF_ASSIGN_OR_RETURN(int32_t partitions, b->PartitionCount(std::string(bus::topic::kSubmissions)));
        if (c->Members().size() > static_cast<size_t>(partitions)) return Status::Ok();
        return Status::Retryable(Code::kUnavailable, "no fax.submissions partition claimed yet");
      });
    }
    watches.push_back({std::string(bus::topic::kSubmissions), std::string(bus::group::kImaging)});
  }
  if (roles.modem) {
    FF_ASSIGN_OR_RETURN(p->dedup, RocksDedupStore::Open(dir + "/dedup", p->storage_metrics.get()));
    auto options = modem::ModemOptions::FromConfig(config);
    options.heartbeats = beats;
    if (config.instance_count > 1) {
      FF_ASSIGN_OR_RETURN(options.partitions, owned(bus::topic::kJobs));
    }
    if (config.modem_line == "t38") {  // T.38 over UDP (docs/t38.md)
      FF_ASSIGN_OR_RETURN(p->line, modem::MakeT38Line(config, clock));
    } else {
      FF_ASSIGN_OR_RETURN(p->line, modem::MakeLineDriver(options, clock));
    }
    p->modem = std::make_unique<modem::ModemWorker>(options, *p->bus, *p->blobs, *p->dedup, *p->line,
                                                    *p->registry, clock);
    FF_RETURN_IF_ERROR(p->modem->Start().WithContext("modem worker"));
    watches.push_back({std::string(bus::topic::kJobs), std::string(bus::group::kModem)});
  }
  if (p->bus) {
    p->lag = std::make_unique<bus::LagMonitor>(*p->bus, watches, *p->registry);
    p->lag->SetHeartbeats(beats);
    FF_RETURN_IF_ERROR(p->lag->Start());
  }

  Parts* raw = p.get();
  p->health->AddReadinessCheck("pipeline", [raw] { return raw->CoreReady(); });
  if (p->bus) p->health->AddReadinessCheck("topics", [raw] { return raw->TopicsPresent(); });
  FF_RETURN_IF_ERROR(p->health->Start());
  if (roles.gateway) {
    FF_ASSIGN_OR_RETURN(p->producer, p->bus->NewProducer("gateway"));
    SubmissionLimits limits;
    limits.max_document_bytes = config.gateway_max_upload_bytes;
    limits.max_recipients = config.gateway_max_recipients;
    limits.default_region = config.gateway_default_region;
    limits.max_documents = config.gateway_max_documents;
    limits.max_pages = config.gateway_max_pages;
    p->submissions = std::make_unique<SubmissionService>(
        limits, *p->producer, *p->blobs, *p->status, clock, [](std::string_view content) -> Result<std::string> {
          FF_ASSIGN_OR_RETURN(auto type, imaging::DetectDocumentType(content));
          return std::string(imaging::MimeType(type));
        });
    if (config.gateway_prefer_less_loaded && claims::ClaimsEnabled(config)) {
      // Seed 000: submissions go preferably to partitions of less loaded imaging workers.
      auto vo = claims::ClaimsOptions::FromConfig(config);
      vo.publish = false;
      vo.worker_id = "gateway-" + vo.worker_id;
      p->members_view = std::make_unique<claims::ClaimsMember>(vo, *p->bus, nullptr, *p->registry, clock);
      FF_RETURN_IF_ERROR(p->members_view->Start().WithContext("gateway member view"));
      claims::ClaimsMember* view = p->members_view.get();
      p->submissions->SetPartitionChooser([view](const v1::Submission& sub) -> std::optional<int32_t> {
        return view->PreferredPartition(std::hash<std::string>{}(sub.fax_id()));
      });
    }
    FF_ASSIGN_OR_RETURN(auto listen, ParseListen(config.gateway_listen));
    GatewayOptions go;
    go.host = listen.first;
    go.port = listen.second;
    go.max_body_bytes = config.gateway_max_upload_bytes + (1 << 20);
    if (config.gateway_auth != "keys" && config.gateway_auth != "none")
      return Status::Permanent(Code::kInvalidArgument, "gateway.auth must be keys or none, got '" + config.gateway_auth + "'");
    if (config.gateway_auth == "none")
      FF_LOG_WARN(log, "gateway.auth=none: the REST API is open to anyone who can reach it (tenant 'default')");
    ApiDeps api;
    api.auth = config.gateway_auth;
    api.admin_token = config.gateway_admin_token;
    api.clock = &clock;
    api.producer = p->producer.get();
    p->api_keys = std::make_unique<ApiKeyStore>(*p->bus, clock);
    p->api_keys->SetHeartbeats(beats);
    FF_RETURN_IF_ERROR(p->api_keys->Start().WithContext("API keys (fax.keys)"));
    api.keys = p->api_keys.get();
    IdempotencyOptions idem;
    idem.ttl = std::chrono::milliseconds(static_cast<int64_t>(config.gateway_idempotency_ttl_hours * 3600 * 1000));
    idem.lease = std::chrono::milliseconds(static_cast<int64_t>(config.gateway_idempotency_lease_seconds * 1000));
    p->idempotency = std::make_unique<IdempotencyStore>(*p->bus, clock, idem);
    p->idempotency->SetHeartbeats(beats);
    FF_RETURN_IF_ERROR(p->idempotency->Start().WithContext("idempotency records (fax.idempotency)"));
    api.idempotency = p->idempotency.get();
    p->limiter = std::make_unique<TenantLimiter>(
        RateLimitOptions{config.gateway_rate_limit_per_second, config.gateway_rate_limit_burst,
                         config.gateway_max_concurrent_requests},
        clock);
    api.limiter = p->limiter.get();
    p->content_fetcher = std::make_unique<ingest::UrlFetcher>(ingest::UrlFetcherOptionsFromConfig(config));
    ingest::UrlFetcher* cf = p->content_fetcher.get();
    api.fetch_url = [cf](const std::string& url) -> Result<std::string> {
      FF_ASSIGN_OR_RETURN(auto doc, cf->Fetch(url));
      return std::move(doc.content);
    };
    {
      FF_ASSIGN_OR_RETURN(auto prices, PriceList::Parse(config.pricing_rates, config.pricing_currency));
      p->prices = std::make_unique<PriceList>(std::move(prices));
      api.prices = p->prices.get();
    }
    p->gateway = std::make_unique<Gateway>(go, *p->submissions, *p->status, *p->blobs, *p->registry,
                                           [raw] { return raw->Ready(); }, std::move(api));
    if (config.webhooks_enabled) {
      // Webhooks: same SSRF guard as content_url fetching, with the webhook time limit.
      FF_ASSIGN_OR_RETURN(p->notify_store, notify::NotifyStore::Open(dir + "/notify"));
      // Endpoints and callback secrets are shared by every gateway node through fax.webhooks.
      p->webhook_replica = std::make_unique<notify::WebhookReplica>(*p->bus, *p->notify_store);
      p->webhook_replica->SetHeartbeats(beats);
      // Several gateway nodes: the delivery log too (fax.webhook-log), so any node reads all of it.
      if (config.gateway_owner_mode != "off") p->webhook_replica->ShareDeliveryLog();
      // ... and pending deliveries (fax.webhook-deliveries): the next owner of a partition retries them.
      if (config.gateway_owner_mode != "off") p->webhook_replica->ShareDeliveries();
      FF_RETURN_IF_ERROR(p->webhook_replica->Start().WithContext("webhook endpoints (fax.webhooks)"));
      auto wo = ingest::UrlFetcherOptionsFromConfig(config);
      wo.max_bytes = 1 << 20;
      wo.timeout = std::chrono::milliseconds(static_cast<int64_t>(config.webhooks_timeout_seconds * 1000));
      wo.user_agent = "faxflow-webhooks/0.1";
      p->webhook_fetcher = std::make_unique<ingest::UrlFetcher>(wo);
      ingest::UrlFetcher* wf = p->webhook_fetcher.get();
      p->notifier = std::make_unique<notify::Notifier>(
          notify::NotifierOptions::FromConfig(config), p->bus.get(), *p->notify_store,
          [wf](const ingest::OutboundRequest& r) { return wf->Send(r); }, *p->registry, clock);
      notify::RegisterWebhookRoutes(p->gateway->http_server(), *p->notify_store, clock, RequestTenantOf(*p->gateway));
      p->notifier->SetHeartbeats(beats);
      // Several gateway nodes: the notifier starts once owner routing tells it its partitions.
      if (config.gateway_owner_mode == "off")
        FF_RETURN_IF_ERROR(p->notifier->Start().WithContext("webhook notifier"));
    }
    {
      // Broadcasts: rendered once (chunk 0 is an ordinary submission), fanned out in chunks.
      BroadcastOptions bo;
      bo.max_recipients = config.broadcast_max_recipients;
      bo.batch_size = static_cast<int>(std::max<int64_t>(1, config.broadcast_batch_size));
      bo.chunk_size = static_cast<int>(std::clamp<int64_t>(config.gateway_max_recipients, 1, 100));
      bo.default_region = config.gateway_default_region;
      StatusStore* broadcast_status = p->status.get();
      if (config.gateway_owner_mode != "off") {
        // Several gateway nodes: records, cursors and chunk status shared through fax.broadcasts.
        p->broadcast_replica = std::make_unique<BroadcastReplica>(*p->bus, *p->status);
        p->broadcast_replica->SetHeartbeats(beats);
        FF_RETURN_IF_ERROR(p->broadcast_replica->Open());
        broadcast_status = &p->broadcast_replica->status_store();
      }
      p->broadcasts = std::make_unique<BroadcastService>(bo, *p->submissions, *p->producer, *p->blobs,
                                                         *broadcast_status, *p->registry, clock);
      FF_RETURN_IF_ERROR(p->broadcasts->Open(dir + "/broadcasts"));
      if (p->broadcast_replica) {
        // Driven by the tenant's owner only (nothing until owner routing runs).
        FF_RETURN_IF_ERROR(p->broadcast_replica
                               ->Start(*p->broadcasts,
                                       [raw](const std::string& tenant) {
                                         OwnerDirectory* o = raw->owner_ready.load();
                                         return o != nullptr && o->OwnerOf(tenant) == o->self();
                                       })
                               .WithContext("broadcasts (fax.broadcasts)"));
      }
      if (notify::Notifier* n = p->notifier.get()) {
        p->broadcasts->SetProgressSink([n](const BroadcastProgress& bp) {
          notify::NotifyEvent ev;
          ev.event_id = "bcp_" + bp.id + "_" + std::to_string(bp.terminal) + "_" + bp.state;
          ev.type = "broadcast.progress";
          ev.tenant = bp.tenant;
          ev.at_ms = bp.done_ms ? bp.done_ms : bp.created_ms;
          nlohmann::json counts = nlohmann::json::object();
          for (const auto& [k, v] : bp.counts) counts[k] = v;
          ev.data = {{"broadcast_id", bp.id}, {"state", bp.state},     {"recipients", bp.recipients},
                     {"terminal", bp.terminal}, {"counts", counts}};
          Status s = n->Publish(ev);
          if (!s.ok()) FF_LOG_WARN(Logger("broadcast"), "{}: progress webhook: {}", bp.id, s.ToString());
        });
      }
      RegisterBroadcastRoutes(p->gateway->http_server(), *p->broadcasts, RequestTenantOf(*p->gateway));
      p->broadcasts->SetHeartbeats(beats);
      FF_RETURN_IF_ERROR(p->broadcasts->Start().WithContext("broadcasts"));
    }
    if (config.gateway_owner_mode != "off") {
      if (config.gateway_owner_mode != "redirect" && config.gateway_owner_mode != "proxy")
        return Status::Permanent(Code::kInvalidArgument,
                                 "gateway.owner_mode must be off, redirect or proxy, got '" + config.gateway_owner_mode + "'");
      OwnerOptions oo;
      oo.self_url = config.gateway_advertise_url.empty() ? "http://" + config.gateway_listen : config.gateway_advertise_url;
      if (listen.second == 0 && config.gateway_advertise_url.empty())
        return Status::Permanent(Code::kInvalidArgument, "gateway.owner_mode needs a fixed gateway.listen port or gateway.advertise_url");
      oo.mode = config.gateway_owner_mode;
      oo.member_timeout = std::chrono::milliseconds(static_cast<int64_t>(config.gateway_member_timeout_seconds * 1000));
      oo.route_submissions = config.gateway_route_submissions;
      p->owner = std::make_unique<OwnerDirectory>(oo, *p->bus, *p->registry, clock);
      p->owner->SetHeartbeats(beats);
      FF_RETURN_IF_ERROR(p->owner->Start().WithContext("owner routing (fax.gateways)"));
      p->owner_ready = p->owner.get();
      if (p->notifier) {
        // Each partition of fax.submissions/fax.events is notified by exactly one live node.
        p->notifier->SetOwnership(
            [o = p->owner.get()](int32_t partition) { return o->OwnerOfSlot(partition) == o->self(); },
            "faxflow-notify-callbacks-" + Sha256Hex(p->owner->self()).substr(0, 12));
        FF_RETURN_IF_ERROR(p->notifier->Start().WithContext("webhook notifier"));
      }
      // Routing happens in the admission step, after authentication and before the per-tenant
      // limits, so a request is counted once, by the node that serves it (docs/owners.md).
      p->gateway->SetRouter([o = p->owner.get()](const httplib::Request& req, httplib::Response& res,
                                                 const std::string& tenant) { return o->Route(req, res, tenant); });
    }
    FF_RETURN_IF_ERROR(p->gateway->Start());

    // Enterprise ingestion (fax.ingest) shares the submission path with REST.
    p->fetcher = std::make_unique<ingest::UrlFetcher>(ingest::UrlFetcherOptionsFromConfig(config));
    auto io = ingest::IngestOptions::FromConfig(config);
    if (config.instance_count > 1) {
      FF_ASSIGN_OR_RETURN(io.partitions, owned(bus::topic::kIngest));
      io.instance = std::to_string(config.instance_index);
    }
    p->ingest = std::make_unique<ingest::IngestWorker>(io, *p->bus, *p->submissions, *p->blobs, *p->fetcher,
                                                       *p->registry, clock);
    p->ingest->SetHeartbeats(beats);
    FF_RETURN_IF_ERROR(p->ingest->Start().WithContext("ingest worker"));
  } else {
    FF_ASSIGN_OR_RETURN(auto listen, ParseListen(config.admin_listen));
    p->admin = std::make_unique<AdminServer>(*p->registry, [raw] { return raw->Ready(); });
    FF_RETURN_IF_ERROR(p->admin->Start(listen.first, listen.second));
    FF_LOG_INFO(log, "metrics on http://{}:{}/metrics", listen.first, p->admin->port());
  }
  return std::unique_ptr<Pipeline>(new Pipeline(std::move(p)));
}

}  // namespace faxflow
