// faxflow: one binary, one subcommand per role. `faxflow --help` lists them.
#include <signal.h>

#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>

#include "app/broadcast_cli.h"
#include "app/client.h"
#include "app/demo.h"
#include "app/loadgen.h"
#include "app/pipeline.h"
#include "app/sink.h"
#include "common/config.h"
#include "common/log.h"
#include "topics/catalogue.h"
#include "topics/embedded/embedded_bus.h"

namespace {

using faxflow::Config;

struct ConfigFlags {
  std::string file;
  std::vector<std::string> sets;
  std::string kafka;
};

void AddConfigFlags(CLI::App* cmd, ConfigFlags& flags) {
  cmd->add_option("--config", flags.file, "YAML config file (see `faxflow config`)");
  cmd->add_option("--set", flags.sets, "Override a config key: --set key=value (repeatable)");
}

faxflow::Result<Config> BuildConfig(const ConfigFlags& flags) {
  std::vector<std::pair<std::string, std::string>> overrides;
  for (const auto& s : flags.sets) {
    const auto eq = s.find('=');
    if (eq == std::string::npos)
      return faxflow::Status::Permanent(faxflow::Code::kInvalidArgument, "--set takes key=value, got '" + s + "'");
    overrides.emplace_back(s.substr(0, eq), s.substr(eq + 1));
  }
  if (!flags.kafka.empty()) {
    overrides.emplace_back("bus.backend", "kafka");
    overrides.emplace_back("kafka.bootstrap", flags.kafka);
  }
  return faxflow::LoadConfig(flags.file.empty() ? std::nullopt : std::optional<std::string>(flags.file), overrides);
}

// Blocks SIGINT/SIGTERM in every thread (call before starting any), then waits for one.
void BlockSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}
int WaitForSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

int RunRoles(const ConfigFlags& flags, faxflow::Roles roles, const char* name) {
  auto config = BuildConfig(flags);
  if (!config.ok()) {
    std::cerr << "faxflow: " << config.status().ToString() << "\n";
    return 2;
  }
  faxflow::SetLogLevel(config->log_level);
  auto log = faxflow::Logger("app");
  BlockSignals();
  auto pipeline = faxflow::Pipeline::Start(*config, roles, faxflow::SystemClock::Instance());
  if (!pipeline.ok()) {
    FF_LOG_ERROR(log, "{} cannot start: {}", name, pipeline.status().ToString());
    return 1;
  }
  FF_LOG_INFO(log, "faxflow {} running ({} bus), data in {}, http on port {}", name,
              roles.uses_bus() ? config->bus_backend : "no", config->data_dir, (*pipeline)->http_port());
  const int sig = WaitForSignal();
  FF_LOG_INFO(log, "signal {}: stopping gracefully", sig);
  (*pipeline)->Stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"faxflow: outbound internet fax, from submission to the far end's last page"};
  app.require_subcommand(1);
  ConfigFlags flags;

  auto* all = app.add_subcommand("all", "Run every stage in this process (REST API, imaging, modem, status)");
  AddConfigFlags(all, flags);
  all->add_option("--kafka", flags.kafka, "Use the Kafka cluster at BOOTSTRAP instead of the embedded bus");

  auto* gateway = app.add_subcommand("gateway", "Run the REST gateway and status store (Kafka)");
  auto* imaging = app.add_subcommand("imaging", "Run an imaging worker (Kafka)");
  auto* modem = app.add_subcommand("modem", "Run a modem worker (Kafka)");
  auto* blobs = app.add_subcommand("blobs", "Serve the shared blob store over HTTP (blob.listen) for the other roles");
  AddConfigFlags(blobs, flags);
  for (auto* c : {gateway, imaging, modem}) {
    AddConfigFlags(c, flags);
    c->add_option("--kafka", flags.kafka, "Kafka bootstrap servers (or kafka.bootstrap)");
  }

  bool keep = false;
  auto* demo = app.add_subcommand("demo", "Send a bundled 4-page PDF end to end and show what the far end received");
  AddConfigFlags(demo, flags);
  demo->add_flag("--keep-running", keep, "Keep the pipeline running after the demo fax");

  faxflow::cli::SendArgs send_args;
  auto* send = app.add_subcommand("send", "Send documents through a running faxflow (REST)");
  send->add_option("--to", send_args.to, "Destination number (repeatable)")->required();
  send->add_option("files", send_args.files, "Documents: PDF, PostScript, TIFF, text")->required();
  send->add_flag("--normal", send_args.normal, "Normal resolution (204x98) instead of fine");
  send->add_flag("--wait", send_args.wait, "Wait for the outcome and print it");
  send->add_option("--server", send_args.server, "Gateway URL")->capture_default_str();
  send->add_option("--header", send_args.header_text, "Header text on every page");
  send->add_option("--tsi", send_args.tsi, "Transmitting subscriber id (<= 20 chars)");
  send->add_option("--priority", send_args.priority, "Priority 0-9");
  send->add_option("--api-key", send_args.api_key, "API key (default: $FAXFLOW_API_KEY)");
  send->add_option("--idempotency-key", send_args.idempotency_key, "Idempotency-Key (default: a random one)");

  std::string server = "http://127.0.0.1:8080";
  std::string fax_id;
  bool json = false;
  faxflow::loadgen::Options lg;
  auto* loadgen = app.add_subcommand("loadgen", "Drive a running faxflow with synthetic faxes; report latency per stage");
  loadgen->add_option("--server", lg.server, "Gateway URL")->capture_default_str();
  loadgen->add_option("--api-key", lg.api_key, "API key (default: $FAXFLOW_API_KEY)");
  loadgen->add_option("--via", lg.via, "rest (POST /v1/faxes) | ingest (fax.ingest, needs --kafka)")->capture_default_str();
  loadgen->add_option("--kafka", lg.kafka, "Kafka bootstrap: read stage events from the bus (and --via ingest)");
  loadgen->add_option("--events", lg.events, "bus (needs --kafka) | poll (GET /v1/faxes/{id}); default bus with --kafka");
  loadgen->add_option("--rate", lg.rate, "Submissions per second (0: as fast as possible)")->capture_default_str();
  loadgen->add_option("--duration", lg.duration_seconds, "Submit for this many seconds");
  loadgen->add_option("--count", lg.count, "Submit this many faxes");
  loadgen->add_option("--concurrency", lg.concurrency, "Sender threads")->capture_default_str();
  loadgen->add_option("--pages", lg.pages, "Pages per document, value=weight,...")->capture_default_str();
  loadgen->add_option("--recipients", lg.recipients, "Recipients per fax, value=weight,...")->capture_default_str();
  loadgen->add_option("--far-end", lg.far_end, "Sim far-end behaviours (docs/sim.md), name=weight,...")
      ->capture_default_str();
  loadgen->add_option("--doc-kind", lg.doc_kind, "ps (generated, rendered by gs) | tiff (--tiff-page repeated)")
      ->capture_default_str();
  loadgen->add_option("--tiff-page", lg.tiff_page, "A one-page fax TIFF for --doc-kind tiff")->capture_default_str();
  loadgen->add_option("--drain-timeout", lg.drain_timeout_seconds, "Seconds to wait for terminal states at the end")
      ->capture_default_str();
  loadgen->add_option("--poll-interval", lg.poll_interval_seconds, "Minimum seconds between polls of one fax")
      ->capture_default_str();
  loadgen->add_option("--seed", lg.seed, "Random seed of the mixes")->capture_default_str();
  loadgen->add_flag("--json", lg.json, "Print the report as one JSON object");

  faxflow::cli::BroadcastArgs bc_args;
  auto* broadcast = app.add_subcommand("broadcast", "Send one document set to every number of a CSV list, with a progress bar");
  broadcast->add_option("recipients", bc_args.recipients, "CSV with a header row and a 'to' column (other columns are per-recipient fields), or a JSON array")->required();
  broadcast->add_option("files", bc_args.files, "Documents: PDF, PostScript, TIFF, text")->required();
  broadcast->add_option("--server", bc_args.server, "Gateway URL")->capture_default_str();
  broadcast->add_option("--api-key", bc_args.api_key, "API key (default: $FAXFLOW_API_KEY)");
  broadcast->add_option("--header", bc_args.header_text, "Header text on every page");
  broadcast->add_option("--tsi", bc_args.tsi, "Transmitting subscriber id (<= 20 chars)");
  broadcast->add_option("--max-dials", bc_args.max_dials, "Calls placed per recipient at most (retry policy)");
  broadcast->add_option("--cover", bc_args.cover, "Per-recipient cover page template: basic or confidential");
  broadcast->add_option("--cover-field", bc_args.cover_fields,
                        "Shared cover field key=value (from_name, from_company, from_phone, subject, message); "
                        "repeatable. Each recipient's name/company columns fill to_name/to_company");
  broadcast->add_option("--results", bc_args.results, "Write the per-recipient results CSV here when done");
  broadcast->add_flag("--no-wait", bc_args.no_wait, "Print the broadcast id and return at once");

  faxflow::cli::WebhooksArgs wh_args;
  auto* webhooks = app.add_subcommand("webhooks", "Manage webhook endpoints: create | list | show | rotate | delete | verify");
  webhooks->add_option("action", wh_args.action, "create | list | show | rotate | delete | verify")
      ->required()
      ->check(CLI::IsMember({"create", "list", "show", "rotate", "delete", "verify"}));
  webhooks->add_option("id", wh_args.id, "Endpoint id (show, rotate, delete)");
  webhooks->add_option("--url", wh_args.url, "Endpoint URL (create)");
  webhooks->add_option("--event", wh_args.events, "Subscribed event type, repeatable (create; default all)");
  webhooks->add_option("--server", wh_args.server, "Gateway URL")->capture_default_str();
  webhooks->add_option("--api-key", wh_args.api_key, "API key (default: $FAXFLOW_API_KEY)");
  webhooks->add_option("--secret", wh_args.secret, "verify: the endpoint secret (whsec_...)");
  webhooks->add_option("--webhook-id", wh_args.webhook_id, "verify: the webhook-id header");
  webhooks->add_option("--timestamp", wh_args.timestamp, "verify: the webhook-timestamp header");
  webhooks->add_option("--signature", wh_args.signature, "verify: the webhook-signature header");
  webhooks->add_option("--body", wh_args.body_file, "verify: file with the raw request body");

  auto* status = app.add_subcommand("status", "Show the status of a fax");
  status->add_option("id", fax_id, "Fax id")->required();
  status->add_option("--server", server, "Gateway URL")->capture_default_str();
  status->add_flag("--json", json, "Print the raw JSON");
  std::string status_api_key;
  status->add_option("--api-key", status_api_key, "API key (default: $FAXFLOW_API_KEY)");

  faxflow::cli::KeysArgs keys_args;
  auto* keys = app.add_subcommand("keys", "Create, list or revoke API keys of tenants (docs/api.md)");
  keys->add_option("action", keys_args.action, "create | list | revoke")
      ->required()
      ->check(CLI::IsMember({"create", "list", "revoke"}));
  keys->add_option("key_id", keys_args.key_id, "Key id to revoke");
  keys->add_option("--tenant", keys_args.tenant, "Tenant (create: required; list: filter)");
  keys->add_option("--name", keys_args.name, "A label for the key (create)");
  keys->add_option("--server", keys_args.server, "Gateway URL: use its admin API instead of the bus");
  keys->add_option("--admin-token", keys_args.admin_token, "gateway.admin_token (default: $FAXFLOW_ADMIN_TOKEN)");
  AddConfigFlags(keys, flags);
  keys->add_option("--kafka", flags.kafka, "Kafka bootstrap servers (without --server)");

  bool markdown = false;
  auto* config_cmd = app.add_subcommand("config", "Print every configuration key with its default and meaning");
  config_cmd->add_flag("--markdown", markdown, "As the Markdown reference (docs/configuration.md)");

  auto* topics = app.add_subcommand("topics", "Create or describe the topics of the catalogue");
  std::string topics_action = "describe";
  topics->add_option("action", topics_action, "create | describe")->check(CLI::IsMember({"create", "describe"}));
  AddConfigFlags(topics, flags);
  topics->add_option("--kafka", flags.kafka, "Kafka bootstrap servers");

  faxflow::SinkArgs sink_args;
  auto* sink = app.add_subcommand("sink", "Run a receiving fax endpoint (T.38 over UDP) that stores what it receives");
  sink->add_option("--listen", sink_args.listen, "T.38 UDP host:port (port 0: any)")->capture_default_str();
  sink->add_option("--http", sink_args.http, "Status endpoint host:port (port 0: any)")->capture_default_str();
  sink->add_option("--dir", sink_args.dir, "Where received faxes are stored")->capture_default_str();
  sink->add_option("--ident", sink_args.ident, "CSI (<= 20 chars)")->capture_default_str();
  sink->add_option("--behaviours", sink_args.behaviours, "Per-number behaviours (sim.behaviours syntax)");
  sink->add_option("--redundancy", sink_args.redundancy, "UDPTL redundancy depth (0-8)")->capture_default_str();
  sink->add_option("--paced", sink_args.paced, "T.38 pacing (true) or streaming (false)")->capture_default_str();
  sink->add_option("--idle-timeout", sink_args.idle_timeout_seconds, "Hang up a call silent this long (s)")
      ->capture_default_str();
  sink->add_option("--log-level", sink_args.log_level, "trace|debug|info|warn|error")->capture_default_str();

  CLI11_PARSE(app, argc, argv);

  if (*all) return RunRoles(flags, faxflow::Roles::All(), "all");
  if (*gateway) return RunRoles(flags, {true, false, false}, "gateway");
  if (*imaging) return RunRoles(flags, {false, true, false}, "imaging");
  if (*modem) return RunRoles(flags, {false, false, true}, "modem");
  if (*blobs) return RunRoles(flags, {false, false, false, true}, "blobs");
  if (*demo) {
    auto config = BuildConfig(flags);
    if (!config.ok()) {
      std::cerr << "faxflow: " << config.status().ToString() << "\n";
      return 2;
    }
    BlockSignals();
    return faxflow::RunDemo(*config, keep);
  }
  if (*send) {
    send_args.server = send_args.server;
    return faxflow::cli::Send(send_args);
  }
  if (*sink) {
    BlockSignals();
    return faxflow::RunSink(sink_args);
  }
  if (*status) return faxflow::cli::ShowStatus(server, fax_id, json, status_api_key);
  if (*broadcast) return faxflow::cli::Broadcast(bc_args);
  if (*webhooks) return faxflow::cli::Webhooks(wh_args);
  if (*keys) {
    if (keys_args.action == "create" && keys_args.tenant.empty()) {
      std::cerr << "faxflow: keys create needs --tenant\n";
      return 2;
    }
    if (keys_args.action == "revoke" && keys_args.key_id.empty()) {
      std::cerr << "faxflow: keys revoke needs a key id\n";
      return 2;
    }
    if (!keys_args.server.empty()) return faxflow::cli::Keys(keys_args, nullptr);
    auto config = BuildConfig(flags);
    if (!config.ok()) {
      std::cerr << "faxflow: " << config.status().ToString() << "\n";
      return 2;
    }
    auto bus = faxflow::OpenConfiguredBus(*config, nullptr);
    if (!bus.ok()) {
      std::cerr << "faxflow: " << bus.status().ToString()
                << " (is faxflow running on this data_dir? then use --server URL --admin-token)\n";
      return 1;
    }
    faxflow::Status t = (*bus)->EnsureTopics(faxflow::bus::Catalogue());
    if (!t.ok()) {
      std::cerr << "faxflow: " << t.ToString() << "\n";
      return 1;
    }
    return faxflow::cli::Keys(keys_args, bus->get());
  }
  if (*loadgen) {
    if (lg.api_key.empty()) {
      if (const char* key = std::getenv("FAXFLOW_API_KEY")) lg.api_key = key;
    }
    return faxflow::loadgen::Run(lg);
  }
  if (*config_cmd) {
    if (markdown) {
      std::cout << faxflow::ConfigReferenceMarkdown();
    } else {
      for (const auto& k : faxflow::ConfigKeys())
        std::cout << k.name << " = " << k.default_value << "\n    " << k.doc << "\n";
    }
    return 0;
  }
  if (*topics) {
    auto config = BuildConfig(flags);
    if (!config.ok()) {
      std::cerr << "faxflow: " << config.status().ToString() << "\n";
      return 2;
    }
    auto bus = faxflow::OpenConfiguredBus(*config, nullptr);
    if (!bus.ok()) {
      std::cerr << "faxflow: " << bus.status().ToString() << "\n";
      return 1;
    }
    if (topics_action == "create") {
      faxflow::Status s = (*bus)->EnsureTopics(faxflow::bus::Catalogue());
      if (!s.ok()) {
        std::cerr << "faxflow: " << s.ToString() << "\n";
        return 1;
      }
    }
    for (const auto& t : faxflow::bus::Catalogue()) {
      auto n = (*bus)->PartitionCount(t.name);
      std::cout << t.name << "  partitions=" << (n.ok() ? std::to_string(*n) : "missing (" + n.status().message() + ")")
                << "  replication=" << t.replication_factor << (t.compacted ? "  compacted" : "")
                << "  max.message.bytes=" << t.max_message_bytes << "\n    " << t.doc << "\n";
    }
    return 0;
  }
  return 0;
}
