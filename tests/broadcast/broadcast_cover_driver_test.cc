// The broadcast driver with covers, without imaging: BroadcastService on the embedded bus, a
// RocksDB blob store and status store; the test plays imaging by applying Rendered / failure
// events to the status store and calls DriveOnce(). Checks: chunk 0 carries per-recipient cover
// blobs (identical fields -> one blob) and the documents; a recipient of chunk 0 whose cover
// failed does not fail the broadcast; chunks 1..k go to fax.submissions without documents, with
// their covers and append_page_blob_ids = chunk 0's document pages (not its covers), and no job
// is produced by the gateway; queued_ms is set only once every chunk is rendered.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "common/clock.h"
#include "producers/gateway/broadcast.h"
#include "producers/gateway/cover.h"
#include "schemas/event.pb.h"
#include "schemas/submission.pb.h"
#include "storage/blob_store.h"
#include "storage/status_store.h"
#include "tests/support/embedded_bus_test.h"
#include "topics/catalogue.h"

namespace faxflow {
namespace {

class BroadcastCoverDriverTest : public testing::EmbeddedBusTest {
 protected:
  void SetUp() override {
    BusSetup setup;
    setup.read = {bus::topic::kSubmissions, bus::topic::kJobs};
    setup.producer = "gateway";
    setup.blob_clock = [] { return int64_t{1'700'000'000'000}; };
    ASSERT_NO_FATAL_FAILURE(OpenEmbeddedBus(setup));
    auto status = OpenRocksStatusStore((dir_ / "status").string());
    ASSERT_TRUE(status.ok());
    status_ = std::move(*status);
    submissions_ = std::make_unique<SubmissionService>(
        SubmissionLimits{}, *producer_, *blobs_, *status_, clock_,
        [](std::string_view) -> Result<std::string> { return std::string("application/postscript"); });
    BroadcastOptions o;
    o.chunk_size = 2;
    service_ = std::make_unique<BroadcastService>(o, *submissions_, *producer_, *blobs_, *status_, registry_,
                                                  clock_);
    ASSERT_TRUE(service_->Open((dir_ / "broadcasts").string()).ok());
  }
  void TearDown() override {
    service_.reset();
    submissions_.reset();
    status_.reset();
    EmbeddedBusTest::TearDown();
  }

  // Everything produced so far: submissions by fax id, and the number of jobs.
  void Drain() {
    for (;;) {
      auto recs = reader_->Poll(std::chrono::milliseconds(50), 1000);
      ASSERT_TRUE(recs.ok());
      if (recs->empty()) return;
      for (const auto& r : *recs) {
        if (r.topic == bus::topic::kJobs) {
          ++jobs_;
          continue;
        }
        v1::Submission s;
        ASSERT_TRUE(s.ParseFromString(r.value));
        submissions_seen_[s.fax_id()] = s;
      }
    }
  }

  // What imaging would report for a chunk: Rendered with the shared pages and the cover, and a
  // document_error for the recipients listed in `failed`.
  void Render(const v1::Submission& s, const std::vector<std::string>& shared, std::set<int> failed = {}) {
    v1::DeliveryEvent ev;
    ev.set_event_id("rendered_" + s.fax_id());
    ev.set_fax_id(s.fax_id());
    ev.set_tenant(s.tenant());
    ev.set_at_ms(clock_.NowMillis());
    ev.mutable_rendered()->set_page_count(static_cast<int32_t>(shared.size()) + 1);
    ev.mutable_rendered()->set_cover_pages(1);
    for (const auto& p : shared) ev.mutable_rendered()->add_page_blob_ids(p);
    ASSERT_TRUE(status_->Apply(ev).ok());
    for (int i : failed) {
      v1::DeliveryEvent f;
      f.set_event_id("failed_" + s.recipients(i).recipient_id());
      f.set_fax_id(s.fax_id());
      f.set_recipient_id(s.recipients(i).recipient_id());
      f.set_tenant(s.tenant());
      f.set_at_ms(clock_.NowMillis());
      f.mutable_result()->set_state(v1::STATE_FAILED);
      f.mutable_result()->set_reason(v1::REASON_DOCUMENT_ERROR);
      f.mutable_result()->set_terminal(true);
      f.mutable_result()->set_detail("cover page: renders to 2 pages, a cover is one page");
      ASSERT_TRUE(status_->Apply(f).ok());
    }
  }

  BroadcastProgress Progress(const std::string& id) {
    auto p = service_->Progress("acme", id);
    EXPECT_TRUE(p.ok() && p->has_value());
    return p.ok() && p->has_value() ? **p : BroadcastProgress{};
  }

  ManualClock clock_;
  prometheus::Registry registry_;
  std::unique_ptr<StatusStore> status_;
  std::unique_ptr<SubmissionService> submissions_;
  std::unique_ptr<BroadcastService> service_;
  std::map<std::string, v1::Submission> submissions_seen_;
  int jobs_ = 0;
};

TEST_F(BroadcastCoverDriverTest, ChunksCarryCoversAndChunkZeroPagesAndQueuedWhenAllRendered) {
  BroadcastRequest req;
  req.tenant = "acme";
  req.documents.push_back({"doc.ps", "%!PS-Adobe-3.0\nshowpage\n"});
  // Five recipients, chunks of 2: [Ann, Bob] [Ann, Cy] [Dee]; Ann twice with identical fields.
  for (const auto& [to, name] : std::vector<std::pair<std::string, std::string>>{{"+15550100001", "Ann"},
                                                                                 {"+15550100002", "Bob"},
                                                                                 {"+15550100003", "Ann"},
                                                                                 {"+15550100004", "Cy"},
                                                                                 {"+15550100005", "Dee"}})
    req.recipients.push_back({to, {{"name", name}, {"account", "x"}}});
  req.options.mutable_cover()->set_template_("basic");
  (*req.options.mutable_cover()->mutable_fields())["from_name"] = "Acme";
  auto out = service_->Create(req);
  ASSERT_TRUE(out.ok()) << out.message;

  Drain();
  ASSERT_EQ(submissions_seen_.size(), 1u);
  const v1::Submission c0 = submissions_seen_.begin()->second;
  EXPECT_EQ(c0.fax_id(), out.template_fax_id);
  EXPECT_EQ(c0.documents_size(), 1) << "chunk 0: the documents only, no shared cover document";
  EXPECT_FALSE(c0.options().has_cover());
  ASSERT_EQ(c0.recipients_size(), 2);
  EXPECT_NE(c0.recipients(0).cover_blob_id(), c0.recipients(1).cover_blob_id());
  auto ann_ps = blobs_->Get(c0.recipients(0).cover_blob_id());
  ASSERT_TRUE(ann_ps.ok());
  EXPECT_NE(ann_ps->find("(Ann)"), std::string::npos) << "the recipient's name is on its cover";
  EXPECT_NE(ann_ps->find("(Acme)"), std::string::npos) << "the shared field too";
  EXPECT_EQ(ann_ps->find("+1555"), std::string::npos) << "the number is not printed";

  // Not rendered yet: nothing fans out.
  ASSERT_TRUE(service_->DriveOnce().ok());
  Drain();
  EXPECT_EQ(submissions_seen_.size(), 1u);
  EXPECT_EQ(Progress(out.id).state, "rendering");

  // Chunk 0 rendered; Bob's cover failed: the broadcast goes on.
  const std::vector<std::string> shared = {std::string(64, 'a'), std::string(64, 'b')};
  Render(c0, shared, {1});
  ASSERT_TRUE(service_->DriveOnce().ok());
  Drain();
  EXPECT_EQ(jobs_, 0) << "with covers, imaging queues the jobs";
  ASSERT_EQ(submissions_seen_.size(), 3u);
  std::vector<v1::Submission> chunks;
  for (const auto& [id, s] : submissions_seen_)
    if (id != c0.fax_id()) chunks.push_back(s);
  std::sort(chunks.begin(), chunks.end(),
            [](const auto& a, const auto& b) { return a.recipients(0).number() < b.recipients(0).number(); });
  for (const auto& s : chunks) {
    EXPECT_EQ(s.documents_size(), 0);
    ASSERT_EQ(s.append_page_blob_ids_size(), 2);
    EXPECT_EQ(s.append_page_blob_ids(0), shared[0]);
    EXPECT_EQ(s.append_page_blob_ids(1), shared[1]);
    for (const auto& r : s.recipients()) EXPECT_FALSE(r.cover_blob_id().empty());
  }
  ASSERT_EQ(chunks[0].recipients_size(), 2);
  ASSERT_EQ(chunks[1].recipients_size(), 1);
  EXPECT_EQ(chunks[0].recipients(0).cover_blob_id(), c0.recipients(0).cover_blob_id())
      << "identical fields, one cover blob";
  auto p = Progress(out.id);
  EXPECT_EQ(p.state, "fanning_out");
  EXPECT_EQ(p.queued_ms, 0);
  EXPECT_EQ(p.counts["failed"], 1) << "Bob";

  // Queued only when every chunk is rendered.
  clock_.Advance(std::chrono::milliseconds(1500));
  Render(chunks[0], shared);
  ASSERT_TRUE(service_->DriveOnce().ok());
  EXPECT_EQ(Progress(out.id).queued_ms, 0);
  Render(chunks[1], shared);
  ASSERT_TRUE(service_->DriveOnce().ok());
  p = Progress(out.id);
  EXPECT_EQ(p.state, "sending");
  EXPECT_EQ(p.queued_ms - p.created_ms, 1500);
  EXPECT_EQ(p.counts["rendered"], 4);
  // Page totals include the cover.
  auto st = status_->Get(chunks[0].fax_id());
  ASSERT_TRUE(st.ok() && st->has_value());
  for (const auto& r : (*st)->recipients()) EXPECT_EQ(r.pages_total(), 3);
  auto csv = service_->ResultsCsv("acme", out.id);
  ASSERT_TRUE(csv.ok() && csv->has_value());
  EXPECT_NE((*csv)->find(",failed,document_error,0,"), std::string::npos) << **csv;
}

}  // namespace
}  // namespace faxflow
