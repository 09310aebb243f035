// `faxflow loadgen --count 5` against a real `faxflow all` (embedded bus, sim line): every
// submission is accepted, every recipient reaches a terminal state, and the report's counts
// and per-stage latencies agree with what was sent.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/e2e/e2e_util.h"
#include "tests/support/support.h"

namespace faxflow::testing {
namespace {

struct Output {
  int exit_code = -1;
  std::string stdout_text;
};

// Runs a command through the shell; stdout captured, stderr to `stderr_path`.
Output RunCapture(const std::string& command, const std::string& stderr_path) {
  Output out;
  FILE* pipe = ::popen((command + " 2>" + stderr_path).c_str(), "r");
  if (pipe == nullptr) return out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) out.stdout_text.append(buf.data(), n);
  const int status = ::pclose(pipe);
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

TEST(LoadgenSmoke, CountFiveAgainstFaxflowAll) {
  TempDir dir;
  // API keys on (the product default), no rate limit, and one dial per recipient so a busy
  // number ends as failed/busy at once instead of retrying.
  FaxflowAll all(dir.path() + "/data", {"gateway.auth=keys", "gateway.admin_token=smoke-admin",
                                        "gateway.rate_limit_per_second=0", "modem.retry.max_dials=1"});
  const std::string server = "http://127.0.0.1:" + std::to_string(all.port());
  const Output key = RunCapture(
      FaxflowBinary() + " keys create --tenant loadgen --server " + server + " --admin-token smoke-admin",
      dir.path() + "/keys.stderr");
  ASSERT_EQ(key.exit_code, 0) << ReadFileOrDie(dir.path() + "/keys.stderr");
  const std::string api_key = key.stdout_text.substr(0, key.stdout_text.find('\n'));
  ASSERT_EQ(api_key.rfind("ffk_", 0), 0u) << key.stdout_text;

  // Without the key every submission is rejected, and the report says so.
  const Output denied = RunCapture(FaxflowBinary() + " loadgen --server " + server + " --count 1 --json",
                                   dir.path() + "/denied.stderr");
  EXPECT_EQ(denied.exit_code, 3) << denied.stdout_text;
  EXPECT_EQ(nlohmann::json::parse(denied.stdout_text)["rejected"], 1) << denied.stdout_text;

  const std::string cmd = "FAXFLOW_API_KEY=" + api_key + " " + FaxflowBinary() + " loadgen --server " +
                          server +
                          " --count 5 --concurrency 2 --pages 1=2,3=1 --recipients 1=1,2=1"
                          " --far-end answer=3,busy=1 --seed 3 --drain-timeout 150 --json";
  const std::string err = dir.path() + "/loadgen.stderr";
  const Output out = RunCapture(cmd, err);
  const std::string progress = ReadFileOrDie(err);
  ASSERT_EQ(out.exit_code, 0) << "stdout:\n" << out.stdout_text << "\nstderr:\n" << progress;

  const auto report = nlohmann::json::parse(out.stdout_text);
  EXPECT_EQ(report["submitted"], 5);
  EXPECT_EQ(report["accepted"], 5);
  EXPECT_EQ(report["rejected"], 0);
  EXPECT_EQ(report["errors"], 0);
  EXPECT_EQ(report["unfinished"], 0);
  const int recipients = report["recipients"].get<int>();
  EXPECT_GE(recipients, 5);
  EXPECT_LE(recipients, 10);
  EXPECT_EQ(report["terminal"], recipients);
  int by_state = 0;
  for (const auto& [state, n] : report["states"].items()) {
    EXPECT_TRUE(state == "delivered" || state == "failed") << state;
    by_state += n.get<int>();
  }
  EXPECT_EQ(by_state, recipients);
  EXPECT_GT(report["states"].value("delivered", 0), 0);

  // Stage counts: one accepted and one rendered per fax, one terminal per recipient; latencies
  // are ordered accepted <= rendered <= terminal.
  const auto& st = report["stages"];
  EXPECT_EQ(st["accepted"]["n"], 5);
  EXPECT_EQ(st["rendered"]["n"], 5);
  EXPECT_EQ(st["terminal"]["n"], recipients);
  EXPECT_EQ(st["queued"]["n"], 0) << "not observable by polling";
  EXPECT_GT(st["accepted"]["p50_ms"].get<double>(), 0);
  EXPECT_LE(st["accepted"]["max_ms"].get<double>(), st["terminal"]["max_ms"].get<double>());
  EXPECT_LE(st["rendered"]["p50_ms"].get<double>(), st["terminal"]["max_ms"].get<double>());
  EXPECT_GT(report["throughput"]["accepted_faxes_per_s"].get<double>(), 0);

  // Progress went to stderr while it ran.
  EXPECT_NE(progress.find("loadgen "), std::string::npos) << progress;
  EXPECT_NE(progress.find("submitted 5"), std::string::npos) << progress;
}

TEST(LoadgenSmoke, RejectsBadMixWithoutSubmitting) {
  TempDir dir;
  const Output out =
      RunCapture(FaxflowBinary() + " loadgen --count 1 --far-end bussy=1 --server http://127.0.0.1:9",
                 dir.path() + "/err");
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_NE(ReadFileOrDie(dir.path() + "/err").find("unknown behaviour 'bussy'"), std::string::npos);
}

}  // namespace
}  // namespace faxflow::testing
