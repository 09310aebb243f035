// ImagingWorker end to end on the real embedded bus, the real RocksDB blob store and real gs:
// submissions in, one OutboundJob per recipient + a Rendered event out (atomically with the
// offset), document errors become terminal FAILED events, junk goes to the DLQ, and the worker
// keeps serving and does not redo committed work after a restart.
#include "workers/imaging/imaging_worker.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <thread>

#include "common/ids.h"
#include "common/metrics.h"
#include "pages/pages.h"
#include "schemas/event.pb.h"
#include "schemas/job.pb.h"
#include "schemas/submission.pb.h"
#include "storage/blob_store.h"
#include "tests/imaging/imaging_fixture.h"
#include "topics/catalogue.h"

namespace faxflow::imaging {
namespace {

using testing::HeaderOf;
using testing::ReadData;

class ImagingWorkerTest : public testing::ImagingWorkerFixture {
 protected:
  v1::Submission MakeSubmission(const std::string& fax_id, const std::string& doc_blob, int recipients) {
    v1::Submission s;
    s.set_fax_id(fax_id);
    s.set_tenant("acme");
    s.set_submitted_at_ms(1'700'000'000'000);
    s.set_source("rest");
    for (int i = 0; i < recipients; ++i) {
      auto* r = s.add_recipients();
      r->set_recipient_id("rcp_" + fax_id + "_" + std::to_string(i));
      r->set_number("+1555123000" + std::to_string(i));
    }
    s.add_documents()->set_blob_id(doc_blob);
    s.mutable_options()->set_resolution(v1::RESOLUTION_FINE);
    s.mutable_options()->set_tsi("+15550000000");
    s.mutable_options()->set_header_text("faxflow test");
    s.mutable_options()->set_priority(5);
    return s;
  }
};

TEST_F(ImagingWorkerTest, RendersJobsFailsBadDocumentsDeadLettersJunkAndKeepsServing) {
  const std::string pdf = PutDoc("sample.pdf");
  const std::string corrupt = PutDoc("corrupt.pdf");
  const std::string text = PutDoc("hello.txt");
  Submit("fax_a", MakeSubmission("fax_a", pdf, 2).SerializeAsString());
  Submit("fax_b", MakeSubmission("fax_b", corrupt, 2).SerializeAsString());
  Submit("fax_c", "\xff\xff\xff not a protobuf", /*with_schema=*/false);

  prometheus::Registry registry;
  ImagingWorker worker(Options(), *bus_, *blobs_, registry, SystemClock::Instance());
  ASSERT_TRUE(worker.Start().ok());
  ReadUntil([&] { return jobs_.size() >= 2 && events_.size() >= 3 && !dlq_.empty(); });
  ASSERT_TRUE(worker.status().ok()) << worker.status().ToString();
  // After the failure, a submission on the same partition (same thread) is still served.
  auto count = bus_->PartitionCount(std::string(bus::topic::kSubmissions));
  ASSERT_TRUE(count.ok());
  std::string fax_d = "fax_d";
  for (int i = 0; bus::PartitionForKey(fax_d, *count) != bus::PartitionForKey("fax_b", *count); ++i)
    fax_d = "fax_d" + std::to_string(i);
  Submit(fax_d, MakeSubmission(fax_d, text, 1).SerializeAsString());
  ReadUntil([&] { return !JobsOf(fax_d).empty(); });

  // fax_a: one job per recipient, same 4 stored, sendable pages, one Rendered event.
  auto a = JobsOf("fax_a");
  ASSERT_EQ(a.size(), 2u);
  std::map<std::string, std::string> job_numbers;
  for (const auto* job : a) {
    job_numbers[job->job_id()] = job->number();
    EXPECT_EQ(job->tenant(), "acme");
    EXPECT_EQ(job->resolution(), v1::RESOLUTION_FINE);
    EXPECT_EQ(job->tsi(), "+15550000000");
    EXPECT_EQ(job->header_text(), "faxflow test");
    EXPECT_EQ(job->priority(), 5);
    EXPECT_EQ(job->submitted_at_ms(), 1'700'000'000'000);
    EXPECT_GT(job->rendered_at_ms(), 0);
    ASSERT_EQ(job->pages_size(), 4);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(job->pages(i).blob_id(), a[0]->pages(i).blob_id());
  }
  EXPECT_EQ(job_numbers["rcp_fax_a_0"], "+15551230000");
  EXPECT_EQ(job_numbers["rcp_fax_a_1"], "+15551230001");
  std::vector<pages::Bitmap> rendered;
  for (const auto& ref : a[0]->pages()) {
    auto page = blobs_->Get(ref.blob_id());
    ASSERT_TRUE(page.ok()) << ref.blob_id();
    auto format = pages::ValidateFaxPage(*page);
    ASSERT_TRUE(format.ok()) << format.status().ToString();
    EXPECT_EQ(format->length, 2292u);
    auto bm = pages::DecodePages(*page);
    ASSERT_TRUE(bm.ok());
    EXPECT_GT((*bm)[0].BlackPixels(), 1000u);
    rendered.push_back((*bm)[0]);
  }
  EXPECT_FALSE(pages::ComparePages({rendered[0]}, {rendered[1]}).ok());  // distinct pages, in order
  auto ea = EventsOf("fax_a");
  ASSERT_EQ(ea.size(), 1u);
  ASSERT_TRUE(ea[0]->has_rendered());
  EXPECT_EQ(ea[0]->rendered().page_count(), 4);
  EXPECT_GT(ea[0]->rendered().render_seconds(), 0);
  EXPECT_TRUE(ea[0]->recipient_id().empty());
  EXPECT_EQ(ea[0]->site(), "test");
  EXPECT_TRUE(LooksLikeId(ea[0]->event_id(), "evt"));

  // fax_b: no jobs, a terminal FAILED document_error event per recipient.
  EXPECT_TRUE(JobsOf("fax_b").empty());
  auto eb = EventsOf("fax_b");
  ASSERT_EQ(eb.size(), 2u);
  for (const auto* ev : eb) {
    ASSERT_TRUE(ev->has_result());
    EXPECT_EQ(ev->result().state(), v1::STATE_FAILED);
    EXPECT_EQ(ev->result().reason(), v1::REASON_DOCUMENT_ERROR);
    EXPECT_TRUE(ev->result().terminal());
    EXPECT_EQ(ev->result().pages_total(), 0);
    EXPECT_NE(ev->result().detail().find("ghostscript rejected the document"), std::string::npos)
        << ev->result().detail();
    EXPECT_FALSE(ev->recipient_id().empty());
  }

  // fax_c: the original bytes in the DLQ, with reason and origin.
  ASSERT_EQ(dlq_.size(), 1u);
  const bus::Record& dead = dlq_.front();
  EXPECT_EQ(dead.key, "fax_c");
  EXPECT_EQ(dead.value, "\xff\xff\xff not a protobuf");
  EXPECT_NE(HeaderOf(dead, bus::header::kReason).find("undecodable"), std::string::npos);
  EXPECT_EQ(HeaderOf(dead, bus::header::kOrigin).rfind("fax.submissions/", 0), 0u);

  // fax_d (after the failures): served.
  auto d = JobsOf(fax_d);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_GE(d[0]->pages_size(), 2);

  // Every submission offset is committed for the imaging group.
  auto check = bus_->NewConsumer({std::string(bus::group::kImaging), "check", true});
  ASSERT_TRUE(check.ok());
  auto parts = bus::AllPartitions(*bus_, std::string(bus::topic::kSubmissions));
  ASSERT_TRUE(parts.ok());
  bool all_committed = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!all_committed && std::chrono::steady_clock::now() < deadline) {
    all_committed = true;
    for (const auto& tp : *parts) {
      auto end = (*check)->EndOffset(tp);
      auto committed = (*check)->Committed(tp);
      ASSERT_TRUE(end.ok() && committed.ok());
      if (*end > 0 && committed->value_or(0) != *end) all_committed = false;
    }
  }
  EXPECT_TRUE(all_committed);

  std::string metrics = SerializeMetrics(registry);
  EXPECT_NE(metrics.find("faxflow_imaging_renders_total{outcome=\"ok\"} 2"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("faxflow_imaging_renders_total{outcome=\"document_error\"} 1"), std::string::npos);
  EXPECT_NE(metrics.find("faxflow_imaging_dead_letters_total 1"), std::string::npos);
  worker.Stop();

  // A restarted worker (same transactional ids) does not redo committed submissions: after a
  // new submission is served, fax_a still has exactly its two jobs.
  ImagingWorker second(Options(), *bus_, *blobs_, registry, SystemClock::Instance());
  ASSERT_TRUE(second.Start().ok());
  // Two documents: their pages are concatenated in order.
  v1::Submission e = MakeSubmission("fax_e", pdf, 1);
  const std::string tiff = PutDoc("fax-page.tif");
  e.add_documents()->set_blob_id(tiff);
  Submit("fax_e", e.SerializeAsString());
  ReadUntil([&] { return !JobsOf("fax_e").empty(); });
  ASSERT_EQ(JobsOf("fax_e").size(), 1u);
  const auto* je = JobsOf("fax_e")[0];
  ASSERT_EQ(je->pages_size(), 5);
  // Same document, same pages: content addressing stores them once.
  for (int i = 0; i < 4; ++i) EXPECT_EQ(je->pages(i).blob_id(), a[0]->pages(i).blob_id());
  auto last = blobs_->Get(je->pages(4).blob_id());
  ASSERT_TRUE(last.ok());
  auto last_bm = pages::DecodePages(*last);
  auto tiff_bm = pages::DecodePages(ReadData("fax-page.tif"));
  ASSERT_TRUE(last_bm.ok() && tiff_bm.ok());
  EXPECT_TRUE(pages::ComparePages(*tiff_bm, *last_bm).ok());
  EXPECT_EQ(JobsOf("fax_a").size(), 2u);
  EXPECT_EQ(EventsOf("fax_b").size(), 2u);
  second.Stop();
  EXPECT_TRUE(second.status().ok());
}

TEST_F(ImagingWorkerTest, OnlyOwnedPartitionsAreServed) {
  const std::string pdf = PutDoc("fax-page.tif");
  auto count = bus_->PartitionCount(std::string(bus::topic::kSubmissions));
  ASSERT_TRUE(count.ok());
  ASSERT_GE(*count, 2) << "needs a multi-partition fax.submissions";
  // Two fax ids on different partitions.
  std::string in_owned, in_other;
  for (int i = 0; in_owned.empty() || in_other.empty(); ++i) {
    std::string id = "fax_p" + std::to_string(i);
    (bus::PartitionForKey(id, *count) == 0 ? in_owned : in_other) = id;
  }
  ImagingOptions o = Options();
  o.partitions = {0};
  prometheus::Registry registry;
  ImagingWorker worker(o, *bus_, *blobs_, registry, SystemClock::Instance());
  ASSERT_TRUE(worker.Start().ok());
  Submit(in_other, MakeSubmission(in_other, pdf, 1).SerializeAsString());
  Submit(in_owned, MakeSubmission(in_owned, pdf, 1).SerializeAsString());
  ReadUntil([&] { return !JobsOf(in_owned).empty(); });
  ASSERT_EQ(JobsOf(in_owned).size(), 1u);
  EXPECT_TRUE(JobsOf(in_other).empty());
  // Taking over the other partition serves the waiting submission.
  worker.SetPartitions({});
  ReadUntil([&] { return !JobsOf(in_other).empty(); });
  EXPECT_EQ(JobsOf(in_other).size(), 1u);
  worker.Stop();
}

// Fails the first `failures` Puts with a retryable error, then delegates to the real store.
class FlakyBlobStore final : public BlobStore {
 public:
  FlakyBlobStore(BlobStore& real, int failures) : real_(real), failures_(failures) {}
  Result<std::string> Put(std::string_view content) override {
    if (failures_.fetch_sub(1) > 0)
      return Status::Retryable(Code::kUnavailable, "injected: blob store unavailable");
    return real_.Put(content);
  }
  Result<std::string> Get(std::string_view id) override { return real_.Get(id); }
  Result<bool> Exists(std::string_view id) override { return real_.Exists(id); }
  Result<int64_t> CollectGarbage(int64_t cutoff_ms,
                                 const std::function<bool(std::string_view id)>& referenced) override {
    return real_.CollectGarbage(cutoff_ms, referenced);
  }

 private:
  BlobStore& real_;
  std::atomic<int> failures_;
};

TEST_F(ImagingWorkerTest, RetryableStoreErrorsAreRetriedWithoutDuplicates) {
  const std::string doc = PutDoc("fax-page.tif");
  FlakyBlobStore flaky(*blobs_, 3);
  ImagingOptions o = Options();
  o.retry_backoff_initial = std::chrono::milliseconds(10);
  prometheus::Registry registry;
  ImagingWorker worker(o, *bus_, flaky, registry, SystemClock::Instance());
  ASSERT_TRUE(worker.Start().ok());
  Submit("fax_r", MakeSubmission("fax_r", doc, 2).SerializeAsString());
  ReadUntil([&] { return JobsOf("fax_r").size() >= 2 && !EventsOf("fax_r").empty(); });
  EXPECT_EQ(JobsOf("fax_r").size(), 2u);
  EXPECT_EQ(EventsOf("fax_r").size(), 1u);
  std::string metrics = SerializeMetrics(registry);
  EXPECT_NE(metrics.find("faxflow_imaging_renders_total{outcome=\"retry\"} 3"), std::string::npos) << metrics;
  worker.Stop();
  EXPECT_TRUE(worker.status().ok());
}

// A backlog is committed in few transactions (one per partition run), every submission exactly
// once, also when records in the middle of a run fail to prepare (retryable store errors) or
// are junk (dead letter).
TEST_F(ImagingWorkerTest, BacklogIsCommittedInFewTransactionsEachSubmissionOnce) {
  const std::string doc = PutDoc("fax-page.tif");
  auto count = bus_->PartitionCount(std::string(bus::topic::kSubmissions));
  ASSERT_TRUE(count.ok());
  // Every record on partition 0: one lane, so the number of transactions shows the batching.
  std::vector<std::string> ids;
  std::string junk_key;
  for (int i = 0; static_cast<int>(ids.size()) < 24 || junk_key.empty(); ++i) {
    const std::string id = "fax_b" + std::to_string(i);
    if (bus::PartitionForKey(id, *count) != 0) continue;
    if (static_cast<int>(ids.size()) < 24)
      ids.push_back(id);
    else
      junk_key = id;
  }
  const int kFaxes = static_cast<int>(ids.size());
  for (int i = 0; i < kFaxes; ++i) {
    Submit(ids[i], MakeSubmission(ids[i], doc, 1).SerializeAsString());
    if (i == kFaxes / 2) Submit(junk_key, "not a submission", /*with_schema=*/false);
  }
  FlakyBlobStore flaky(*blobs_, 2);
  ImagingOptions o = Options();
  o.threads = 1;
  o.retry_backoff_initial = std::chrono::milliseconds(10);
  o.txn_linger = std::chrono::seconds(5);  // runs close on size or failure, not on time
  prometheus::Registry registry;
  ImagingWorker worker(o, *bus_, flaky, registry, SystemClock::Instance());
  ASSERT_TRUE(worker.Start().ok());
  auto all_done = [&] {
    for (const auto& id : ids)
      if (JobsOf(id).empty()) return false;
    return dlq_.size() >= 1;
  };
  ReadUntil(all_done);
  ReadUntil([] { return false; }, std::chrono::seconds(1));  // anything duplicated would show up now
  for (const auto& id : ids) {
    EXPECT_EQ(JobsOf(id).size(), 1u) << id;
    EXPECT_EQ(EventsOf(id).size(), 1u) << id;
  }
  EXPECT_EQ(dlq_.size(), 1u);
  worker.Stop();
  EXPECT_TRUE(worker.status().ok());
  const std::string metrics = SerializeMetrics(registry);
  auto value = [&](const std::string& name) {
    const auto at = metrics.find("\n" + name + " ");
    EXPECT_NE(at, std::string::npos) << name << " in\n" << metrics;
    return at == std::string::npos ? -1.0 : std::stod(metrics.substr(at + name.size() + 2));
  };
  EXPECT_EQ(value("faxflow_imaging_transaction_records_sum"), kFaxes + 1.0)
      << "each record in one transaction";
  // Two injected failures split the run: at most (run, failed record alone) x 2 + the rest, and
  // a poll boundary or two.
  EXPECT_LE(value("faxflow_imaging_transaction_records_count"), 8.0) << "the backlog was batched";
  EXPECT_NE(metrics.find("faxflow_imaging_renders_total{outcome=\"retry\"} 2"), std::string::npos) << metrics;
}

TEST_F(ImagingWorkerTest, FencedProducerStopsTheThreadFatally) {
  const std::string doc = PutDoc("fax-page.tif");
  ImagingOptions o = Options();
  o.threads = 1;
  prometheus::Registry registry;
  ImagingWorker worker(o, *bus_, *blobs_, registry, SystemClock::Instance());
  ASSERT_TRUE(worker.Start().ok());
  // A newer producer with the transactional id of fax_f's input partition (a zombie's
  // replacement) fences it.
  auto count = bus_->PartitionCount(std::string(bus::topic::kSubmissions));
  ASSERT_TRUE(count.ok());
  auto newer = bus_->NewTransactionalProducer(
      ImagingWorker::TransactionalId("test", bus::PartitionForKey("fax_f", *count)));
  ASSERT_TRUE(newer.ok());
  Submit("fax_f", MakeSubmission("fax_f", doc, 1).SerializeAsString());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (worker.status().ok() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(worker.status().code(), Code::kFenced) << worker.status().ToString();
  worker.Stop();
  ReadUntil([] { return false; }, std::chrono::seconds(1));
  EXPECT_TRUE(JobsOf("fax_f").empty());  // the fenced transaction never became visible
}

}  // namespace
}  // namespace faxflow::imaging
