#include "app/broadcast_cli.h"

#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "app/client.h"
#include "workers/notify/signature.h"

namespace faxflow::cli {
namespace {

using nlohmann::json;

bool ReadFile(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

std::string Basename(const std::string& p) {
  const auto s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

std::unique_ptr<httplib::Client> Connect(const std::string& server, const std::string& api_key) {
  auto c = std::make_unique<httplib::Client>(server);
  c->set_connection_timeout(5, 0);
  c->set_read_timeout(120, 0);
  c->set_write_timeout(120, 0);
  c->set_follow_location(true);  // owner redirect (307) to the node that owns the tenant
  const std::string key = ApiKeyOrEnv(api_key);
  if (!key.empty()) c->set_bearer_token_auth(key);
  return c;
}

std::string ErrorText(const httplib::Result& r) {
  if (!r) return "cannot reach the gateway: " + httplib::to_string(r.error());
  auto j = json::parse(r->body, nullptr, false);
  if (!j.is_discarded() && j.contains("error"))
    return "HTTP " + std::to_string(r->status) + ": " + j["error"].value("message", r->body);
  return "HTTP " + std::to_string(r->status) + ": " + r->body;
}

void Bar(const json& p, bool tty) {
  const int64_t total = p.value("recipients", int64_t{0});
  const int64_t done = p.value("terminal", int64_t{0});
  const int width = 30;
  const int filled = total ? static_cast<int>(done * width / total) : width;
  std::string bar = "[" + std::string(static_cast<size_t>(filled), '#') +
                    std::string(static_cast<size_t>(width - filled), '.') + "]";
  std::string counts;
  for (auto it = p["counts"].begin(); it != p["counts"].end(); ++it)
    counts += " " + it.key() + "=" + std::to_string(it->get<int64_t>());
  std::cerr << (tty ? "\r" : "") << bar << " " << done << "/" << total << " " << p.value("state", "")
            << counts << (tty ? "   " : "\n") << std::flush;
}

}  // namespace

int Broadcast(const BroadcastArgs& args) {
  httplib::MultipartFormDataItems items;
  std::string recipients;
  if (!ReadFile(args.recipients, recipients)) {
    std::cerr << "faxflow: cannot read " << args.recipients << "\n";
    return 2;
  }
  items.push_back({"recipients", recipients, Basename(args.recipients), "text/csv"});
  for (const auto& f : args.files) {
    std::string content;
    if (!ReadFile(f, content)) {
      std::cerr << "faxflow: cannot read " << f << "\n";
      return 2;
    }
    items.push_back({"file", content, Basename(f), "application/octet-stream"});
  }
  json options = json::object();
  if (!args.header_text.empty()) options["header_text"] = args.header_text;
  if (!args.tsi.empty()) options["tsi"] = args.tsi;
  if (args.max_dials > 0) options["max_dials"] = args.max_dials;
  if (!args.cover.empty() || !args.cover_fields.empty()) {
    json fields = json::object();
    for (const auto& kv : args.cover_fields) {
      const auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) {
        std::cerr << "faxflow: --cover-field takes key=value (from_name=Acme), got '" << kv << "'\n";
        return 2;
      }
      fields[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    options["cover"] = {{"template", args.cover.empty() ? "basic" : args.cover}, {"fields", fields}};
  }
  if (!options.empty()) items.push_back({"options", options.dump(), "", "application/json"});

  auto client = Connect(args.server, args.api_key);
  auto res = client->Post("/v1/broadcasts", items);
  if (!res || res->status != 202) {
    std::cerr << "faxflow: broadcast refused: " << ErrorText(res) << "\n";
    return 1;
  }
  const auto accepted = json::parse(res->body);
  const std::string id = accepted.at("id");
  std::cout << id << "\n" << std::flush;
  std::cerr << "broadcast " << id << ": " << accepted.value("recipients", 0) << " recipients accepted\n";
  if (args.no_wait) return 0;

  const bool tty = isatty(STDERR_FILENO);
  json p;
  for (;;) {
    auto r = client->Get("/v1/broadcasts/" + id);
    if (!r || r->status != 200) {
      std::cerr << "\nfaxflow: progress: " << ErrorText(r) << " (retrying)\n";
    } else {
      p = json::parse(r->body);
      Bar(p, tty);
      const std::string state = p.value("state", "");
      if (state == "done" || (state == "failed" && p.value("terminal", 0) == p.value("recipients", 0))) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(args.poll_seconds * 1000)));
  }
  if (tty) std::cerr << "\n";
  if (!args.results.empty()) {
    auto r = client->Get("/v1/broadcasts/" + id + "/results.csv");
    if (!r || r->status != 200) {
      std::cerr << "faxflow: results: " << ErrorText(r) << "\n";
      return 1;
    }
    std::ofstream(args.results, std::ios::binary) << r->body;
    std::cerr << "results written to " << args.results << "\n";
  }
  std::cout << p.dump(2) << "\n";
  return p.value("state", "") == "done" ? 0 : 1;
}

int Webhooks(const WebhooksArgs& args) {
  if (args.action == "verify") {
    std::string body;
    if (!ReadFile(args.body_file, body)) {
      std::cerr << "faxflow: cannot read " << args.body_file << "\n";
      return 2;
    }
    const int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    Status s = notify::Verify({args.secret}, args.webhook_id, args.timestamp, args.signature, body, now);
    std::cout << (s.ok() ? "valid" : s.message()) << "\n";
    return s.ok() ? 0 : 1;
  }
  auto client = Connect(args.server, args.api_key);
  auto call = [&]() -> httplib::Result {
    if (args.action == "create") {
      json body{{"url", args.url}};
      if (!args.events.empty()) body["events"] = args.events;
      return client->Post("/v1/webhooks/endpoints", body.dump(), "application/json");
    }
    if (args.action == "list") return client->Get("/v1/webhooks/endpoints");
    if (args.action == "show") return client->Get("/v1/webhooks/endpoints/" + args.id);
    if (args.action == "rotate")
      return client->Post("/v1/webhooks/endpoints/" + args.id + "/rotate", "", "application/json");
    return client->Delete("/v1/webhooks/endpoints/" + args.id);
  };
  httplib::Result r = call();
  if (!r || r->status >= 300) {
    std::cerr << "faxflow: " << ErrorText(r) << "\n";
    return 1;
  }
  std::cout << (r->body.empty() ? "ok\n" : r->body);
  return 0;
}

}  // namespace faxflow::cli
