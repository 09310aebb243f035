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
  std::string admin_listen;

  // blob store shared across processes (storage/blob_http.h)
  std::string blob_url;
  std::string blob_token;
  std::string blob_listen;

  // imaging
  int64_t imaging_workers = 0;
  std::string imaging_gs_path;
  double imaging_timeout_seconds = 0;
  int64_t imaging_cpu_seconds = 0;
  int64_t imaging_memory_bytes = 0;
  int64_t imaging_max_output_bytes = 0;
  int64_t imaging_max_pages = 0;

  // modem
  int64_t modem_channels = 0;
  std::string modem_line;
  double modem_call_timeout_seconds = 0;
  std::string modem_local_ident;

  // ingestion (fax.ingest)
  int64_t ingest_max_record_bytes = 0;
  int64_t ingest_max_url_bytes = 0;
  double ingest_url_timeout_seconds = 0;
  bool ingest_allow_private_urls = false;
  int64_t ingest_fetch_retries = 0;

  // sim line
  std::string sim_received_dir;
  std::string sim_behaviours;
  bool sim_realtime = false;
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
