// Integration (separate processes): kill -9 a modem worker right after the far end confirmed
// page 7 of a 10-page fax, restart it, and check that the fax ends delivered with 10 pages:
// attempt 2 resumes at page 8 (no full resend), no `delivered` before every page is confirmed,
// pages pixel-identical. FAXFLOW_CRASH_ITERATIONS faxes (default 20, about 30 s; the `chaos`
// label runs 100).
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "pages/pages.h"
#include "schemas/event.pb.h"
#include "schemas/job.pb.h"
#include "storage/blob_store.h"
#include "storage/dedup_store.h"
#include "tests/modem/test_doc.h"
#include "tests/support/support.h"
#include "topics/catalogue.h"
#include "topics/embedded/embedded_bus.h"
#include "workers/modem/sim_far_end.h"

namespace faxflow::modem {
namespace {

constexpr int kPages = 10;
constexpr int kKillAfter = 7;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ModemCrash, KillAfterPage7ResumesAtPage8AndDeliversTenPages) {
  const char* env = std::getenv("FAXFLOW_CRASH_ITERATIONS");
  const int iterations = env ? std::atoi(env) : 20;
  faxflow::testing::TempDir tmp("modem-crash");
  const std::string dir = tmp.path();
  const std::string doc_dir = dir + "/doc";
  std::filesystem::create_directories(doc_dir);
  const testing::TestDoc doc = testing::MakeTestDoc(doc_dir, kPages);
  ASSERT_FALSE(doc.multipage_path.empty()) << "gs failed";
  std::vector<std::string> page_ids;
  {
    auto blobs = OpenRocksBlobStore(dir + "/blobs", RocksBlobStoreOptions{}, [] { return int64_t{0}; });
    ASSERT_TRUE(blobs.ok());
    for (const auto& p : doc.page_bytes) page_ids.push_back(*(*blobs)->Put(p));
  }
  const std::string number = "+15550100000";
  auto submit = [&](const std::string& id) {
    auto bus = bus::OpenEmbeddedBus(dir + "/bus");
    ASSERT_TRUE(bus.ok()) << bus.status().ToString();
    ASSERT_TRUE((*bus)->EnsureTopics(bus::Catalogue()).ok());
    v1::OutboundJob job;
    job.set_job_id(id);
    job.set_fax_id("fax_" + id);
    job.set_tenant("acme");
    job.set_number(number);
    for (const auto& p : page_ids) job.add_pages()->set_blob_id(p);
    auto producer = (*bus)->NewProducer("test");
    ASSERT_TRUE(producer.ok());
    bus::Message m{std::string(bus::topic::kJobs), number, job.SerializeAsString(), {}, std::nullopt};
    ASSERT_TRUE((*producer)->Produce(m).ok());
  };
  auto progress_has = [&](const std::string& needle) {
    return ReadAll(dir + "/progress").find(needle) != std::string::npos;
  };

  for (int i = 0; i < iterations; ++i) {
    const std::string id = "rcp_crash" + std::to_string(i);
    SCOPED_TRACE(id);
    submit(id);
    {
      faxflow::testing::ChildProcess child(
          {MODEM_CRASH_CHILD, dir, "--block-after-page", std::to_string(kKillAfter)},
          dir + "/child-" + id + "-1.log");
      ASSERT_TRUE(
          faxflow::testing::Await([&] { return progress_has("blocked " + id); }, std::chrono::seconds(90)))
          << child.Log();
      child.Signal(SIGKILL);
      ASSERT_NE(child.Wait(std::chrono::seconds(10)), -1);
    }
    EXPECT_FALSE(progress_has("terminal " + id)) << "nothing may be terminal before the restart";
    {
      faxflow::testing::ChildProcess child({MODEM_CRASH_CHILD, dir}, dir + "/child-" + id + "-2.log");
      ASSERT_TRUE(
          faxflow::testing::Await([&] { return progress_has("terminal " + id); }, std::chrono::seconds(90)))
          << child.Log();
      child.Signal(SIGTERM);
      EXPECT_NE(child.Wait(std::chrono::seconds(30)), -1) << "clean stop";
    }
  }

  // What the far end and the ledger saw.
  auto all = pages::DecodeFile(doc.multipage_path);
  ASSERT_TRUE(all.ok());
  auto dedup = OpenRocksDedupStore(dir + "/dedup");
  ASSERT_TRUE(dedup.ok());
  std::vector<nlohmann::json> calls;
  {
    std::ifstream in(dir + "/received/calls.jsonl");
    for (std::string l; std::getline(in, l);)
      if (!l.empty()) calls.push_back(nlohmann::json::parse(l));
  }
  auto bus = bus::OpenEmbeddedBus(dir + "/bus");
  ASSERT_TRUE(bus.ok());
  auto reader = (*bus)->NewConsumer({"check", "check", true});
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE((*reader)->Assign(*bus::AllPartitions(**bus, std::string(bus::topic::kEvents))).ok());
  std::vector<v1::DeliveryEvent> events;
  for (int k = 0; k < 20; ++k) {
    auto recs = (*reader)->Poll(std::chrono::milliseconds(50), 100'000);
    ASSERT_TRUE(recs.ok());
    for (const auto& r : *recs) {
      v1::DeliveryEvent ev;
      ASSERT_TRUE(ev.ParseFromString(r.value));
      events.push_back(ev);
    }
  }
  for (int i = 0; i < iterations; ++i) {
    const std::string id = "rcp_crash" + std::to_string(i);
    SCOPED_TRACE(id);
    auto ledger = (*dedup)->Get(id);
    ASSERT_TRUE(ledger.ok() && ledger->has_value());
    EXPECT_TRUE((*ledger)->terminal);
    EXPECT_EQ((*ledger)->terminal_state, v1::STATE_DELIVERED);
    EXPECT_EQ((*ledger)->pages_confirmed, kPages);
    EXPECT_EQ((*ledger)->attempts_begun, 2) << "one interrupted call, one resumed call";
    // Every terminal result says delivered with 10 pages; none claims delivered too early.
    int terminal = 0;
    std::vector<int> first_pages;
    for (const auto& e : events) {
      if (e.recipient_id() != id) continue;
      if (e.has_attempt_started()) first_pages.push_back(e.attempt_started().first_page());
      if (e.has_result() && e.result().state() == v1::STATE_DELIVERED) {
        EXPECT_EQ(e.result().pages_sent(), kPages);
        EXPECT_TRUE(e.result().terminal());
      }
      terminal += e.has_result() && e.result().terminal();
    }
    EXPECT_GE(terminal, 1);
    EXPECT_EQ(first_pages, (std::vector<int>{1, kKillAfter + 1})) << "no full resend";
    // The resumed call carried exactly pages 8..10, pixel for pixel.
    int resumed_calls = 0;
    for (const auto& c : calls) {
      if (c.value("job_id", "") != id) continue;
      ++resumed_calls;
      EXPECT_EQ(c.value("attempt", 0), 2);
      EXPECT_EQ(c.value("pages_received", 0), kPages - kKillAfter);
      auto got = pages::DecodeFile(c.value("received_path", ""));
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      std::vector<pages::Bitmap> expected(all->begin() + kKillAfter, all->end());
      EXPECT_TRUE(pages::ComparePages(expected, *got).ok());
    }
    EXPECT_EQ(resumed_calls, 1) << "the killed call has no log line; exactly one more call";
    // The killed call's far end kept the 7 confirmed pages (when its file survived the kill).
    auto first = pages::DecodeFile(dir + "/received/" + NumberDigits(number) + "/" + id + "-a1.tif");
    if (first.ok() && first->size() >= static_cast<size_t>(kKillAfter)) {
      std::vector<pages::Bitmap> got(first->begin(), first->begin() + kKillAfter);
      std::vector<pages::Bitmap> expected(all->begin(), all->begin() + kKillAfter);
      EXPECT_TRUE(pages::ComparePages(expected, got).ok());
    }
  }
}

}  // namespace
}  // namespace faxflow::modem
