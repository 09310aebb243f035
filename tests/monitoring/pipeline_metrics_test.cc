// What an operator reads off a running `faxflow all` (embedded bus, claims on, webhooks on):
//   - every worker loop beats: each component has a heartbeat age below its stall threshold and
//     the "heartbeats" readiness check passes (a stalled loop is covered with a manual clock in
//     health_test and by the alert's promtool test);
//   - faxflow_gateway_request_seconds observes every request with its route template, method and
//     status class (never the fax id).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tests/e2e/e2e_util.h"
#include "tests/support/support.h"

namespace faxflow::testing {
namespace {

using namespace std::chrono_literals;

TEST(PipelineMetrics, EveryWorkerLoopBeatsBelowItsStallThreshold) {
  TempDir dir("faxflow-beats");
  FaxflowAll app(dir.path(), {"claims.mode=on", "modem.channels=3"});
  const std::vector<std::string> components = {
      "imaging", "modem_channel",   "modem_jobs",      "modem_control",         "status",
      "ingest",  "claims",          "notify_consumer", "notify_dispatch",       "broadcasts",
      "books",   "follow_fax_keys", "lag_monitor",     "follow_fax_idempotency"};
  std::string missing;
  const bool all = Await(
      [&] {
        const auto m = HttpGet(app.port(), "/metrics");
        if (m.status != 200) return false;
        missing.clear();
        for (const auto& c : components) {
          const double threshold =
              MetricSum(m.body, "faxflow_worker_heartbeat_stall_threshold_seconds", {{"component", c}});
          const double age = MetricSum(m.body, "faxflow_worker_heartbeat_age_seconds", {{"component", c}});
          if (!(threshold >= 120) || !(age < threshold)) missing += " " + c;
        }
        return missing.empty();
      },
      30s, 200ms);
  EXPECT_TRUE(all) << "components not beating:" << missing;
  // A render may take the Ghostscript timeout (imaging.timeout_seconds=60) + 60 s between beats.
  EXPECT_EQ(ScrapeMetric(app.port(), "faxflow_worker_heartbeat_stall_threshold_seconds",
                         {{"component", "imaging"}}),
            120);
  EXPECT_TRUE(Await(
      [&] {
        return ScrapeMetric(app.port(), "faxflow_readiness_check_ok", {{"check", "heartbeats"}}) == 1;
      },
      10s));
  EXPECT_EQ(HttpGet(app.port(), "/readyz").status, 200);
}

TEST(PipelineMetrics, GatewayRequestSecondsObservesEveryRequestByRouteTemplate) {
  TempDir dir("faxflow-reqsec");
  FaxflowAll app(dir.path(), {"modem.channels=1"});
  const MetricLabels get_missing = {{"route", "/v1/faxes/{id}"}, {"method", "GET"}, {"code", "4xx"}};
  const double before = ScrapeMetric(app.port(), "faxflow_gateway_request_seconds_count", get_missing);
  ASSERT_FALSE(std::isnan(before));
  EXPECT_EQ(HttpGet(app.port(), "/v1/faxes/fax_doesnotexist").status, 404);
  EXPECT_EQ(HttpGet(app.port(), "/v1/faxes/fax_neither").status, 404);
  // Observed after the response is written: awaited.
  EXPECT_TRUE(Await(
      [&] {
        return ScrapeMetric(app.port(), "faxflow_gateway_request_seconds_count", get_missing) == before + 2;
      },
      10s))
      << ScrapeMetric(app.port(), "faxflow_gateway_request_seconds_count", get_missing);

  app.SubmitOk({DataFile("hello.txt")}, {"+15550100000"});
  const MetricLabels post = {{"route", "/v1/faxes"}, {"method", "POST"}, {"code", "2xx"}};
  EXPECT_TRUE(Await(
      [&] { return ScrapeMetric(app.port(), "faxflow_gateway_request_seconds_count", post) == 1; }, 10s));
  EXPECT_GT(ScrapeMetric(app.port(), "faxflow_gateway_request_seconds_sum", post), 0);
  // The histogram has buckets; the +Inf bucket counts the request too.
  EXPECT_EQ(ScrapeMetric(app.port(), "faxflow_gateway_request_seconds_bucket",
                         {{"route", "/v1/faxes"}, {"method", "POST"}, {"code", "2xx"}, {"le", "+Inf"}}),
            1);
  // No series carries a fax id.
  const auto m = HttpGet(app.port(), "/metrics");
  EXPECT_EQ(m.body.find("fax_doesnotexist"), std::string::npos);
}

}  // namespace
}  // namespace faxflow::testing
