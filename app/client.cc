#include "app/client.h"

#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

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

}  // namespace

int ShowStatus(const std::string& server, const std::string& fax_id, bool json) {
  httplib::Client client(server);
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
  client.set_read_timeout(std::chrono::seconds(120));
  client.set_write_timeout(std::chrono::seconds(120));
  auto res = client.Post("/v1/faxes", items);
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
