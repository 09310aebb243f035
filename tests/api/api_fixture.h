// A `faxflow all` pipeline in this process with API keys on, an admin token, and two tenants'
// keys: the REST API as customers use it, on the real pipeline (Ghostscript, SpanDSP over the
// simulated line, RocksDB stores). The bus is the embedded default; a test binary compiled with
// FAXFLOW_API_TEST_KAFKA (api_kafka_suite_test) runs the same tests on a private single-node
// Kafka broker that the first pipeline starts and the process stops at exit.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "app/pipeline.h"
#include "common/clock.h"
#include "common/config.h"
#include "tests/api/api_client.h"
#include "tests/support/support.h"
#include "workers/notify/signature.h"

namespace faxflow::testing {

// Standard base64, as the API expects in content_base64 (the webhook signer's encoder).
inline std::string Base64(const std::string& in) { return notify::Base64Encode(in); }

// The bus settings of every pipeline this test binary starts (see the file comment).
inline std::vector<std::pair<std::string, std::string>> ApiBusConfig() {
#ifdef FAXFLOW_API_TEST_KAFKA
  return {{"bus.backend", "kafka"},
          {"kafka.bootstrap", SharedPrivateKafkaBroker("faxflow-api-kafka").bootstrap()}};
#else
  return {};
#endif
}

class EmbeddedApi {
 public:
  static constexpr const char* kAdminToken = "test-admin-token";

  explicit EmbeddedApi(std::vector<std::pair<std::string, std::string>> extra = {}) {
    std::vector<std::pair<std::string, std::string>> sets = {{"data_dir", dir_.path()},
                                                             {"gateway.listen", "127.0.0.1:0"},
                                                             {"admin.listen", "127.0.0.1:0"},
                                                             {"gateway.auth", "keys"},
                                                             {"gateway.admin_token", kAdminToken},
                                                             {"gateway.rate_limit_per_second", "0"},
                                                             {"gateway.max_concurrent_requests", "0"},
                                                             {"log.level", "warn"}};
    const auto bus = ApiBusConfig();
    sets.insert(sets.end(), bus.begin(), bus.end());
    sets.insert(sets.end(), extra.begin(), extra.end());
    auto config = LoadConfig(std::nullopt, sets, false);
    if (!config.ok()) throw std::runtime_error(config.status().ToString());
    auto p = Pipeline::Start(*config, Roles::All(), SystemClock::Instance());
    if (!p.ok()) throw std::runtime_error(p.status().ToString());
    pipeline_ = std::move(*p);
  }
  ~EmbeddedApi() { pipeline_->Stop(); }

  int port() const { return pipeline_->http_port(); }
  Pipeline& pipeline() { return *pipeline_; }
  ApiClient Admin() const { return ApiClient(port(), kAdminToken); }
  ApiClient Anonymous() const { return ApiClient(port()); }
  // A new key of `tenant` (admin API); the client uses it.
  ApiClient Tenant(const std::string& tenant) const {
    auto a = Admin().PostJson("/v1/admin/keys", nlohmann::json{{"tenant", tenant}, {"name", "test"}});
    if (a.status != 201) throw std::runtime_error("key creation failed: " + a.body);
    return ApiClient(port(), a.json()["key"].get<std::string>());
  }
  const std::string& dir() const { return dir_.path(); }

 private:
  TempDir dir_{"faxflow-api"};
  std::unique_ptr<Pipeline> pipeline_;
};

}  // namespace faxflow::testing
