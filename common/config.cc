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
  X("gateway.auth", gateway_auth, string, "keys",                                                 \
    "REST authentication: `keys` (API key per tenant, `faxflow keys`) or `none` (every caller is "\
    "tenant `default`; demos and tests only).")                                                   \
  X("gateway.admin_token", gateway_admin_token, string, "",                                       \
    "Bearer token of the admin API (/v1/admin/keys, `faxflow keys --server`); empty: admin API off.")\
  X("gateway.rate_limit_per_second", gateway_rate_limit_per_second, double, "50",                 \
    "Sustained REST requests per second per tenant and gateway node (token bucket; 0: no limit; "\
    "not applied with gateway.auth=none).")\
  X("gateway.rate_limit_burst", gateway_rate_limit_burst, double, "100",                           \
    "Token bucket size of gateway.rate_limit_per_second (requests allowed at once after idling).") \
  X("gateway.max_concurrent_requests", gateway_max_concurrent_requests, int, "50",                \
    "REST requests in progress at once per tenant and gateway node (429 above; 0: no limit).")     \
  X("gateway.idempotency_ttl_hours", gateway_idempotency_ttl_hours, double, "24",                 \
    "How long the first answer of an Idempotency-Key is replayed (fax.idempotency keeps 48 h).")   \
  X("gateway.idempotency_lease_seconds", gateway_idempotency_lease_seconds, double, "30",         \
    "A keyed request whose gateway died is retried by another request after this long (409 before).")\
  X("gateway.max_documents", gateway_max_documents, int, "10",                                    \
    "Most documents in one POST /v1/faxes (422 above it).")                                       \
  X("gateway.max_pages", gateway_max_pages, int, "200",                                           \
    "Most pages per fax checked at submission for TIFF and PDF (422 above; imaging.max_pages "     \
    "enforces it exactly after rendering).")                                                      \
  X("admin.listen", admin_listen, string, "127.0.0.1:9464",                                       \
    "host:port of /metrics, /healthz, /readyz for roles without the gateway.")                   \
  X("health.stall_seconds", health_stall_seconds, double, "120",                                  \
    "A worker loop that has not beaten for this long (or its own longer limit, e.g. a render's "  \
    "timeout + 60 s) is stalled: /readyz fails and FaxflowWorkerNotHeartbeating fires. 0: off.")  \
  X("blob.url", blob_url, string, "",                                                             \
    "Blob server URL every role uses (http://host:port); empty means the local RocksDB blob "     \
    "store under <data_dir>/blobs (one process only).")                                           \
  X("blob.token", blob_token, string, "",                                                         \
    "Bearer token of the blob server: required by `faxflow blobs` and sent by clients when set.")\
  X("blob.listen", blob_listen, string, "127.0.0.1:9470",                                         \
    "host:port where `faxflow blobs` serves the blob store (docs/storage.md).")                  \
  X("imaging.workers", imaging_workers, int, "2", "Render threads of an imaging worker.")         \
  X("imaging.txn_max_records", imaging_txn_max_records, int, "32",                               \
    "Submissions of one partition committed in one bus transaction at most (1 = one each).")    \
  X("imaging.txn_linger_ms", imaging_txn_linger_ms, int, "100",                                   \
    "A transaction takes the submissions prepared within this long of its first one.")         \
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
  X("imaging.render_processes", imaging_render_processes, int, "4",                               \
    "Warm, sandboxed Ghostscript processes per imaging worker, each bound to one tenant "         \
    "(docs/imaging.md); 0 = one gs run per document.")                                            \
  X("imaging.render_docs_per_process", imaging_render_docs_per_process, int, "50",                \
    "Documents one warm Ghostscript process renders before it is replaced.")                      \
  X("imaging.render_parallel_min_pages", imaging_render_parallel_min_pages, int, "12",            \
    "PDFs with at least this many pages are split into page ranges rendered in parallel; 0 = never.") \
  X("imaging.load.weight_cpu", imaging_load_weight_cpu, double, "0.5",                           \
    "Weight of CPU busy share in the load score (docs/claims.md).")                               \
  X("imaging.load.weight_memory", imaging_load_weight_memory, double, "0.2",                     \
    "Weight of memory use (cgroup memory.current/max, else /proc/meminfo) in the load score.")    \
  X("imaging.load.weight_renders", imaging_load_weight_renders, double, "0.2",                   \
    "Weight of renders in flight / render threads in the load score.")                            \
  X("imaging.load.weight_lag", imaging_load_weight_lag, double, "0.1",                           \
    "Weight of the consumer lag of owned partitions (/ imaging.load.lag_norm) in the load score.")\
  X("imaging.load.lag_norm", imaging_load_lag_norm, double, "100",                               \
    "Records of lag that count as fully loaded in the load score.")                               \
  X("imaging.load.artificial", imaging_load_artificial, double, "0",                             \
    "Test knob: artificial load 0..1 added to the load score (gives processes different spare "   \
    "capacity).")                                                                                  \
  X("imaging.load.artificial_file", imaging_load_artificial_file, string, "",                    \
    "Test knob: file holding a number 0..1 that replaces imaging.load.artificial; re-read on "    \
    "every heartbeat so a running worker's load can be changed.")                                 \
  X("imaging.load.capacity", imaging_load_capacity, double, "0",                                 \
    "Capacity (cores) of this imaging worker; 0 detects it (cgroup cpu.max, else CPU count).")   \
  X("claims.mode", claims_mode, string, "auto",                                                   \
    "Imaging partition claims: `on` (load-weighted claims, docs/claims.md), `off` (static split " \
    "by instance.index/count), `auto` (on for bus.backend=kafka with instance.count=1).")        \
  X("claims.worker_id", claims_worker_id, string, "",                                             \
    "Member id of this imaging worker in fax.members; empty means <hostname>-<pid>.")            \
  X("claims.heartbeat_ms", claims_heartbeat_ms, int, "1000",                                      \
    "Interval of load heartbeats to fax.members (and of claim recomputation).")                   \
  X("claims.expiry_ms", claims_expiry_ms, int, "5000",                                            \
    "A member whose last heartbeat is older than this expires; its partitions are re-owned.")     \
  X("claims.hysteresis", claims_hysteresis, double, "0.25",                                       \
    "Claims move only when a worker's partition count is more than max(1, hysteresis x ideal) "  \
    "away from its ideal share.")                                                                  \
  X("gateway.prefer_less_loaded", gateway_prefer_less_loaded, bool, "true",                       \
    "Gateway sends each submission to a partition owned by a less loaded imaging worker "        \
    "(weighted by spare capacity in fax.members); key hashing when no member is known.")        \
  X("modem.channels", modem_channels, int, "4", "Channels (simultaneous calls) of a modem worker.")\
  X("modem.line", modem_line, string, "sim", "Line driver: `sim` (simulated far end).")           \
  X("modem.call_timeout_seconds", modem_call_timeout_seconds, double, "900",                      \
    "Watchdog: longest call in line time before it is torn down as dropped.")                    \
  X("modem.local_ident", modem_local_ident, string, "faxflow",                                    \
    "Default TSI (transmitting subscriber id, <= 20 chars) when a fax sets none.")               \
  X("modem.queue_capacity", modem_queue_capacity, int, "0",                                      \
    "Jobs a modem worker holds in its priority scheduler (queued, delayed retries, blocked); when "\
    "full it pauses fax.jobs. 0 = max(64, 16 x channels).")                                      \
  X("modem.max_calls_per_destination", modem_max_calls_per_destination, int, "1",                \
    "Simultaneous calls to one number; further jobs to it wait (blocked).")                      \
  X("modem.batch_max", modem_batch_max, int, "8",                                                 \
    "Most jobs to one number sent in one call (several documents) and back to back on the "     \
    "same channel, while no higher-priority job is eligible; 1 = one job per call.")              \
  X("modem.job_ttl_seconds", modem_job_ttl_seconds, int, "10800",                                 \
    "Default expiry of a job without expires_at, from its submission (HylaFAX killtime "         \
    "now + 3 h); an expired job ends `expired` without dialling. 0 = never.")                    \
  X("modem.retry.busy_seconds", modem_retry_busy_seconds, int, "180", "Delay after a busy call.") \
  X("modem.retry.no_answer_seconds", modem_retry_no_answer_seconds, int, "300",                   \
    "Delay after no answer, a dropped call and other retried failures.")                      \
  X("modem.retry.protocol_seconds", modem_retry_protocol_seconds, int, "60",                      \
    "Delay after a T.30 protocol or training failure.")                                          \
  X("modem.retry.max_tries", modem_retry_max_tries, int, "3",                                     \
    "Most calls that connected (fax answered) per recipient.")                                   \
  X("modem.retry.max_dials", modem_retry_max_dials, int, "12",                                    \
    "Most calls placed per recipient; 1 = never retry.")                                         \
  X("modem.fallback_training_failures", modem_fallback_training_failures, int, "1",               \
    "Training failures before each fallback step: first to 9600 bps (V.29), then also ECM off.") \
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
  X("net.allowed_private_networks", net_allowed_private_networks, string, "",                      \
    "Comma-separated CIDR networks (e.g. `10.0.0.0/8,127.0.0.1/32`) that content_url fetches and " \
    "webhook deliveries may reach although the SSRF guard forbids private/loopback addresses "    \
    "(private deployments, tests). Empty: none.")                                                  \
  X("webhooks.enabled", webhooks_enabled, bool, "true",                                            \
    "Run the webhook notifier (workers/notify) in the gateway role.")                             \
  X("webhooks.max_age_seconds", webhooks_max_age_seconds, double, "86400",                         \
    "A webhook delivery is retried for this long after its first attempt, then dead-lettered.")  \
  X("webhooks.initial_backoff_seconds", webhooks_initial_backoff_seconds, double, "5",             \
    "Delay before the first retry of a failed webhook delivery; doubles per attempt.")           \
  X("webhooks.max_backoff_seconds", webhooks_max_backoff_seconds, double, "3600",                  \
    "Longest delay between two attempts of a webhook delivery.")                                  \
  X("webhooks.timeout_seconds", webhooks_timeout_seconds, double, "10",                            \
    "Time limit of one webhook POST (connect, redirects and answer).")                            \
  X("webhooks.finished_retention_hours", webhooks_finished_retention_hours, double, "72",          \
    "A delivered or dead-lettered webhook delivery is removed this long after it finished (the "  \
    "owner of its partition tombstones it on fax.webhook-deliveries; every node deletes its copy; " \
    "the delivery log is kept). Must exceed webhooks.max_age_seconds plus the 5 min replay "       \
    "tolerance.")                                                                                  \
  X("broadcast.max_recipients", broadcast_max_recipients, int, "100000",                           \
    "Most recipients of one POST /v1/broadcasts (422 above it).")                                 \
  X("broadcast.batch_size", broadcast_batch_size, int, "1000",                                     \
    "Jobs produced per bus batch when a rendered broadcast fans out.")                            \
  X("gateway.owner_mode", gateway_owner_mode, string, "off",                                       \
    "Tenant ownership across gateway nodes (seed 001): `off`, `redirect` (307 to the owner) or "   \
    "`proxy` (forward to the owner) for status and control requests of tenants owned elsewhere.") \
  X("gateway.advertise_url", gateway_advertise_url, string, "",                                    \
    "Base URL other nodes redirect/proxy to (http://host:port); also this node's id in the member " \
    "table fax.gateways. Empty: http://<gateway.listen>.")                                         \
  X("gateway.member_timeout_seconds", gateway_member_timeout_seconds, double, "5",                 \
    "A gateway node without a heartbeat for this long loses its tenants to the other nodes.")    \
  X("gateway.route_submissions", gateway_route_submissions, bool, "true",                          \
    "With gateway.owner_mode on: POST /v1/faxes is routed to the tenant's owner too, so its rate " \
    "limit holds for the cluster (one extra hop for uploads); false: any node accepts submissions.") \
  X("pricing.rates", pricing_rates, string, "",                                                   \
    "Prices for the cost in GET /v1/faxes/{id}: `[tenant@]prefix=per_page/per_minute`, comma-"    \
    "separated, longest E.164 prefix wins, `*` any number, tenant entries first; empty: no cost.") \
  X("pricing.currency", pricing_currency, string, "USD",                                           \
    "Currency code shown with costs (pricing.rates).")                                             \
  X("sim.received_dir", sim_received_dir, string, "",                                             \
    "Where the simulated far end stores received TIFFs; empty means <data_dir>/received.")       \
  X("sim.behaviours", sim_behaviours, string, "",                                                 \
    "Far-end behaviour per number, `+15551230001=busy;+15551230002=drop_after:2`, added to the "  \
    "built-in test numbers (docs/sim.md).")                                                       \
  X("sim.realtime", sim_realtime, bool, "false",                                                  \
    "Pace the simulated line in real time (20 ms frames) instead of as fast as possible.")       \
  X("t38.remote", t38_remote, string, "127.0.0.1:4560",                                          \
    "modem.line=t38: host:port of the T.38 endpoint (UDPTL over UDP) calls go to, e.g. "         \
    "`faxflow sink` (docs/t38.md).")                                                               \
  X("t38.routes", t38_routes, string, "",                                                         \
    "modem.line=t38: per-number endpoints overriding t38.remote, `number=host:port;...`.")       \
  X("t38.redundancy", t38_redundancy, int, "3",                                                   \
    "UDPTL redundancy: earlier IFP packets repeated in every datagram (0-8).")                   \
  X("t38.paced", t38_paced, bool, "true",                                                         \
    "T.38 pacing at the modem rate (true) or streaming without pacing (false, faster).")         \
  X("t38.answer_timeout_seconds", t38_answer_timeout_seconds, double, "30",                       \
    "modem.line=t38: a call the endpoint does not answer within this is no_answer.")              \
  X("t38.idle_timeout_seconds", t38_idle_timeout_seconds, double, "30",                           \
    "A T.38 call with no datagram from the peer for this long is hung up (network gone).")       \
  X("t38.media", t38_media, string, "t38",                                                        \
    "modem.line=t38: `t38` (UDPTL) or `audio` (lock-step 20 ms audio frames to the sink's sim "  \
    "far end, docs/t38.md).")                                                                      \
  X("t38.audio_realtime", t38_audio_realtime, bool, "false",                                      \
    "t38.media=audio: also pace the lock-step frames in real time.")

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
  if (config.claims_mode != "auto" && config.claims_mode != "on" && config.claims_mode != "off")
    return Status::Permanent(Code::kInvalidArgument, "claims.mode must be auto, on or off, not '" + config.claims_mode + "'");
  if (config.claims_heartbeat_ms < 1 || config.claims_expiry_ms <= config.claims_heartbeat_ms)
    return Status::Permanent(Code::kInvalidArgument, "claims.expiry_ms must be greater than claims.heartbeat_ms >= 1");
  if (config.webhooks_finished_retention_hours * 3600 <= config.webhooks_max_age_seconds + 300)
    return Status::Permanent(Code::kInvalidArgument,
                             "webhooks.finished_retention_hours must exceed webhooks.max_age_seconds + 300 s "
                             "(a delivery is kept past its retry window and the replay tolerance)");
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
