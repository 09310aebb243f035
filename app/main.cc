// faxflow: one binary, one subcommand per role. `faxflow --help` lists them.
#include <signal.h>

#include <iostream>

#include <CLI/CLI.hpp>

#include "app/client.h"
#include "app/demo.h"
#include "app/pipeline.h"
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

  std::string server = "http://127.0.0.1:8080";
  std::string fax_id;
  bool json = false;
  auto* status = app.add_subcommand("status", "Show the status of a fax");
  status->add_option("id", fax_id, "Fax id")->required();
  status->add_option("--server", server, "Gateway URL")->capture_default_str();
  status->add_flag("--json", json, "Print the raw JSON");

  bool markdown = false;
  auto* config_cmd = app.add_subcommand("config", "Print every configuration key with its default and meaning");
  config_cmd->add_flag("--markdown", markdown, "As the Markdown reference (docs/configuration.md)");

  auto* topics = app.add_subcommand("topics", "Create or describe the topics of the catalogue");
  std::string topics_action = "describe";
  topics->add_option("action", topics_action, "create | describe")->check(CLI::IsMember({"create", "describe"}));
  AddConfigFlags(topics, flags);
  topics->add_option("--kafka", flags.kafka, "Kafka bootstrap servers");

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
  if (*status) return faxflow::cli::ShowStatus(server, fax_id, json);
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
