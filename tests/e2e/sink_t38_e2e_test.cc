// Cross-process T.38: `faxflow all` (embedded bus) with the `t38` line driver sends five faxes
// over UDPTL on 127.0.0.1 to a separate `faxflow sink` process; every fax ends delivered, the
// sink's status endpoint lists each with T30_ERR_OK, the sender's TSI and its pages, and the TIFF
// the sink stored equals the rendered pages pixel for pixel. The same with the `audio` media.
#include <gtest/gtest.h>

#include <map>

#include "pages/pages.h"
#include "tests/e2e/e2e_util.h"

namespace faxflow::testing {
namespace {

constexpr char kNumber[] = "+15550100000";

// Sends `faxes` faxes from `faxflow all` (modem.line=t38, t38.media=`media`) to a `faxflow sink`
// process and checks both sides.
void SendToSink(const std::string& media, int faxes) {
  const int kFaxes = faxes;
  TempDir dir("faxflow-sink-e2e");
  const int udp_port = FreePort();
  const int http_port = FreePort();
  ChildProcess sink(
      {FaxflowBinary(), "sink", "--listen", "127.0.0.1:" + std::to_string(udp_port), "--http",
       "127.0.0.1:" + std::to_string(http_port), "--dir", dir.path() + "/sink", "--paced", "false"},
      dir.path() + "/sink.log");
  ASSERT_TRUE(Await([&] { return !sink.Running() || HttpGet(http_port, "/healthz").status == 200; },
                    std::chrono::seconds(30)))
      << sink.Log();
  ASSERT_TRUE(sink.Running()) << sink.Log();

  FaxflowAll app(dir.path() + "/app", {"modem.line=t38", "t38.remote=127.0.0.1:" + std::to_string(udp_port),
                                       "t38.paced=false", "t38.media=" + media, "modem.channels=2"});
  std::vector<std::string> ids;
  std::vector<int> page_counts;
  for (int i = 0; i < kFaxes; ++i) {
    const int pages = 1 + i % 3;
    const std::string ps = WriteNumberedPostScript(dir.path() + "/doc" + std::to_string(i) + ".ps", pages);
    ids.push_back(app.SubmitOk({ps}, {kNumber}, R"({"tsi":"faxflow t38"})"));
    page_counts.push_back(pages);
  }
  std::map<std::string, std::pair<std::string, int>> job_to_fax;  // job id -> (fax id, pages)
  for (int i = 0; i < kFaxes; ++i) {
    auto st = app.AwaitDone(ids[static_cast<size_t>(i)]);
    ASSERT_EQ(st.at("state"), "delivered") << st.dump() << "\nsink log:\n" << sink.Log();
    const auto& r = st.at("recipients").at(0);
    EXPECT_EQ(r.at("pages_sent"), page_counts[static_cast<size_t>(i)]);
    EXPECT_EQ(r.at("attempts"), 1);
    job_to_fax[r.at("id").get<std::string>()] = {ids[static_cast<size_t>(i)],
                                                 page_counts[static_cast<size_t>(i)]};
  }

  nlohmann::json received;
  ASSERT_TRUE(Await(
      [&] {
        auto res = HttpGet(http_port, "/v1/received");
        if (res.status != 200) return false;
        received = nlohmann::json::parse(res.body);
        return received.at("received") == kFaxes;
      },
      std::chrono::seconds(20)))
      << received.dump();
  ASSERT_EQ(received.at("faxes").size(), static_cast<size_t>(kFaxes));
  for (const auto& fax : received.at("faxes")) {
    SCOPED_TRACE(fax.dump());
    EXPECT_EQ(fax.at("result"), "T30_ERR_OK");
    EXPECT_EQ(fax.at("csid"), "faxflow t38");
    EXPECT_EQ(fax.at("number"), kNumber);
    EXPECT_EQ(fax.at("media"), media);
    auto it = job_to_fax.find(fax.at("job_id").get<std::string>());
    ASSERT_NE(it, job_to_fax.end()) << "the sink received a fax of an unknown job";
    const auto& [fax_id, pages] = it->second;
    EXPECT_EQ(fax.at("pages"), pages);
    std::vector<pages::Bitmap> rendered;
    for (int n = 1; n <= pages; ++n) {
      auto r = HttpGet(app.port(), "/v1/faxes/" + fax_id + "/pages/" + std::to_string(n) + "?format=tiff");
      ASSERT_EQ(r.status, 200) << r.body;
      auto decoded = pages::DecodePages(r.body);
      ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
      rendered.insert(rendered.end(), decoded->begin(), decoded->end());
    }
    auto got = pages::DecodeFile(fax.at("path").get<std::string>());
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_TRUE(pages::ComparePages(rendered, *got).ok()) << pages::ComparePages(rendered, *got).ToString();
    job_to_fax.erase(it);  // each job exactly once
  }
  EXPECT_TRUE(job_to_fax.empty());
  sink.Signal(SIGTERM);
  EXPECT_NE(sink.Wait(std::chrono::seconds(20)), -1) << "the sink stops on SIGTERM";
}

TEST(SinkT38E2E, FiveFaxesOverUdpArePixelIdentical) { SendToSink("t38", 5); }

// The same path with the `audio` media: lock-step 20 ms frames to the sink's sim far end.
TEST(SinkT38E2E, AudioMediaFaxesArePixelIdentical) { SendToSink("audio", 2); }

}  // namespace
}  // namespace faxflow::testing
