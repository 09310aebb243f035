// Broadcast covers in the imaging worker (real embedded bus, RocksDB blob store and gs): a
// submission whose recipients carry cover_blob_id gets one job per recipient with [own cover,
// shared pages...]; each distinct cover is rendered once; a cover that cannot be rendered (2
// pages, missing blob) fails only its recipient with document_error; a chunk submission with
// append_page_blob_ids and no documents renders only its covers (covers seen before are reused)
// and appends the given pages. The Rendered event counts the cover (page_count = 1 + shared).
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>

#include "common/metrics.h"
#include "pages/pages.h"
#include "producers/gateway/cover.h"
#include "schemas/event.pb.h"
#include "schemas/job.pb.h"
#include "schemas/submission.pb.h"
#include "tests/imaging/imaging_fixture.h"
#include "tests/support/support.h"

namespace faxflow::imaging {
namespace {

constexpr std::chrono::seconds kLimit{120};  // ReadUntil's deadline (two gs renders per cover chunk)

std::string TwoPagePostScript() {
  std::string ps = "%!PS-Adobe-3.0\n";
  for (int p = 1; p <= 2; ++p)
    ps += "/Helvetica findfont 60 scalefont setfont 72 500 moveto (Shared page " + std::to_string(p) +
          ") show 72 72 moveto 540 72 lineto 540 720 lineto stroke showpage\n";
  return ps;
}

std::string Cover(const std::string& to_name) {
  v1::CoverPage c;
  c.set_template_("basic");
  (*c.mutable_fields())["to_name"] = to_name;
  (*c.mutable_fields())["from_name"] = "Acme Billing";
  (*c.mutable_fields())["subject"] = "Your invoice";
  return RenderCoverPage(c, {}, "2026-11-22 12:00 UTC");
}

// The value of one sample line of the text exposition ("name{labels} value"), or -1.
double Sample(const std::string& metrics, const std::string& series) {
  const auto at = metrics.find(series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(metrics.substr(at + series.size() + 1));
}

class BroadcastCoverImagingTest : public testing::ImagingWorkerFixture {
 protected:
  v1::Submission Make(const std::string& fax_id, const std::vector<std::string>& covers) {
    v1::Submission s;
    s.set_fax_id(fax_id);
    s.set_tenant("acme");
    s.set_submitted_at_ms(1'700'000'000'000);
    s.set_source("broadcast");
    for (size_t i = 0; i < covers.size(); ++i) {
      auto* r = s.add_recipients();
      r->set_recipient_id("rcp_" + fax_id + "_" + std::to_string(i));
      r->set_number("+1555123000" + std::to_string(i));
      r->set_cover_blob_id(covers[i]);
    }
    s.mutable_options()->set_resolution(v1::RESOLUTION_FINE);
    return s;
  }

  pages::Bitmap Page(const std::string& blob_id) {
    auto tiff = blobs_->Get(blob_id);
    EXPECT_TRUE(tiff.ok()) << blob_id;
    auto bm = pages::DecodePages(tiff.value_or(""));
    EXPECT_TRUE(bm.ok() && bm->size() == 1u);
    return bm.ok() && !bm->empty() ? (*bm)[0] : pages::Bitmap{};
  }
};

TEST_F(BroadcastCoverImagingTest, OwnCoverFirstSharedPagesOnceBadCoverFailsOnlyItsRecipient) {
  const std::string doc = Put(TwoPagePostScript());
  const std::string alice = Put(Cover("Alice")), bob = Put(Cover("Bob")), carol = Put(Cover("Carol"));
  const std::string bad = Put(TwoPagePostScript() + "%% a 2-page cover: invalid\n");
  const std::string missing = BlobId("never stored");

  // Chunk 0: the document and five recipients: Alice twice, Bob, a 2-page cover, a missing cover.
  v1::Submission c0 = Make("fax_c0", {alice, bob, alice, bad, missing});
  c0.add_documents()->set_blob_id(doc);
  Submit(c0);

  prometheus::Registry registry;
  ImagingWorker worker(Options(/*threads=*/1), *bus_, *blobs_, registry, SystemClock::Instance());
  ASSERT_TRUE(worker.Start().ok());
  ReadUntil([&] { return jobs_.size() >= 3 && EventsOf("fax_c0").size() >= 3; }, kLimit);
  ASSERT_EQ(jobs_.size(), 3u);
  const auto& a0 = Job("rcp_fax_c0_0");
  const auto& b1 = Job("rcp_fax_c0_1");
  const auto& a2 = Job("rcp_fax_c0_2");
  for (const auto* j : {&a0, &b1, &a2}) ASSERT_EQ(j->pages_size(), 3) << j->job_id();
  // Page 1: the recipient's own cover (identical fields, identical page); pages 2-3 shared.
  EXPECT_EQ(a0.pages(0).blob_id(), a2.pages(0).blob_id());
  EXPECT_NE(a0.pages(0).blob_id(), b1.pages(0).blob_id());
  for (int p = 1; p < 3; ++p) {
    EXPECT_EQ(a0.pages(p).blob_id(), b1.pages(p).blob_id());
    EXPECT_EQ(a0.pages(p).blob_id(), a2.pages(p).blob_id());
  }
  const pages::Bitmap cover_a = Page(a0.pages(0).blob_id()), cover_b = Page(b1.pages(0).blob_id());
  const pages::Bitmap shared1 = Page(a0.pages(1).blob_id());
  EXPECT_GT(cover_a.BlackPixels(), 1000u);
  EXPECT_FALSE(pages::ComparePages({cover_a}, {cover_b}).ok()) << "different names, different covers";
  EXPECT_FALSE(pages::ComparePages({cover_a}, {shared1}).ok());

  // One Rendered event (page_count includes the cover, page ids are the shared pages), then one
  // document_error per recipient whose cover failed.
  const v1::DeliveryEvent* rendered = nullptr;
  std::map<std::string, std::string> failed;
  for (const auto& e : events_) {
    if (e.fax_id() != "fax_c0") continue;
    if (e.has_rendered()) {
      EXPECT_EQ(rendered, nullptr) << "two Rendered events";
      rendered = &e;
    } else {
      ASSERT_TRUE(e.has_result());
      EXPECT_EQ(e.result().state(), v1::STATE_FAILED);
      EXPECT_EQ(e.result().reason(), v1::REASON_DOCUMENT_ERROR);
      EXPECT_TRUE(e.result().terminal());
      EXPECT_EQ(rendered != nullptr, true) << "failures come after Rendered";
      failed[e.recipient_id()] = e.result().detail();
    }
  }
  ASSERT_NE(rendered, nullptr);
  EXPECT_EQ(rendered->rendered().page_count(), 3);
  EXPECT_EQ(rendered->rendered().cover_pages(), 1);
  ASSERT_EQ(rendered->rendered().page_blob_ids_size(), 2);
  EXPECT_EQ(rendered->rendered().page_blob_ids(0), a0.pages(1).blob_id());
  ASSERT_EQ(failed.size(), 2u);
  EXPECT_NE(failed["rcp_fax_c0_3"].find("2 pages"), std::string::npos) << failed["rcp_fax_c0_3"];
  EXPECT_NE(failed["rcp_fax_c0_4"].find("not found"), std::string::npos) << failed["rcp_fax_c0_4"];

  // Chunk 1: no documents, chunk 0's pages appended; Alice's cover is reused, Carol's rendered.
  v1::Submission c1 = Make("fax_c1", {carol, alice});
  for (const auto& id : rendered->rendered().page_blob_ids()) c1.add_append_page_blob_ids(id);
  Submit(c1);
  ReadUntil([&] { return jobs_.size() >= 5 && !EventsOf("fax_c1").empty(); }, kLimit);
  ASSERT_EQ(jobs_.size(), 5u);
  const auto& c10 = Job("rcp_fax_c1_0");
  const auto& a11 = Job("rcp_fax_c1_1");
  ASSERT_EQ(c10.pages_size(), 3);
  ASSERT_EQ(a11.pages_size(), 3);
  EXPECT_EQ(a11.pages(0).blob_id(), a0.pages(0).blob_id());
  EXPECT_NE(c10.pages(0).blob_id(), a0.pages(0).blob_id());
  for (int p = 1; p < 3; ++p) EXPECT_EQ(c10.pages(p).blob_id(), a0.pages(p).blob_id());
  EXPECT_EQ(dlq_.size(), 0u);

  // Renders: the document once, each distinct cover once (Alice, Bob, Carol and the 2-page one,
  // which gs renders fine but is refused); Alice's cover in chunk 1 came from the cache.
  // (Metrics are accounted just after the commit that made the jobs visible, the cover counters
  // after renders_total: await both, then check the exact values.)
  std::string m;
  EXPECT_TRUE(faxflow::testing::Await(
      [&] {
        m = SerializeMetrics(registry);
        return Sample(m, "faxflow_imaging_renders_total{outcome=\"ok\"}") >= 2 &&
               Sample(m, "faxflow_imaging_covers_total{outcome=\"rendered\"}") +
                       Sample(m, "faxflow_imaging_covers_total{outcome=\"reused\"}") +
                       Sample(m, "faxflow_imaging_covers_total{outcome=\"document_error\"}") >=
                   6;
      },
      std::chrono::seconds(10)));
  EXPECT_EQ(Sample(m, "faxflow_imaging_covers_total{outcome=\"rendered\"}"), 3) << m;
  EXPECT_EQ(Sample(m, "faxflow_imaging_covers_total{outcome=\"reused\"}"), 1) << m;
  EXPECT_EQ(Sample(m, "faxflow_imaging_covers_total{outcome=\"document_error\"}"), 2) << m;
  EXPECT_EQ(Sample(m, "faxflow_imaging_document_renders_total{outcome=\"ok\"}"), 5) << m;
  EXPECT_EQ(Sample(m, "faxflow_imaging_renders_total{outcome=\"ok\"}"), 2) << m;
  worker.Stop();
  EXPECT_TRUE(worker.status().ok()) << worker.status().ToString();
}

TEST_F(BroadcastCoverImagingTest, SubmissionWithoutDocumentsOrAppendPagesIsDeadLettered) {
  Submit(Make("fax_empty", {""}));
  prometheus::Registry registry;
  ImagingWorker worker(Options(/*threads=*/1), *bus_, *blobs_, registry, SystemClock::Instance());
  ASSERT_TRUE(worker.Start().ok());
  ReadUntil([&] { return !dlq_.empty(); }, kLimit);
  EXPECT_EQ(dlq_.size(), 1u);
  EXPECT_TRUE(jobs_.empty());
}

}  // namespace
}  // namespace faxflow::imaging
