#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "common/clock.h"
#include "common/config.h"
#include "common/ids.h"
#include "common/status.h"
#include "common/time_format.h"

namespace faxflow {
namespace {

Result<int> Half(int v) {
  if (v % 2) return Status::Permanent(Code::kInvalidArgument, "odd");
  return v / 2;
}
Result<int> Quarter(int v) {
  FF_ASSIGN_OR_RETURN(int h, Half(v));
  return Half(h);
}

TEST(StatusTest, CarriesCodeSeverityAndContext) {
  EXPECT_TRUE(Status::Ok().ok());
  Status s = Status::Retryable(Code::kUnavailable, "broker down").WithContext("produce");
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.retryable());
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_EQ(s.ToString(), "unavailable (retryable): produce: broker down");
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Quarter(6).status().permanent());
}

TEST(ConfigTest, DefaultsAreDocumentedAndParse) {
  Config c = DefaultConfig();
  EXPECT_EQ(c.bus_backend, "embedded");
  EXPECT_EQ(c.modem_channels, 4);
  for (const auto& k : ConfigKeys()) {
    EXPECT_FALSE(k.doc.empty()) << k.name;
    EXPECT_EQ(GetConfigValue(c, k.name).value_or("<missing>").empty() && !k.default_value.empty(), false)
        << k.name;
  }
  EXPECT_NE(ConfigReferenceMarkdown().find("`modem.channels`"), std::string::npos);
}

TEST(ConfigTest, LayersFileEnvironmentAndOverrides) {
  const std::string path = ::testing::TempDir() + "/faxflow-config-test.yaml";
  {
    std::ofstream out(path);
    out << "modem:\n  channels: 8\ngateway.listen: 0.0.0.0:9000\nkafka:\n  security.protocol: SASL_SSL\n";
  }
  setenv("FAXFLOW_IMAGING_WORKERS", "3", 1);
  auto c = LoadConfig(path, {{"modem.channels", "16"}});
  unsetenv("FAXFLOW_IMAGING_WORKERS");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->modem_channels, 16);                                    // override beats file
  EXPECT_EQ(c->gateway_listen, "0.0.0.0:9000");                        // dotted key in the file
  EXPECT_EQ(c->imaging_workers, 3);                                    // environment
  EXPECT_EQ(c->kafka_properties.at("security.protocol"), "SASL_SSL");  // passthrough
  EXPECT_EQ(c->sim_received_dir, c->data_dir + "/received");
}

TEST(ConfigTest, BadValuesAreTypedErrors) {
  EXPECT_EQ(LoadConfig(std::nullopt, {{"modem.channels", "many"}}, false).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(LoadConfig(std::nullopt, {{"no.such.key", "1"}}, false).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(LoadConfig(std::nullopt, {{"bus.backend", "carrier-pigeon"}}, false).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(LoadConfig(std::string("/nonexistent/faxflow.yaml"), {}, false).status().code(),
            Code::kInvalidArgument);
}

TEST(IdsTest, SortByTimeAndValidate) {
  const std::string a = NewId("fax", 1'700'000'000'000);
  const std::string b = NewId("fax", 1'700'000'000'001);
  EXPECT_LT(a, b);
  EXPECT_TRUE(LooksLikeId(a, "fax"));
  EXPECT_FALSE(LooksLikeId(a, "rcp"));
  EXPECT_FALSE(LooksLikeId("fax_../../etc/passwd", "fax"));
  EXPECT_NE(NewId("fax", 1), NewId("fax", 1));
}

TEST(ClockTest, ManualClockWakesSleepers) {
  ManualClock clock;
  const auto deadline = clock.Monotonic() + std::chrono::seconds(30);
  std::thread sleeper([&] { clock.SleepUntil(deadline); });
  clock.Advance(std::chrono::seconds(10));
  clock.Advance(std::chrono::seconds(20));
  sleeper.join();
  EXPECT_GE(clock.Monotonic(), deadline);
}

TEST(ClockTest, FormatUtcForReportsCoversAndWebhooks) {
  const int64_t ms = 1795352583042;  // 2026-11-22 13:03:03.042 UTC
  EXPECT_EQ(FormatUtc(ms), "2026-11-22 13:03:03 UTC");
  EXPECT_EQ(FormatUtc(ms, "%Y-%m-%d %H:%M UTC"), "2026-11-22 13:03 UTC");
  EXPECT_EQ(FormatUtc(ms, "%Y-%m-%dT%H:%M:%S.%f") + "Z", "2026-11-22T13:03:03.042Z");
  EXPECT_EQ(FormatUtc(7, "%H:%M:%S.%f"), "00:00:00.007");
}

}  // namespace
}  // namespace faxflow
