#include "app/client.h"

#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <cstdlib>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "producers/gateway/api_keys.h"

namespace faxflow::cli {
namespace {

bool ReadFile(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

std::string Basename(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

void PrintStatus(const nlohmann::json& j) {
  std::cout << "fax " << j.value("id", "") << ": " << j.value("state", "") << " (" << j.value("pages", 0)
            << " pages)\n";
  if (j.contains("error")) std::cout << "  error: " << j["error"].get<std::string>() << "\n";
  for (const auto& r : j["recipients"]) {
    std::cout << "  " << r.value("to", "") << "  " << r.value("state", "");
    const std::string reason = r.value("reason", "");
    if (!reason.empty()) std::cout << " (" << reason << ")";
    std::cout << "  pages " << r.value("pages_sent", 0) << "/" << r.value("pages_total", 0) << "  attempts "
              << r.value("attempts", 0);
    if (r.contains("detail")) std::cout << "  " << r["detail"].get<std::string>();
    std::cout << "\n";
  }
}

void SetAuth(httplib::Client& client, const std::string& api_key) {
  if (!api_key.empty()) client.set_bearer_token_auth(api_key);
}

}  // namespace

std::string ApiKeyOrEnv(const std::string& flag) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv("FAXFLOW_API_KEY");
  return env != nullptr ? env : "";
}

int ShowStatus(const std::string& server, const std::string& fax_id, bool json, const std::string& api_key) {
  httplib::Client client(server);
  SetAuth(client, ApiKeyOrEnv(api_key));
  client.set_read_timeout(std::chrono::seconds(30));
  auto res = client.Get(("/v1/faxes/" + fax_id).c_str());
  if (!res) {
    std::cerr << "faxflow: cannot reach " << server << ": " << httplib::to_string(res.error()) << "\n";
    return 1;
  }
  if (res->status != 200) {
    std::cerr << "faxflow: " << res->status << " " << res->body;
    return 1;
  }
  if (json) {
    std::cout << res->body;
  } else {
    PrintStatus(nlohmann::json::parse(res->body));
  }
  return 0;
}

int Send(const SendArgs& args) {
  httplib::MultipartFormDataItems items;
  for (const auto& path : args.files) {
    std::string content;
    if (!ReadFile(path, content)) {
      std::cerr << "faxflow: cannot read " << path << "\n";
      return 1;
    }
    items.push_back({"file", std::move(content), Basename(path), "application/octet-stream"});
  }
  for (const auto& to : args.to) items.push_back({"to", to, "", ""});
  nlohmann::json options = nlohmann::json::object();
  if (args.normal) options["resolution"] = "normal";
  if (!args.header_text.empty()) options["header_text"] = args.header_text;
  if (!args.tsi.empty()) options["tsi"] = args.tsi;
  if (args.priority >= 0) options["priority"] = args.priority;
  if (!options.empty()) items.push_back({"options", options.dump(), "", "application/json"});

  httplib::Client client(args.server);
  SetAuth(client, ApiKeyOrEnv(args.api_key));
  client.set_read_timeout(std::chrono::seconds(120));
  client.set_write_timeout(std::chrono::seconds(120));
  // One Idempotency-Key per invocation: a retry after a lost answer cannot create a second fax.
  const std::string key = args.idempotency_key.empty() ? "cli-" + RandomHex(16) : args.idempotency_key;
  const httplib::Headers headers = {{"Idempotency-Key", key}};
  httplib::Result res = client.Post("/v1/faxes", headers, items);
  for (int retry = 0; retry < 5 && (!res || res->status == 409 || res->status == 503); ++retry) {
    std::this_thread::sleep_for(std::chrono::seconds(1 << retry));  // client backoff between retries
    res = client.Post("/v1/faxes", headers, items);
  }
  if (!res) {
    std::cerr << "faxflow: cannot reach " << args.server << ": " << httplib::to_string(res.error())
              << " (is `faxflow all` running?)\n";
    return 1;
  }
  if (res->status != 202) {
    std::cerr << "faxflow: rejected (" << res->status << "): " << res->body;
    return 1;
  }
  const auto accepted = nlohmann::json::parse(res->body);
  const std::string id = accepted.value("id", "");
  std::cout << "accepted " << id << "\n";
  if (!args.wait) return 0;

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(args.wait_timeout_seconds);
  std::string last_state;
  while (std::chrono::steady_clock::now() < deadline) {
    auto st = client.Get(("/v1/faxes/" + id).c_str());
    if (st && st->status == 200) {
      const auto j = nlohmann::json::parse(st->body);
      const std::string state = j.value("state", "");
      if (state != last_state) {
        std::cerr << "  " << state << "\n";
        last_state = state;
      }
      if (j.value("done", false)) {
        PrintStatus(j);
        return state == "delivered" ? 0 : 3;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));  // client-side polling interval
  }
  std::cerr << "faxflow: gave up waiting for " << id << " after " << args.wait_timeout_seconds << " s\n";
  return 1;
}

}  // namespace faxflow::cli

namespace faxflow::cli {

int Keys(const KeysArgs& args, bus::Bus* bus) {
  auto print = [](const nlohmann::json& k) {
    std::cout << k.value("key_id", "") << "  tenant=" << k.value("tenant", "") << "  name=" << k.value("name", "")
              << (k.value("revoked", false) ? "  REVOKED" : "") << "\n";
  };
  if (!args.server.empty()) {
    std::string token = args.admin_token;
    if (token.empty() && std::getenv("FAXFLOW_ADMIN_TOKEN") != nullptr) token = std::getenv("FAXFLOW_ADMIN_TOKEN");
    httplib::Client client(args.server);
    client.set_bearer_token_auth(token);
    httplib::Result res =
        args.action == "create"
            ? client.Post("/v1/admin/keys", nlohmann::json{{"tenant", args.tenant}, {"name", args.name}}.dump(),
                          "application/json")
        : args.action == "list"
            ? client.Get(("/v1/admin/keys" + (args.tenant.empty() ? "" : "?tenant=" + args.tenant)).c_str())
            : client.Delete(("/v1/admin/keys/" + args.key_id).c_str());
    if (!res) {
      std::cerr << "faxflow: cannot reach " << args.server << ": " << httplib::to_string(res.error()) << "\n";
      return 1;
    }
    if (res->status >= 300) {
      std::cerr << "faxflow: " << res->status << " " << res->body;
      return 1;
    }
    if (args.action == "create") {
      const auto j = nlohmann::json::parse(res->body);
      std::cout << j.value("key", "") << "\n";
      std::cerr << "key id " << j.value("key_id", "") << " for tenant " << j.value("tenant", "")
                << " (shown once: only its hash is stored)\n";
    } else if (args.action == "list") {
      for (const auto& k : nlohmann::json::parse(res->body)["keys"]) print(k);
    } else {
      std::cerr << "revoked " << args.key_id << "\n";
    }
    return 0;
  }
  if (bus == nullptr) {
    std::cerr << "faxflow: keys needs --server or a bus\n";
    return 1;
  }
  ApiKeyStore store(*bus, SystemClock::Instance());
  if (args.action == "create") {
    auto created = CreateApiKeyOnBus(*bus, SystemClock::Instance(), args.tenant, args.name);
    if (!created.ok()) {
      std::cerr << "faxflow: " << created.status().ToString() << "\n";
      return 1;
    }
    std::cout << created->second << "\n";
    std::cerr << "key id " << created->first.key_id << " for tenant " << args.tenant
              << " (shown once: only its hash is stored)\n";
    return 0;
  }
  Status s = store.Start();
  if (!s.ok()) {
    std::cerr << "faxflow: " << s.ToString() << "\n";
    return 1;
  }
  if (args.action == "list") {
    for (const auto& r : store.List(args.tenant))
      print(nlohmann::json{{"key_id", r.key_id}, {"tenant", r.tenant}, {"name", r.name}, {"revoked", r.revoked_at_ms != 0}});
    return 0;
  }
  s = store.Revoke(args.key_id);
  if (!s.ok()) {
    std::cerr << "faxflow: " << s.ToString() << "\n";
    return 1;
  }
  std::cerr << "revoked " << args.key_id << "\n";
  return 0;
}

}  // namespace faxflow::cli
