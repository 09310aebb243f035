#include "app/pipeline.h"

#include <filesystem>

#include <httplib.h>

#include "common/log.h"
#include "common/metrics.h"
#include "producers/gateway/gateway.h"
#include "producers/ingest/ingest_worker.h"
#include "producers/ingest/url_fetcher.h"
#include "producers/gateway/submission_service.h"
#include "storage/blob_http.h"
#include "storage/dedup_store.h"
#include "topics/catalogue.h"
#include "topics/embedded/embedded_bus.h"
#include "topics/kafka/kafka_bus.h"
#include "topics/lag_monitor.h"
#include "workers/imaging/imaging_worker.h"
#include "workers/imaging/sniff.h"
#include "workers/modem/modem_worker.h"
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
  // Destruction runs bottom-up: servers and workers first, then stores, then the bus.
  std::unique_ptr<bus::Bus> bus;
  std::unique_ptr<BlobStore> blobs;
  std::unique_ptr<StatusStore> status;
  std::unique_ptr<DedupStore> dedup;
  std::unique_ptr<modem::LineDriver> line;
  std::unique_ptr<bus::Producer> producer;
  std::unique_ptr<SubmissionService> submissions;
  std::unique_ptr<ingest::UrlFetcher> fetcher;
  std::unique_ptr<ingest::IngestWorker> ingest;
  std::unique_ptr<bus::LagMonitor> lag;
  std::unique_ptr<StatusWorker> status_worker;
  std::unique_ptr<imaging::ImagingWorker> imaging;
  std::unique_ptr<modem::ModemWorker> modem;
  std::unique_ptr<Gateway> gateway;
  std::unique_ptr<BlobServer> blob_server;
  std::unique_ptr<AdminServer> admin;

  Status Ready() const {
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
    if (gateway) gateway->Stop();      // stop accepting first
    if (ingest) ingest->Stop();
    if (imaging) imaging->Stop();
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

  if (config.blob_url.empty() || roles.blobs) {
    FF_ASSIGN_OR_RETURN(p->blobs, OpenRocksBlobStore(dir + "/blobs", RocksBlobStoreOptions{},
                                                     [&clock] { return clock.NowMillis(); }));
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
    p->status_worker = std::make_unique<StatusWorker>(*p->bus, *p->status, *p->registry, clock);
    FF_RETURN_IF_ERROR(p->status_worker->Start().WithContext("status worker"));
    watches.push_back({std::string(bus::topic::kEvents), std::string(bus::group::kStatus)});
    watches.push_back({std::string(bus::topic::kIngest), std::string(bus::group::kIngest)});
  }
  if (roles.imaging) {
    auto options = imaging::ImagingOptions::FromConfig(config);
    if (config.instance_count > 1) {
      FF_ASSIGN_OR_RETURN(options.partitions, owned(bus::topic::kSubmissions));
      options.instance = std::to_string(config.instance_index);
    }
    p->imaging = std::make_unique<imaging::ImagingWorker>(options, *p->bus, *p->blobs, *p->registry, clock);
    FF_RETURN_IF_ERROR(p->imaging->Start().WithContext("imaging worker"));
    watches.push_back({std::string(bus::topic::kSubmissions), std::string(bus::group::kImaging)});
  }
  if (roles.modem) {
    FF_ASSIGN_OR_RETURN(p->dedup, OpenRocksDedupStore(dir + "/dedup"));
    auto options = modem::ModemOptions::FromConfig(config);
    if (config.instance_count > 1) {
      FF_ASSIGN_OR_RETURN(options.partitions, owned(bus::topic::kJobs));
    }
    FF_ASSIGN_OR_RETURN(p->line, modem::MakeLineDriver(options, clock));
    p->modem = std::make_unique<modem::ModemWorker>(options, *p->bus, *p->blobs, *p->dedup, *p->line,
                                                    *p->registry, clock);
    FF_RETURN_IF_ERROR(p->modem->Start().WithContext("modem worker"));
    watches.push_back({std::string(bus::topic::kJobs), std::string(bus::group::kModem)});
  }
  if (p->bus) {
    p->lag = std::make_unique<bus::LagMonitor>(*p->bus, watches, *p->registry);
    FF_RETURN_IF_ERROR(p->lag->Start());
  }

  Parts* raw = p.get();
  if (roles.gateway) {
    FF_ASSIGN_OR_RETURN(p->producer, p->bus->NewProducer("gateway"));
    SubmissionLimits limits;
    limits.max_document_bytes = config.gateway_max_upload_bytes;
    limits.max_recipients = config.gateway_max_recipients;
    limits.default_region = config.gateway_default_region;
    p->submissions = std::make_unique<SubmissionService>(
        limits, *p->producer, *p->blobs, *p->status, clock, [](std::string_view content) -> Result<std::string> {
          FF_ASSIGN_OR_RETURN(auto type, imaging::DetectDocumentType(content));
          return std::string(imaging::MimeType(type));
        });
    FF_ASSIGN_OR_RETURN(auto listen, ParseListen(config.gateway_listen));
    GatewayOptions go;
    go.host = listen.first;
    go.port = listen.second;
    go.max_body_bytes = config.gateway_max_upload_bytes + (1 << 20);
    p->gateway = std::make_unique<Gateway>(go, *p->submissions, *p->status, *p->blobs, *p->registry,
                                           [raw] { return raw->Ready(); });
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
