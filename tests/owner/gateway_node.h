// In-process gateway nodes (the gateway role of app/pipeline) for the owner-routing tests on Kafka
// (owner_cluster_kafka_test, owner_submissions_kafka_test): start a node on a free port, read a
// metric of its registry, find a tenant whose owner is a given node.
//
// Header-only: a test using it links faxflow_app and faxflow_test_support.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "app/pipeline.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/metrics.h"
#include "tests/api/api_client.h"
#include "tests/support/support.h"

namespace faxflow::testing {

struct GatewayNode {
  std::unique_ptr<Pipeline> pipeline;
  int port = 0;
  std::string url;  // http://127.0.0.1:<port>, its advertised URL
};

using Settings = std::vector<std::pair<std::string, std::string>>;

// A gateway-role pipeline in `dir` on a free port on the Kafka cluster at `bootstrap`, with the
// admin token `admin_token`, a 4 s member timeout, no concurrency cap and log level warn; `extra`
// (owner mode, limits, webhooks ...) is applied after those. Throws when it does not start.
inline GatewayNode StartGatewayNode(const std::string& dir, const std::string& bootstrap,
                                    const std::string& admin_token, const Settings& extra) {
  GatewayNode n;
  n.port = FreePort();
  n.url = "http://127.0.0.1:" + std::to_string(n.port);
  Settings sets = {{"data_dir", dir},
                   {"bus.backend", "kafka"},
                   {"kafka.bootstrap", bootstrap},
                   {"gateway.listen", "127.0.0.1:" + std::to_string(n.port)},
                   {"gateway.advertise_url", n.url},
                   {"gateway.member_timeout_seconds", "4"},
                   {"admin.listen", "127.0.0.1:0"},
                   {"gateway.admin_token", admin_token},
                   {"gateway.max_concurrent_requests", "0"},
                   {"log.level", "warn"}};
  sets.insert(sets.end(), extra.begin(), extra.end());
  auto config = LoadConfig(std::nullopt, sets, false);
  if (!config.ok()) throw std::runtime_error(config.status().ToString());
  Roles roles;
  roles.gateway = true;
  auto p = Pipeline::Start(*config, roles, SystemClock::Instance());
  if (!p.ok()) throw std::runtime_error(p.status().ToString());
  n.pipeline = std::move(*p);
  return n;
}

// A metric's value in a node's registry, `name` including its labels if any (0 when absent).
inline double Metric(const GatewayNode& n, const std::string& name) {
  const std::string text = SerializeMetrics(n.pipeline->registry());
  size_t pos = 0;
  while ((pos = text.find(name, pos)) != std::string::npos) {
    const bool line_start = pos == 0 || text[pos - 1] == '\n';
    const size_t after = pos + name.size();
    if (line_start && after < text.size() && text[after] == ' ') return std::stod(text.substr(after + 1));
    pos = after;
  }
  return 0;
}

// Creates an API key for `tenant` on `on` (admin API), waits (up to `timeout`) until it
// authenticates on `probe` (GET `probe_path`, so it reached probe's fax.keys table) and returns
// the key with the URL of the node that served that answer (X-Faxflow-Served-By): the tenant's
// owner. Throws when the key is refused or does not authenticate in time.
inline std::pair<std::string, std::string> KeyAndOwner(const GatewayNode& on, const GatewayNode& probe,
                                                       const std::string& admin_token, const std::string& tenant,
                                                       const std::string& probe_path,
                                                       std::chrono::milliseconds timeout) {
  auto created = ApiClient(on.port, admin_token).PostJson("/v1/admin/keys", nlohmann::json{{"tenant", tenant}});
  if (created.status != 201) throw std::runtime_error("key: " + std::to_string(created.status) + " " + created.body);
  const std::string key = created.json()["key"];
  ApiClient via(probe.port, key);
  ApiAnswer r;
  if (!Await(
          [&] {
            r = via.Get(probe_path);
            return r.status == 200;
          },
          timeout))
    throw std::runtime_error("the key does not authenticate on the other node: " + std::to_string(r.status) + " " +
                             r.body);
  return {key, r.header("X-Faxflow-Served-By")};
}

// A tenant whose owner is `owner`, with its API key: try i creates a key for tenant_name(i) on
// `owner` and keeps the tenant when a request through `other` was served by `owner`
// (KeyAndOwner). Throws after 40 tries. A node owns none of the 12 ownership slots in about 0.8%
// of runs with three nodes (random ports, rendezvous weights); a test whose two nodes play
// interchangeable parts should use TenantOwnedByEither.
inline std::pair<std::string, std::string> TenantOwnedBy(const GatewayNode& owner, const GatewayNode& other,
                                                         const std::string& admin_token,
                                                         const std::function<std::string(int)>& tenant_name,
                                                         const std::string& probe_path,
                                                         std::chrono::milliseconds timeout) {
  for (int i = 0; i < 40; ++i) {
    const std::string tenant = tenant_name(i);
    auto [key, served_by] = KeyAndOwner(owner, other, admin_token, tenant, probe_path, timeout);
    if (served_by == owner.url) return {tenant, key};
  }
  throw std::runtime_error("no tenant owned by " + owner.url + " in 40 tries");
}

struct OwnedTenant {
  std::string tenant, key;
  bool second_owns = false;  // the owner is `second` (else `first`)
};

// A tenant owned by `first` or by `second`, with its API key, and which of the two owns it.
// Throws after 40 tries (both nodes own no slot: about 2 in a million runs).
inline OwnedTenant TenantOwnedByEither(const GatewayNode& first, const GatewayNode& second,
                                       const std::string& admin_token,
                                       const std::function<std::string(int)>& tenant_name,
                                       const std::string& probe_path, std::chrono::milliseconds timeout) {
  for (int i = 0; i < 40; ++i) {
    const std::string tenant = tenant_name(i);
    auto [key, served_by] = KeyAndOwner(first, second, admin_token, tenant, probe_path, timeout);
    if (served_by == first.url) return {tenant, key, false};
    if (served_by == second.url) return {tenant, key, true};
  }
  throw std::runtime_error("no tenant owned by " + first.url + " or " + second.url + " in 40 tries");
}

}  // namespace faxflow::testing
