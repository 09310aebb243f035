// Integration: the modem worker on the embedded bus with real RocksDB stores, real SpanDSP
// calls over the sim line and a real gs-rendered 5-page fax. Asserts what a user sees: the
// terminal state of each job on fax.events, pages confirmed, no second dial of a finished
// job (calls.jsonl), resume from the first unconfirmed page, committed offsets, metrics.
#include "workers/modem/modem_worker.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "pages/pages.h"
#include "schemas/event.pb.h"
#include "schemas/job.pb.h"
#include "storage/blob_store.h"
#include "storage/dedup_store.h"
#include "tests/modem/test_doc.h"
#include "topics/catalogue.h"
#include "topics/embedded/embedded_bus.h"

namespace faxflow::modem {
namespace {

using testing::MakeTempDir;
using testing::MakeTestDoc;
using testing::TestDoc;

constexpr int kPages = 5;

class ModemWorkerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    doc_dir_ = new std::string(MakeTempDir("modem-wdoc"));
    doc_ = new TestDoc(MakeTestDoc(*doc_dir_, kPages));
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*doc_dir_);
    delete doc_;
    delete doc_dir_;
  }

  void SetUp() override {
    ASSERT_FALSE(doc_->multipage_path.empty()) << "gs failed to render the test document";
    dir_ = MakeTempDir("modem-worker");
    auto b = bus::OpenEmbeddedBus(dir_ + "/bus");
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    bus_ = std::move(*b);
    ASSERT_TRUE(bus_->EnsureTopics(bus::Catalogue()).ok());
    auto blobs =
        OpenRocksBlobStore(dir_ + "/blobs", RocksBlobStoreOptions{}, [this] { return clock_.NowMillis(); });
    ASSERT_TRUE(blobs.ok()) << blobs.status().ToString();
    blobs_ = std::move(*blobs);
    auto dedup = OpenRocksDedupStore(dir_ + "/dedup");
    ASSERT_TRUE(dedup.ok()) << dedup.status().ToString();
    dedup_ = std::move(*dedup);
    for (const auto& page : doc_->page_bytes) {
      auto id = blobs_->Put(page);
      ASSERT_TRUE(id.ok());
      page_ids_.push_back(*id);
    }
    auto p = bus_->NewProducer("test");
    ASSERT_TRUE(p.ok());
    producer_ = std::move(*p);

    options_.channels = 2;
    options_.work_dir = dir_ + "/work";
    options_.site = "test-site";
    options_.local_ident = "+1 555 0100";
    options_.sim.received_dir = dir_ + "/received";
    options_.poll_timeout = std::chrono::milliseconds(20);
    options_.retry.max_dials = 1;  // these tests check single attempts (retries: scenario_matrix_test)
    auto line = MakeSimLine(options_, clock_);
    ASSERT_TRUE(line.ok()) << line.status().ToString();
    line_ = std::move(*line);
  }

  void TearDown() override {
    worker_.reset();
    producer_.reset();
    bus_.reset();
    std::filesystem::remove_all(dir_);
  }

  void StartWorker() {
    worker_ = std::make_unique<ModemWorker>(options_, *bus_, *blobs_, *dedup_, *line_, registry_, clock_);
    ASSERT_TRUE(worker_->Start().ok());
  }

  v1::OutboundJob Job(const std::string& job_id, const std::string& number) {
    v1::OutboundJob job;
    job.set_job_id(job_id);
    job.set_fax_id("fax_" + job_id);
    job.set_tenant("acme");
    job.set_number(number);
    for (const auto& id : page_ids_) job.add_pages()->set_blob_id(id);
    job.set_resolution(v1::RESOLUTION_FINE);
    return job;
  }

  void Submit(const v1::OutboundJob& job, std::optional<int32_t> partition = std::nullopt) {
    bus::Message m;
    m.partition = partition;
    m.topic = std::string(bus::topic::kJobs);
    m.key = job.number();
    m.value = job.SerializeAsString();
    ASSERT_TRUE(producer_->Produce(m).ok());
  }

  // Reads fax.events until `done(events)` or the deadline.
  std::vector<v1::DeliveryEvent> AwaitEvents(
      const std::function<bool(const std::vector<v1::DeliveryEvent>&)>& done,
      std::chrono::seconds deadline = std::chrono::seconds(60)) {
    std::vector<v1::DeliveryEvent> events;
    bus::ConsumerOptions co;
    co.group = "test-reader-" + std::to_string(++readers_);
    auto c = bus_->NewConsumer(co);
    EXPECT_TRUE(c.ok());
    auto parts = bus::AllPartitions(*bus_, std::string(bus::topic::kEvents));
    EXPECT_TRUE(parts.ok());
    EXPECT_TRUE((*c)->Assign(*parts).ok());
    const auto end = std::chrono::steady_clock::now() + deadline;
    while (!done(events) && std::chrono::steady_clock::now() < end) {
      auto recs = (*c)->Poll(std::chrono::milliseconds(50), 1000);
      if (!recs.ok()) continue;
      for (const auto& r : *recs) {
        v1::DeliveryEvent ev;
        EXPECT_TRUE(ev.ParseFromString(r.value));
        EXPECT_EQ(r.key, ev.fax_id());
        events.push_back(ev);
      }
    }
    return events;
  }

  static std::map<std::string, v1::AttemptResult> Results(const std::vector<v1::DeliveryEvent>& events) {
    std::map<std::string, v1::AttemptResult> out;
    for (const auto& e : events)
      if (e.has_result() && e.result().terminal()) out[e.recipient_id()] = e.result();
    return out;
  }

  std::vector<std::string> CallLog() {
    std::vector<std::string> lines;
    std::ifstream in(line_->CallLogPath());
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }

  static int CountLines(const std::vector<std::string>& lines, const std::string& needle) {
    int n = 0;
    for (const auto& l : lines) n += l.find(needle) != std::string::npos;
    return n;
  }

  bool AwaitFinished(int64_t n, std::chrono::seconds deadline = std::chrono::seconds(60)) {
    const auto end = std::chrono::steady_clock::now() + deadline;
    while (worker_->JobsFinished() < n && std::chrono::steady_clock::now() < end)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return worker_->JobsFinished() >= n;
  }

  std::string Metrics() { return SerializeMetrics(registry_); }

  static std::string* doc_dir_;
  static TestDoc* doc_;
  std::string dir_;
  SystemClock clock_;
  prometheus::Registry registry_;
  std::unique_ptr<bus::Bus> bus_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<DedupStore> dedup_;
  std::unique_ptr<bus::Producer> producer_;
  std::vector<std::string> page_ids_;
  ModemOptions options_;
  std::unique_ptr<SimLineDriver> line_;
  std::unique_ptr<ModemWorker> worker_;
  int readers_ = 0;
};

std::string* ModemWorkerTest::doc_dir_ = nullptr;
TestDoc* ModemWorkerTest::doc_ = nullptr;

TEST_F(ModemWorkerTest, JobsInTerminalEventsOut) {
  StartWorker();
  Submit(Job("rcp_answer", "+15550100000"));
  Submit(Job("rcp_busy", "+15550100001"));
  Submit(Job("rcp_drop", "+15550100005"));
  Submit(Job("rcp_silence", "+15550100004"));
  Submit(Job("rcp_answer2", "+4930123456"));
  auto events = AwaitEvents([](const auto& ev) { return Results(ev).size() == 5; });
  auto results = Results(events);
  ASSERT_EQ(results.size(), 5u);

  EXPECT_EQ(results["rcp_answer"].state(), v1::STATE_DELIVERED) << results["rcp_answer"].detail();
  EXPECT_EQ(results["rcp_answer"].pages_sent(), 5);
  EXPECT_EQ(results["rcp_answer"].pages_total(), 5);
  EXPECT_EQ(results["rcp_answer"].completion_name(), "T30_ERR_OK");
  EXPECT_EQ(results["rcp_answer"].remote_csid(), "FAXFLOW SIM");
  EXPECT_EQ(results["rcp_answer"].bit_rate(), 14400);
  EXPECT_TRUE(results["rcp_answer"].ecm());
  EXPECT_GT(results["rcp_answer"].duration_ms(), 30'000);
  EXPECT_EQ(results["rcp_answer2"].state(), v1::STATE_DELIVERED);
  EXPECT_EQ(results["rcp_busy"].state(), v1::STATE_FAILED);
  EXPECT_EQ(results["rcp_busy"].reason(), v1::REASON_BUSY);
  EXPECT_EQ(results["rcp_drop"].state(), v1::STATE_PARTIAL);
  EXPECT_EQ(results["rcp_drop"].reason(), v1::REASON_DROPPED);
  EXPECT_EQ(results["rcp_drop"].pages_sent(), 2);
  EXPECT_EQ(results["rcp_silence"].state(), v1::STATE_FAILED);
  EXPECT_EQ(results["rcp_silence"].reason(), v1::REASON_NOT_A_FAX);

  // Per-page events, in order, for the delivered job; one AttemptStarted per job.
  std::vector<int> pages;
  int started = 0;
  for (const auto& e : events) {
    EXPECT_EQ(e.site(), "test-site");
    EXPECT_EQ(e.tenant(), "acme");
    EXPECT_EQ(e.event_id().rfind("evt_", 0), 0u) << e.event_id();
    if (e.recipient_id() == "rcp_answer" && e.has_page_confirmed())
      pages.push_back(e.page_confirmed().page());
    if (e.has_attempt_started()) {
      ++started;
      EXPECT_EQ(e.attempt_started().attempt(), 1);
      EXPECT_EQ(e.attempt_started().first_page(), 1);
      EXPECT_EQ(e.attempt_started().channel().rfind("sim-", 0), 0u);
    }
  }
  EXPECT_EQ(pages, (std::vector<int>{1, 2, 3, 4, 5}));
  EXPECT_EQ(started, 5);

  // The ledger is terminal for all; offsets are committed up to the end of every partition.
  for (const char* id : {"rcp_answer", "rcp_busy", "rcp_drop", "rcp_silence", "rcp_answer2"}) {
    auto l = dedup_->Get(id);
    ASSERT_TRUE(l.ok() && l->has_value()) << id;
    EXPECT_TRUE((*l)->terminal) << id;
  }
  ASSERT_TRUE(AwaitFinished(5));
  worker_->Stop();
  auto c = bus_->NewConsumer({std::string(bus::group::kModem), "check", true});
  ASSERT_TRUE(c.ok());
  auto parts = bus::AllPartitions(*bus_, std::string(bus::topic::kJobs));
  for (const auto& tp : *parts) {
    auto end = (*c)->EndOffset(tp);
    auto committed = (*c)->Committed(tp);
    ASSERT_TRUE(end.ok() && committed.ok());
    if (*end > 0) {
      EXPECT_EQ(committed->value_or(-1), *end) << "partition " << tp.partition;
    }
  }

  const std::string m = Metrics();
  EXPECT_NE(m.find("faxflow_modem_attempts_total 5"), std::string::npos) << m;
  EXPECT_NE(m.find("faxflow_modem_pages_sent_total 12"), std::string::npos);
  EXPECT_NE(m.find("faxflow_modem_outcomes_total{reason=\"busy\",state=\"failed\"} 1"), std::string::npos)
      << m;
  EXPECT_NE(m.find("faxflow_modem_channels{state=\"idle\"} 2"), std::string::npos);
}

TEST_F(ModemWorkerTest, RedeliveryOfAFinishedJobIsSuppressed) {
  StartWorker();
  const auto job = Job("rcp_once", "+15550100000");
  Submit(job);
  ASSERT_TRUE(AwaitFinished(1));
  Submit(job);  // the same job again (a producer retry or a redelivery after a crash)
  ASSERT_TRUE(AwaitFinished(2));
  worker_->Stop();

  auto lines = CallLog();
  EXPECT_EQ(CountLines(lines, "\"job_id\":\"rcp_once\""), 1) << "dialled once";
  auto ledger = dedup_->Get("rcp_once");
  ASSERT_TRUE(ledger.ok() && ledger->has_value());
  EXPECT_EQ((*ledger)->duplicates_suppressed, 1);
  EXPECT_EQ((*ledger)->attempts_begun, 1);
  EXPECT_NE(Metrics().find("faxflow_modem_dedup_suppressed_total 1"), std::string::npos);
  auto results =
      Results(AwaitEvents([](const auto& ev) { return !Results(ev).empty(); }, std::chrono::seconds(5)));
  EXPECT_EQ(results["rcp_once"].state(), v1::STATE_DELIVERED);
}

TEST_F(ModemWorkerTest, RedeliveryAfterRestartIsSuppressedAndOffsetsAdvance) {
  const auto job = Job("rcp_restart", "+15550100001");
  Submit(job);
  StartWorker();
  ASSERT_TRUE(AwaitFinished(1));
  worker_->Stop();
  worker_.reset();
  Submit(job);
  StartWorker();  // resumes at the committed offset: only the duplicate is read
  ASSERT_TRUE(AwaitFinished(1));
  worker_->Stop();
  EXPECT_EQ(CountLines(CallLog(), "\"job_id\":\"rcp_restart\""), 1);
  EXPECT_NE(Metrics().find("faxflow_modem_dedup_suppressed_total 1"), std::string::npos);
}

TEST_F(ModemWorkerTest, TerminalLedgerWithoutAResultEventReEmitsItOnRedelivery) {
  // A previous worker recorded the job terminal (partial, 2 of 5 pages) and died before it
  // produced the result event. The redelivered job must not be dialled, and the missing
  // terminal event must be produced from the ledger so the fax's status can end.
  const int64_t now = clock_.NowMillis();
  ASSERT_TRUE(dedup_->BeginAttempt("rcp_lost_event", 1, kPages, now).ok());
  ASSERT_TRUE(dedup_->ConfirmPage("rcp_lost_event", 1, 1, now).ok());
  ASSERT_TRUE(dedup_->ConfirmPage("rcp_lost_event", 1, 2, now).ok());
  ASSERT_TRUE(
      dedup_->FinishAttempt("rcp_lost_event", 1, true, v1::STATE_PARTIAL, v1::REASON_DROPPED, now).ok());
  StartWorker();
  Submit(Job("rcp_lost_event", "+15550100005"));
  auto results = Results(AwaitEvents([](const auto& ev) { return Results(ev).size() == 1; }));
  ASSERT_EQ(results.size(), 1u);
  const auto& r = results["rcp_lost_event"];
  EXPECT_TRUE(r.terminal());
  EXPECT_EQ(r.state(), v1::STATE_PARTIAL);
  EXPECT_EQ(r.reason(), v1::REASON_DROPPED);
  EXPECT_EQ(r.pages_sent(), 2);
  EXPECT_EQ(r.pages_total(), kPages);
  worker_->Stop();
  EXPECT_TRUE(CallLog().empty()) << "a terminal job must not be dialled again";
  EXPECT_NE(Metrics().find("faxflow_modem_dedup_suppressed_total 1"), std::string::npos);
}

TEST_F(ModemWorkerTest, UndecodableJobIsDeadLetteredWithTheOriginalAndTheNextJobIsServed) {
  StartWorker();
  bus::Message bad;
  bad.topic = std::string(bus::topic::kJobs);
  bad.key = "+15550100000";
  bad.value = std::string("\xff\xfe not a job", 13);
  bad.headers = {{"trace", "t-1"}};
  bad.partition = 0;
  ASSERT_TRUE(producer_->Produce(bad).ok());
  Submit(Job("rcp_after_bad", "+15550100000"), 0);  // same partition, behind the bad record

  auto results = Results(AwaitEvents([](const auto& ev) { return Results(ev).size() == 1; }));
  EXPECT_EQ(results["rcp_after_bad"].state(), v1::STATE_DELIVERED);

  bus::ConsumerOptions co;
  co.group = "test-dlq-reader";
  auto c = bus_->NewConsumer(co);
  ASSERT_TRUE(c.ok());
  auto parts = bus::AllPartitions(*bus_, std::string(bus::topic::kDeadLetter));
  ASSERT_TRUE(parts.ok());
  ASSERT_TRUE((*c)->Assign(*parts).ok());
  std::vector<bus::Record> dlq;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (dlq.empty() && std::chrono::steady_clock::now() < end) {
    auto recs = (*c)->Poll(std::chrono::milliseconds(50), 10);
    if (recs.ok()) dlq.insert(dlq.end(), recs->begin(), recs->end());
  }
  ASSERT_EQ(dlq.size(), 1u);
  EXPECT_EQ(dlq[0].value, bad.value);
  EXPECT_EQ(dlq[0].key, bad.key);
  ASSERT_NE(dlq[0].header("trace"), nullptr) << "original headers are kept";
  EXPECT_EQ(*dlq[0].header("trace"), "t-1");
  ASSERT_NE(dlq[0].header(bus::header::kReason), nullptr);
  EXPECT_NE(dlq[0].header(bus::header::kReason)->find("OutboundJob"), std::string::npos);
  EXPECT_EQ(*dlq[0].header(bus::header::kOrigin), "fax.jobs/0/0");
  worker_->Stop();
  EXPECT_EQ(CountLines(CallLog(), "\"job_id\":\"rcp_after_bad\""), 1);
}

TEST_F(ModemWorkerTest, InterruptedAttemptResumesAtFirstUnconfirmedPage) {
  // A previous worker began attempt 1, got pages 1 and 2 confirmed, then crashed mid-call.
  const int64_t now = clock_.NowMillis();
  ASSERT_TRUE(dedup_->BeginAttempt("rcp_resume", 1, kPages, now).ok());
  ASSERT_TRUE(dedup_->ConfirmPage("rcp_resume", 1, 1, now).ok());
  ASSERT_TRUE(dedup_->ConfirmPage("rcp_resume", 1, 2, now).ok());
  StartWorker();
  Submit(Job("rcp_resume", "+15550100000"));
  auto events = AwaitEvents([](const auto& ev) { return Results(ev).size() == 1; });
  auto results = Results(events);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results["rcp_resume"].state(), v1::STATE_DELIVERED) << results["rcp_resume"].detail();
  EXPECT_EQ(results["rcp_resume"].attempt(), 2);
  EXPECT_EQ(results["rcp_resume"].pages_sent(), 5);
  std::vector<int> pages;
  for (const auto& e : events) {
    if (e.has_attempt_started()) {
      EXPECT_EQ(e.attempt_started().attempt(), 2);
      EXPECT_EQ(e.attempt_started().first_page(), 3);
    }
    if (e.has_page_confirmed()) pages.push_back(e.page_confirmed().page());
  }
  EXPECT_EQ(pages, (std::vector<int>{3, 4, 5}));

  // The far end got exactly pages 3..5 on attempt 2, and no other call was made.
  auto lines = CallLog();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("\"attempt\":2"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("\"pages_received\":3"), std::string::npos) << lines[0];
  CallRequest req;
  req.number = "+15550100000";
  req.job_id = "rcp_resume";
  req.attempt = 2;
  auto got = pages::DecodeFile(line_->ReceivedPath(req));
  auto all = pages::DecodeFile(doc_->multipage_path);
  ASSERT_TRUE(got.ok() && all.ok());
  std::vector<pages::Bitmap> expected(all->begin() + 2, all->end());
  EXPECT_TRUE(pages::ComparePages(expected, *got).ok());

  auto ledger = dedup_->Get("rcp_resume");
  ASSERT_TRUE(ledger.ok() && ledger->has_value());
  EXPECT_EQ((*ledger)->attempts_begun, 2);
  EXPECT_EQ((*ledger)->pages_confirmed, 5);
  EXPECT_TRUE((*ledger)->terminal);
  EXPECT_NE(Metrics().find("faxflow_modem_resumed_total 1"), std::string::npos);
}

TEST_F(ModemWorkerTest, MissingPageBlobIsADocumentErrorWithoutDialling) {
  StartWorker();
  auto job = Job("rcp_nodoc", "+15550100000");
  job.mutable_pages(3)->set_blob_id(std::string(64, 'a'));
  Submit(job);
  auto results = Results(AwaitEvents([](const auto& ev) { return Results(ev).size() == 1; }));
  EXPECT_EQ(results["rcp_nodoc"].state(), v1::STATE_FAILED);
  EXPECT_EQ(results["rcp_nodoc"].reason(), v1::REASON_DOCUMENT_ERROR);
  EXPECT_TRUE(CallLog().empty()) << "nothing dialled";
}

TEST_F(ModemWorkerTest, MoreJobsThanChannelsAllFinish) {
  options_.channels = 1;
  StartWorker();
  for (int i = 0; i < 6; ++i)
    Submit(Job("rcp_bp" + std::to_string(i), i % 2 ? "+15550100001" : "+15550100002"));
  auto results = Results(AwaitEvents([](const auto& ev) { return Results(ev).size() == 6; }));
  EXPECT_EQ(results.size(), 6u);
  EXPECT_EQ(CallLog().size(), 6u);  // one record per (job, attempt), shared calls included
}

TEST_F(ModemWorkerTest, WatchdogDropsTheCallAndFreesTheChannel) {
  options_.channels = 1;
  options_.call_timeout_seconds = 20;  // a 5-page call needs about 70 s of line time
  StartWorker();
  Submit(Job("rcp_wd1", "+15550100000"));
  Submit(Job("rcp_wd2", "+15550100000"));
  auto results = Results(AwaitEvents([](const auto& ev) { return Results(ev).size() == 2; }));
  ASSERT_EQ(results.size(), 2u);
  for (const char* id : {"rcp_wd1", "rcp_wd2"}) {
    EXPECT_EQ(results[id].reason(), v1::REASON_DROPPED) << id;
    EXPECT_LE(results[id].duration_ms(), 20'000) << id;
    EXPECT_EQ(results[id].state(), results[id].pages_sent() > 0 ? v1::STATE_PARTIAL : v1::STATE_FAILED);
  }
  EXPECT_NE(Metrics().find("faxflow_modem_watchdog_total 2"), std::string::npos);
}

// Another worker wins the race for the same redelivered job between our ledger read and our
// BeginAttempt (simulated by a decorator over the real store that begins the attempt itself).
class RacingDedupStore final : public DedupStore {
 public:
  explicit RacingDedupStore(DedupStore& real) : real_(real) {}
  Result<std::optional<JobLedger>> Get(const std::string& job_id) override {
    auto ledger = real_.Get(job_id);
    if (ledger.ok()) {
      EXPECT_TRUE(real_.BeginAttempt(job_id, 1, kPages, 1).ok());  // the other worker
    }
    return ledger;
  }
  Status BeginAttempt(const std::string& j, int32_t a, int32_t t, int64_t n) override {
    return real_.BeginAttempt(j, a, t, n);
  }
  Status ConfirmPage(const std::string& j, int32_t a, int32_t p, int64_t n) override {
    return real_.ConfirmPage(j, a, p, n);
  }
  Status FinishAttempt(const std::string& j, int32_t a, bool term, int32_t st, int32_t r,
                       int64_t n) override {
    return real_.FinishAttempt(j, a, term, st, r, n);
  }
  Result<int32_t> CountSuppressed(const std::string& j) override { return real_.CountSuppressed(j); }

 private:
  DedupStore& real_;
};

TEST_F(ModemWorkerTest, LosingTheBeginAttemptRaceMeansNoDial) {
  RacingDedupStore racing(*dedup_);
  worker_ = std::make_unique<ModemWorker>(options_, *bus_, *blobs_, racing, *line_, registry_, clock_);
  ASSERT_TRUE(worker_->Start().ok());
  Submit(Job("rcp_race", "+15550100000"));
  ASSERT_TRUE(AwaitFinished(1));
  worker_->Stop();
  EXPECT_TRUE(CallLog().empty()) << "the loser must not dial";
  EXPECT_NE(Metrics().find("faxflow_modem_dedup_suppressed_total 1"), std::string::npos);
  EXPECT_NE(Metrics().find("faxflow_modem_attempts_total 0"), std::string::npos);
}

TEST_F(ModemWorkerTest, CommitStopsBelowAnUnfinishedJobAndEverythingAfterIsRedelivered) {
  // Same partition: a long call (real-time line) at offset 0, a quick busy call at offset 1.
  options_.sim.realtime = true;
  options_.sim.ring_ms = 10;
  options_.sim.busy_ms = 10;
  options_.stop_grace = std::chrono::milliseconds(0);
  auto line = MakeSimLine(options_, clock_);
  ASSERT_TRUE(line.ok());
  line_ = std::move(*line);
  StartWorker();
  Submit(Job("rcp_long", "+15550100000"), 0);
  Submit(Job("rcp_quick", "+15550100001"), 0);
  ASSERT_TRUE(AwaitFinished(1, std::chrono::seconds(10)));  // the busy one
  worker_->Stop();
  worker_.reset();
  auto c = bus_->NewConsumer({std::string(bus::group::kModem), "check", true});
  ASSERT_TRUE(c.ok());
  auto committed = (*c)->Committed({std::string(bus::topic::kJobs), 0});
  ASSERT_TRUE(committed.ok());
  EXPECT_EQ(committed->value_or(0), 0) << "offset 0 (rcp_long) is unfinished: nothing past it is committed";

  // Restart on a fast line: rcp_long resumes as attempt 2, rcp_quick is suppressed (finished).
  options_.sim.realtime = false;
  auto fast = MakeSimLine(options_, clock_);
  ASSERT_TRUE(fast.ok());
  line_ = std::move(*fast);
  StartWorker();
  ASSERT_TRUE(AwaitFinished(2));
  worker_->Stop();
  auto lines = CallLog();
  EXPECT_EQ(CountLines(lines, "\"job_id\":\"rcp_quick\""), 1);
  EXPECT_EQ(CountLines(lines, "\"job_id\":\"rcp_long\",\"attempt\":1"), 1);
  EXPECT_EQ(CountLines(lines, "\"job_id\":\"rcp_long\",\"attempt\":2"), 1);
  auto ledger = dedup_->Get("rcp_long");
  ASSERT_TRUE(ledger.ok() && ledger->has_value());
  EXPECT_TRUE((*ledger)->terminal);
  EXPECT_EQ((*ledger)->terminal_state, v1::STATE_DELIVERED);
  auto c2 = bus_->NewConsumer({std::string(bus::group::kModem), "check2", true});
  ASSERT_TRUE(c2.ok());
  EXPECT_EQ((*c2)->Committed({std::string(bus::topic::kJobs), 0})->value_or(0), 2);
}

TEST_F(ModemWorkerTest, StopTearsDownACallInProgressAndItResumesAfterRestart) {
  // Real-time pacing makes the call last long enough to be interrupted by Stop().
  options_.sim.realtime = true;
  options_.stop_grace = std::chrono::milliseconds(0);
  options_.sim.ring_ms = 200;
  auto line = MakeSimLine(options_, clock_);
  ASSERT_TRUE(line.ok());
  line_ = std::move(*line);
  StartWorker();
  Submit(Job("rcp_stop", "+15550100000"));
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (worker_->BusyChannels() == 0 && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(worker_->BusyChannels(), 1);
  worker_->Stop();
  worker_.reset();
  auto ledger = dedup_->Get("rcp_stop");
  ASSERT_TRUE(ledger.ok() && ledger->has_value());
  EXPECT_FALSE((*ledger)->terminal);
  EXPECT_EQ((*ledger)->attempts_begun, 1);
  EXPECT_EQ((*ledger)->attempts_finished, 1);

  // After the restart (fast line again), the job is redelivered and completes as attempt 2.
  options_.sim.realtime = false;
  auto fast = MakeSimLine(options_, clock_);
  ASSERT_TRUE(fast.ok());
  line_ = std::move(*fast);
  StartWorker();
  auto results = Results(AwaitEvents([](const auto& ev) { return Results(ev).size() == 1; }));
  EXPECT_EQ(results["rcp_stop"].state(), v1::STATE_DELIVERED);
  EXPECT_EQ(results["rcp_stop"].attempt(), 2);
}

}  // namespace
}  // namespace faxflow::modem
