#include "common/config.h"

#include <cstdlib>
#include <functional>
#include <sstream>

#include <yaml-cpp/yaml.h>

namespace faxflow {
namespace {

// X(key, member, type, default, doc)
#define FAXFLOW_CONFIG_KEYS(X)                                                                    \
  X("data_dir", data_dir, string, "./faxflow-data",                                               \
    "Directory for the embedded bus, blob store, dedup and status stores, and sim far-end output.")\
  X("log.level", log_level, string, "info", "Log level: trace, debug, info, warn, error, off.")   \
  X("site", site, string, "local", "Name of this site (label on metrics, origin of events).")      \
  X("instance.index", instance_index, int, "0",                                                 \
    "Slot of this process among instance.count processes of the same role; it owns the partitions "\
    "p with p % count == index and uses the slot in its transactional ids.")                     \
  X("instance.count", instance_count, int, "1",                                                 \
    "Number of processes of this role sharing the work (static split until load-weighted claims).")\
  X("bus.backend", bus_backend, string, "embedded",                                               \
    "Message bus: `embedded` (RocksDB, one process) or `kafka`.")                                 \
  X("kafka.bootstrap", kafka_bootstrap, string, "127.0.0.1:9092",                                 \
    "Kafka bootstrap servers when bus.backend is kafka. Other kafka.* keys go to librdkafka.")    \
  X("gateway.listen", gateway_listen, string, "127.0.0.1:8080",                                   \
    "host:port of the REST API (also serves /metrics, /healthz, /readyz).")                      \
  X("gateway.max_upload_bytes", gateway_max_upload_bytes, int, "52428800",                        \
    "Largest accepted request body in bytes (413 above it).")                                     \
  X("gateway.max_recipients", gateway_max_recipients, int, "100",                                 \
    "Most recipients in one POST /v1/faxes (422 above it).")                                      \
  X("gateway.default_region", gateway_default_region, string, "US",                               \
    "Region (ISO 3166) used to read national numbers without a leading +.")                      \
  X("admin.listen", admin_listen, string, "127.0.0.1:9464",                                       \
    "host:port of /metrics, /healthz, /readyz for roles without the gateway.")                   \
  X("blob.url", blob_url, string, "",                                                             \
    "Blob server URL every role uses (http://host:port); empty means the local RocksDB blob "     \
    "store under <data_dir>/blobs (one process only).")                                           \
  X("blob.token", blob_token, string, "",                                                         \
    "Bearer token of the blob server: required by `faxflow blobs` and sent by clients when set.")\
  X("blob.listen", blob_listen, string, "127.0.0.1:9470",                                         \
    "host:port where `faxflow blobs` serves the blob store (docs/storage.md).")                  \
  X("imaging.workers", imaging_workers, int, "2", "Render threads of an imaging worker.")         \
  X("imaging.gs_path", imaging_gs_path, string, "gs", "Ghostscript executable.")                  \
  X("imaging.timeout_seconds", imaging_timeout_seconds, double, "60",                             \
    "Wall-clock limit of one Ghostscript run; the process is killed after it.")                  \
  X("imaging.cpu_seconds", imaging_cpu_seconds, int, "30", "RLIMIT_CPU of one Ghostscript run.")  \
  X("imaging.memory_bytes", imaging_memory_bytes, int, "1073741824",                              \
    "RLIMIT_AS (address space) of one Ghostscript run.")                                          \
  X("imaging.max_output_bytes", imaging_max_output_bytes, int, "209715200",                       \
    "RLIMIT_FSIZE of one Ghostscript run (largest output file).")                                 \
  X("imaging.max_pages", imaging_max_pages, int, "200",                                           \
    "Most pages of one fax; longer documents end as document_error.")                             \
  X("modem.channels", modem_channels, int, "4", "Channels (simultaneous calls) of a modem worker.")\
  X("modem.line", modem_line, string, "sim", "Line driver: `sim` (simulated far end).")           \
  X("modem.call_timeout_seconds", modem_call_timeout_seconds, double, "900",                      \
    "Watchdog: longest call in line time before it is torn down as dropped.")                    \
  X("modem.local_ident", modem_local_ident, string, "faxflow",                                    \
    "Default TSI (transmitting subscriber id, <= 20 chars) when a fax sets none.")               \
  X("ingest.max_record_bytes", ingest_max_record_bytes, int, "16777216",                          \
    "Largest fax.ingest record (JSON or Protobuf) in bytes; bigger ones go to fax.dlq.")        \
  X("ingest.max_url_bytes", ingest_max_url_bytes, int, "52428800",                               \
    "Largest document fetched from a URL named in an ingest record.")                           \
  X("ingest.url_timeout_seconds", ingest_url_timeout_seconds, double, "30",                      \
    "Time limit of one URL fetch (all redirects included).")                                    \
  X("ingest.allow_private_urls", ingest_allow_private_urls, bool, "false",                       \
    "Allow document URLs that resolve to loopback/private/link-local addresses (private "       \
    "deployments and tests only: it disables the SSRF guard's address rule).")                  \
  X("ingest.fetch_retries", ingest_fetch_retries, int, "3",                                      \
    "Retries of a URL fetch that failed transiently before the record goes to fax.dlq.")       \
  X("sim.received_dir", sim_received_dir, string, "",                                             \
    "Where the simulated far end stores received TIFFs; empty means <data_dir>/received.")       \
  X("sim.behaviours", sim_behaviours, string, "",                                                 \
    "Far-end behaviour per number, `+15551230001=busy;+15551230002=drop_after:2`, added to the "  \
    "built-in test numbers (docs/sim.md).")                                                       \
  X("sim.realtime", sim_realtime, bool, "false",                                                  \
    "Pace the simulated line in real time (20 ms frames) instead of as fast as possible.")

using Setter = std::function<Status(Config&, const std::string&)>;
using Getter = std::function<std::string(const Config&)>;

Status ParseInt(const std::string& key, const std::string& text, int64_t& out) {
  try {
    size_t pos = 0;
    out = std::stoll(text, &pos);
    if (pos != text.size()) throw std::invalid_argument(text);
    return Status::Ok();
  } catch (const std::exception&) {
    return Status::Permanent(Code::kInvalidArgument, "config " + key + ": not an integer: '" + text + "'");
  }
}

Status ParseDouble(const std::string& key, const std::string& text, double& out) {
  try {
    size_t pos = 0;
    out = std::stod(text, &pos);
    if (pos != text.size()) throw std::invalid_argument(text);
    return Status::Ok();
  } catch (const std::exception&) {
    return Status::Permanent(Code::kInvalidArgument, "config " + key + ": not a number: '" + text + "'");
  }
}

Status ParseBool(const std::string& key, const std::string& text, bool& out) {
  if (text == "true" || text == "1" || text == "yes" || text == "on") { out = true; return Status::Ok(); }
  if (text == "false" || text == "0" || text == "no" || text == "off") { out = false; return Status::Ok(); }
  return Status::Permanent(Code::kInvalidArgument, "config " + key + ": not a boolean: '" + text + "'");
}

Status Assign(const std::string&, const std::string& text, std::string& out) { out = text; return Status::Ok(); }
Status Assign(const std::string& key, const std::string& text, int64_t& out) { return ParseInt(key, text, out); }
Status Assign(const std::string& key, const std::string& text, double& out) { return ParseDouble(key, text, out); }
Status Assign(const std::string& key, const std::string& text, bool& out) { return ParseBool(key, text, out); }

std::string Show(const std::string& v) { return v; }
std::string Show(int64_t v) { return std::to_string(v); }
std::string Show(bool v) { return v ? "true" : "false"; }
std::string Show(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

struct Entry {
  ConfigKeyInfo info;
  Setter set;
  Getter get;
};

const std::vector<Entry>& Entries() {
  static const std::vector<Entry> entries = [] {
    std::vector<Entry> e;
#define FAXFLOW_CONFIG_ENTRY(key, member, type, def, doc)                                      \
  e.push_back(Entry{ConfigKeyInfo{key, #type, def, doc},                                       \
                    [](Config& c, const std::string& v) { return Assign(key, v, c.member); }, \
                    [](const Config& c) { return Show(c.member); }});
    FAXFLOW_CONFIG_KEYS(FAXFLOW_CONFIG_ENTRY)
#undef FAXFLOW_CONFIG_ENTRY
    return e;
  }();
  return entries;
}

std::string EnvName(const std::string& key) {
  std::string out = "FAXFLOW_";
  for (char c : key) out += (c == '.') ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

Status FlattenYaml(const YAML::Node& node, const std::string& prefix,
                   std::vector<std::pair<std::string, std::string>>& out) {
  if (node.IsMap()) {
    for (const auto& kv : node) {
      std::string key = kv.first.as<std::string>();
      FF_RETURN_IF_ERROR(FlattenYaml(kv.second, prefix.empty() ? key : prefix + "." + key, out));
    }
    return Status::Ok();
  }
  if (node.IsScalar()) {
    out.emplace_back(prefix, node.Scalar());
    return Status::Ok();
  }
  if (node.IsNull()) return Status::Ok();
  return Status::Permanent(Code::kInvalidArgument, "config " + prefix + ": expected a scalar value");
}

}  // namespace

const std::vector<ConfigKeyInfo>& ConfigKeys() {
  static const std::vector<ConfigKeyInfo> keys = [] {
    std::vector<ConfigKeyInfo> k;
    for (const auto& e : Entries()) k.push_back(e.info);
    return k;
  }();
  return keys;
}

Config DefaultConfig() {
  Config c;
  for (const auto& e : Entries()) e.set(c, e.info.default_value).IgnoreError();  // defaults parse
  return c;
}

Status SetConfigValue(Config& config, const std::string& key, const std::string& value) {
  for (const auto& e : Entries()) {
    if (e.info.name == key) return e.set(config, value);
  }
  if (key.rfind("kafka.", 0) == 0 && key.size() > 6) {
    config.kafka_properties[key.substr(6)] = value;
    return Status::Ok();
  }
  return Status::Permanent(Code::kInvalidArgument, "unknown config key '" + key + "' (see `faxflow config`)");
}

std::optional<std::string> GetConfigValue(const Config& config, const std::string& key) {
  for (const auto& e : Entries()) {
    if (e.info.name == key) return e.get(config);
  }
  if (key.rfind("kafka.", 0) == 0) {
    auto it = config.kafka_properties.find(key.substr(6));
    if (it != config.kafka_properties.end()) return it->second;
  }
  return std::nullopt;
}

Result<Config> LoadConfig(const std::optional<std::string>& yaml_path,
                          const std::vector<std::pair<std::string, std::string>>& overrides,
                          bool read_environment) {
  Config config = DefaultConfig();
  if (yaml_path) {
    std::vector<std::pair<std::string, std::string>> flat;
    try {
      YAML::Node root = YAML::LoadFile(*yaml_path);
      FF_RETURN_IF_ERROR(FlattenYaml(root, "", flat));
    } catch (const YAML::Exception& e) {
      return Status::Permanent(Code::kInvalidArgument, "config file " + *yaml_path + ": " + e.what());
    }
    for (const auto& [k, v] : flat) FF_RETURN_IF_ERROR(SetConfigValue(config, k, v).WithContext(*yaml_path));
  }
  if (read_environment) {
    for (const auto& e : Entries()) {
      if (const char* v = std::getenv(EnvName(e.info.name).c_str())) {
        FF_RETURN_IF_ERROR(e.set(config, v).WithContext("environment " + EnvName(e.info.name)));
      }
    }
  }
  for (const auto& [k, v] : overrides) FF_RETURN_IF_ERROR(SetConfigValue(config, k, v));
  if (config.sim_received_dir.empty()) config.sim_received_dir = config.data_dir + "/received";
  if (config.instance_count < 1 || config.instance_index < 0 || config.instance_index >= config.instance_count)
    return Status::Permanent(Code::kInvalidArgument, "instance.index must be in [0, instance.count)");
  if (config.bus_backend != "embedded" && config.bus_backend != "kafka")
    return Status::Permanent(Code::kInvalidArgument, "bus.backend must be embedded or kafka, not '" + config.bus_backend + "'");
  return config;
}

std::string ConfigReferenceMarkdown() {
  std::ostringstream os;
  os << "# Configuration reference\n\n"
     << "Generated by `faxflow config --markdown` from the table in `common/config.cc`.\n"
     << "Layers, later wins: defaults, the YAML file (`--config`), environment (`FAXFLOW_` + key in upper\n"
     << "case with `.` as `_`), `--set key=value`. Keys `kafka.<property>` not listed here are passed to\n"
     << "librdkafka unchanged (for example `kafka.security.protocol`, `kafka.sasl.mechanisms`).\n\n"
     << "| key | type | default | meaning |\n|---|---|---|---|\n";
  for (const auto& k : ConfigKeys()) {
    os << "| `" << k.name << "` | " << k.type << " | `" << k.default_value << "` | " << k.doc << " |\n";
  }
  return os.str();
}

}  // namespace faxflow
