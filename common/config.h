// The one typed configuration table of faxflow.
//
// Every key has a type, a default and a line of documentation, declared once in config.cc
// (FAXFLOW_CONFIG_KEYS). Values are layered, later wins:
//   1. defaults, 2. the YAML file (`--config file.yaml`, nested maps or dotted keys),
//   3. environment variables (`FAXFLOW_GATEWAY_LISTEN` for `gateway.listen`),
//   4. command-line overrides (`--set key=value`).
// Keys under `kafka.` that are not in the table are passed through to librdkafka unchanged
// (TLS/SASL and any client property). `faxflow config` prints the table; docs/configuration.md
// is generated from it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace faxflow {

struct Config {
  // general
  std::string data_dir;
  std::string log_level;
  std::string site;
  int64_t instance_index = 0;
  int64_t instance_count = 1;

  // bus
  std::string bus_backend;
  std::string kafka_bootstrap;
  std::map<std::string, std::string> kafka_properties;  // passthrough `kafka.<librdkafka key>`

  // gateway
  std::string gateway_listen;
  int64_t gateway_max_upload_bytes = 0;
  int64_t gateway_max_recipients = 0;
  std::string gateway_default_region;
  // REST API v1: tenants, API keys, limits, idempotency (producers/gateway/faxes_api.h)
  std::string gateway_auth;
  std::string gateway_admin_token;
  double gateway_rate_limit_per_second = 0;
  double gateway_rate_limit_burst = 0;
  int64_t gateway_max_concurrent_requests = 0;
  double gateway_idempotency_ttl_hours = 0;
  double gateway_idempotency_lease_seconds = 0;
  int64_t gateway_max_documents = 0;
  int64_t gateway_max_pages = 0;
  std::string admin_listen;
  double health_stall_seconds = 0;  // monitoring/health.h: a worker loop silent this long is stalled

  // blob store shared across processes (storage/blob_http.h)
  std::string blob_url;
  std::string blob_token;
  std::string blob_listen;

  // imaging
  int64_t imaging_workers = 0;
  int64_t imaging_txn_max_records = 0;
  int64_t imaging_txn_linger_ms = 0;
  std::string imaging_gs_path;
  double imaging_timeout_seconds = 0;
  int64_t imaging_cpu_seconds = 0;
  int64_t imaging_memory_bytes = 0;
  int64_t imaging_max_output_bytes = 0;
  int64_t imaging_max_pages = 0;
  int64_t imaging_render_processes = -1;  // -1: not configured (RendererOptions default)
  int64_t imaging_render_docs_per_process = 0;
  int64_t imaging_render_parallel_min_pages = -1;

  // load score and weighted claims (common/load.h, topics/claims, docs/claims.md)
  double imaging_load_weight_cpu = 0;
  double imaging_load_weight_memory = 0;
  double imaging_load_weight_renders = 0;
  double imaging_load_weight_lag = 0;
  double imaging_load_lag_norm = 0;
  double imaging_load_artificial = 0;
  std::string imaging_load_artificial_file;
  double imaging_load_capacity = 0;
  std::string claims_mode;
  std::string claims_worker_id;
  int64_t claims_heartbeat_ms = 0;
  int64_t claims_expiry_ms = 0;
  double claims_hysteresis = 0;
  bool gateway_prefer_less_loaded = false;

  // modem
  int64_t modem_channels = 0;
  std::string modem_line;
  double modem_call_timeout_seconds = 0;
  std::string modem_local_ident;
  int64_t modem_queue_capacity = 0;
  int64_t modem_max_calls_per_destination = 0;
  int64_t modem_batch_max = 0;
  int64_t modem_job_ttl_seconds = 0;
  int64_t modem_retry_busy_seconds = 0;
  int64_t modem_retry_no_answer_seconds = 0;
  int64_t modem_retry_protocol_seconds = 0;
  int64_t modem_retry_max_tries = 0;
  int64_t modem_retry_max_dials = 0;
  int64_t modem_fallback_training_failures = 0;

  // ingestion (fax.ingest)
  int64_t ingest_max_record_bytes = 0;
  int64_t ingest_max_url_bytes = 0;
  double ingest_url_timeout_seconds = 0;
  bool ingest_allow_private_urls = false;
  int64_t ingest_fetch_retries = 0;

  // outbound URLs (content_url fetches and webhooks share one SSRF guard)
  std::string net_allowed_private_networks;

  // webhooks (workers/notify)
  bool webhooks_enabled = true;
  double webhooks_max_age_seconds = 0;
  double webhooks_initial_backoff_seconds = 0;
  double webhooks_max_backoff_seconds = 0;
  double webhooks_timeout_seconds = 0;
  double webhooks_finished_retention_hours = 0;

  // broadcasts (producers/gateway/broadcast)
  int64_t broadcast_max_recipients = 0;
  int64_t broadcast_batch_size = 0;

  // owner routing of tenants across gateway nodes (producers/gateway/owner)
  std::string gateway_owner_mode;
  std::string gateway_advertise_url;
  double gateway_member_timeout_seconds = 0;
  bool gateway_route_submissions = true;

  // prices of the cost shown by GET /v1/faxes/{id} (producers/gateway/pricing.h)
  std::string pricing_rates;
  std::string pricing_currency;

  // sim line
  std::string sim_received_dir;
  std::string sim_behaviours;
  bool sim_realtime = false;

  // t38 line (workers/modem/t38_line.h, docs/t38.md)
  std::string t38_remote;
  std::string t38_routes;
  int64_t t38_redundancy = 0;
  bool t38_paced = true;
  double t38_answer_timeout_seconds = 0;
  double t38_idle_timeout_seconds = 0;
  std::string t38_media;
  bool t38_audio_realtime = false;
};

struct ConfigKeyInfo {
  std::string name;
  std::string type;
  std::string default_value;
  std::string doc;
};

// The documented table, in declaration order.
const std::vector<ConfigKeyInfo>& ConfigKeys();

Config DefaultConfig();

// Sets one key from its text form. Unknown keys are an error, except `kafka.*` (passthrough).
Status SetConfigValue(Config& config, const std::string& key, const std::string& value);

// Current value of a key in text form.
std::optional<std::string> GetConfigValue(const Config& config, const std::string& key);

// Builds the config from defaults, an optional YAML file, the environment and overrides.
Result<Config> LoadConfig(const std::optional<std::string>& yaml_path,
                          const std::vector<std::pair<std::string, std::string>>& overrides,
                          bool read_environment = true);

// Markdown reference of every key (docs/configuration.md).
std::string ConfigReferenceMarkdown();

}  // namespace faxflow
