// Crash safety of `faxflow all`: with 20 faxes queued and calls in progress, kill -9 the process
// and start it again on the same data dir. Every fax must reach a terminal state, no
// (job, attempt) may be dialled twice, an interrupted call resumes at the first page the far end
// did not confirm, and every fax ends delivered with all its pages.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <set>

#include "pages/pages.h"
#include "tests/e2e/e2e_util.h"

namespace faxflow::testing {
namespace {

TEST(CrashE2E, KillNineWithTwentyQueuedLosesNothingAndDialsNothingTwice) {
  TempDir dir("faxflow-crash");
  const std::string doc = WriteNumberedPostScript(dir.path() + "/three.ps", 3);
  std::vector<std::string> ids;
  {
    // Real-time line pacing: calls take minutes, so most faxes are still queued at the kill.
    // All 20 go to one number: allow 4 calls to it at once (the default is 1, docs/modem.md).
    FaxflowAll app(dir.path(), {"sim.realtime=true", "modem.channels=4", "modem.max_calls_per_destination=4"});
    for (int i = 0; i < 20; ++i) ids.push_back(app.SubmitOk({doc}, {"+15550100000"}));
    // Wait until calls are in progress (dial ledger written, far end answering).
    ASSERT_TRUE(Await(
        [&] {
          int sending = 0;
          for (const auto& id : ids) {
            auto st = app.Status(id);
            if (st.is_object() && st.at("recipients").at(0).at("state") == "sending") ++sending;
          }
          return sending >= 2;
        },
        std::chrono::seconds(60)));
    app.process().Signal(SIGKILL);
    app.process().Wait(std::chrono::seconds(10));
  }
  FaxflowAll app(dir.path(), {"sim.realtime=false", "modem.channels=4", "modem.max_calls_per_destination=4"});
  std::map<std::string, nlohmann::json> final_status;
  for (const auto& id : ids) final_status[id] = app.AwaitDone(id, std::chrono::minutes(5));

  int resumed = 0;
  for (const auto& [id, st] : final_status) {
    ASSERT_TRUE(st.is_object()) << id;
    const auto& r = st.at("recipients").at(0);
    EXPECT_EQ(r.at("state"), "delivered") << st.dump();
    EXPECT_EQ(r.at("pages_sent"), 3) << st.dump();
    if (r.at("attempts").get<int>() > 1) ++resumed;
  }
  // No (job, attempt) dialled twice, and pages received over all calls of a job equal the 3 sent.
  std::set<std::pair<std::string, int>> dials;
  std::map<std::string, int> pages_received;
  for (const auto& call : app.Calls()) {
    auto key = std::make_pair(call.at("job_id").get<std::string>(), call.at("attempt").get<int>());
    EXPECT_TRUE(dials.insert(key).second) << "dialled twice: " << key.first << " attempt " << key.second;
    pages_received[key.first] += call.value("pages_received", 0);
  }
  for (const auto& [id, st] : final_status) {
    const std::string job = st.at("recipients").at(0).at("id");
    EXPECT_EQ(pages_received[job], 3) << "job " << job << " pages at the far end (no full resend, none missing)";
  }
  EXPECT_GE(resumed, 2) << "the calls in progress at the kill resume as a new attempt";
  auto metrics = HttpGet(app.port(), "/metrics").body;
  EXPECT_NE(metrics.find("faxflow_modem_resumed_total"), std::string::npos);
}

}  // namespace
}  // namespace faxflow::testing
