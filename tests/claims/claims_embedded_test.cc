// Claims on the embedded bus, with imaging workers as threads of one process: members share the
// partitions of fax.submissions by spare capacity, follow load changes, take over a member that
// leaves (tombstone) or stops heart-beating (expiry), and imaging workers that follow the
// claims process every submission exactly once across a hand-over.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "common/metrics.h"
#include "producers/gateway/submission_service.h"
#include "schemas/event.pb.h"
#include "schemas/job.pb.h"
#include "schemas/submission.pb.h"
#include "storage/blob_store.h"
#include "storage/status_store.h"
#include "tests/support/support.h"
#include "topics/catalogue.h"
#include "topics/claims/claims.h"
#include "topics/embedded/embedded_bus.h"
#include "workers/imaging/imaging_worker.h"

namespace faxflow::claims {
namespace {

using faxflow::testing::Await;
using faxflow::testing::TempDir;

class ClaimsEmbeddedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto bus = bus::OpenEmbeddedBus(dir_.path() + "/bus");
    ASSERT_TRUE(bus.ok()) << bus.status().ToString();
    bus_ = std::move(*bus);
    ASSERT_TRUE(bus_->EnsureTopics(bus::Catalogue()).ok());
    auto n = bus_->PartitionCount(std::string(bus::topic::kSubmissions));
    ASSERT_TRUE(n.ok());
    partitions_ = *n;
  }

  std::unique_ptr<ClaimsMember> Member(const std::string& id, double load, bool start = true) {
    ClaimsOptions o;
    o.worker_id = id;
    // Generous against a loaded CI machine (a late heartbeat must not expire a live member).
    o.heartbeat = std::chrono::milliseconds(200);
    o.expiry = std::chrono::milliseconds(2000);
    o.compute_lag = false;
    LoadOptions lo;
    lo.weights = {0, 0, 0, 0};
    lo.capacity = 2;
    lo.artificial = load;
    lo.artificial_file = dir_.path() + "/" + id + ".load";
    auto m =
        std::make_unique<ClaimsMember>(o, *bus_, std::make_unique<LoadSampler>(lo, SystemClock::Instance()),
                                       registry_, SystemClock::Instance());
    EXPECT_TRUE((start ? m->Start() : m->Open()).ok());
    return m;
  }

  void SetLoad(const std::string& id, double load) {
    std::ofstream(dir_.path() + "/" + id + ".load") << load;
  }

  // Every partition owned by exactly one member, with the given counts.
  bool Owns(const std::vector<ClaimsMember*>& members, const std::vector<size_t>& counts) {
    std::multiset<int32_t> all;
    for (size_t i = 0; i < members.size(); ++i) {
      auto owned = members[i]->Owned();
      if (owned.size() != counts[i]) return false;
      all.insert(owned.begin(), owned.end());
    }
    if (all.size() != static_cast<size_t>(partitions_)) return false;
    for (int32_t p = 0; p < partitions_; ++p)
      if (all.count(p) != 1) return false;
    return true;
  }

  // Every partition owned exactly once, each member within the hysteresis band of its ideal.
  bool InBand(const std::vector<ClaimsMember*>& members, const std::vector<double>& ideal) {
    std::vector<size_t> counts;
    for (size_t i = 0; i < members.size(); ++i) {
      const double n = static_cast<double>(members[i]->Owned().size());
      if (std::abs(n - ideal[i]) > std::max(1.0, 0.25 * ideal[i]) + 1e-9) return false;
      counts.push_back(members[i]->Owned().size());
    }
    return Owns(members, counts);
  }

  TempDir dir_{"claims-embedded"};
  std::unique_ptr<bus::Bus> bus_;
  prometheus::Registry registry_;
  int32_t partitions_ = 0;
};

TEST_F(ClaimsEmbeddedTest, MembersShareByLoadFollowChangesAndTakeOverLeaversAndSilentOnes) {
  ASSERT_EQ(partitions_, 12);
  auto a = Member("a", 0.0);
  auto b = Member("b", 0.3);
  auto c = Member("c", 0.6);
  // spare 1 : 0.7 : 0.4 of 12 -> quotas 6, 4, 2 (ideal 5.71, 4, 2.29). Members start one after
  // the other and first see only themselves, so the table may settle anywhere within the
  // hysteresis band (max(1, 0.25 x ideal)) of the ideal, e.g. 5 / 5 / 2 as well as 6 / 4 / 2;
  // every partition owned exactly once either way.
  ASSERT_TRUE(Await([&] { return InBand({a.get(), b.get(), c.get()}, {12 * 1.0 / 2.1, 12 * 0.7 / 2.1, 12 * 0.4 / 2.1}); },
                    std::chrono::seconds(20)))
      << a->Owned().size() << " " << b->Owned().size() << " " << c->Owned().size();
  // Load change: a busy, c idle -> ideal 2.29, 4, 5.71. The two loads reach the table one after
  // the other, so the end state may be any within the hysteresis band (max(1, 0.25 x ideal)) of
  // the ideal, e.g. 3 / 4 / 5 as well as the quotas 2 / 4 / 6.
  SetLoad("a", 0.6);
  SetLoad("c", 0.0);
  ASSERT_TRUE(Await([&] { return InBand({a.get(), b.get(), c.get()}, {12 * 0.4 / 2.1, 12 * 0.7 / 2.1, 12 * 1.0 / 2.1}); },
                    std::chrono::seconds(20)))
      << a->Owned().size() << " " << b->Owned().size() << " " << c->Owned().size();
  // c leaves gracefully (tombstone): a and b take its 6 at once (before the expiry).
  c->Stop();
  // spare a 0.8, b 1.4 -> ideal 4.36, 7.64 (quotas 4, 8; within the band is as good).
  const std::vector<double> ideal_ab = {12 * 0.8 / 2.2, 12 * 1.4 / 2.2};
  ASSERT_TRUE(Await([&] { return InBand({a.get(), b.get()}, ideal_ab); }, std::chrono::seconds(5)))
      << a->Owned().size() << " " << b->Owned().size();
  // d joins but only heart-beats while the test steps it; then falls silent (like kill -9).
  auto d = Member("d", 0.3, /*start=*/false);
  ASSERT_TRUE(Await(
      [&] {
        EXPECT_TRUE(d->Step(std::chrono::milliseconds(20)).ok());
        return !d->Owned().empty();
      },
      std::chrono::seconds(10)));
  const auto silent_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(Await([&] { return InBand({a.get(), b.get()}, ideal_ab); }, std::chrono::seconds(10)));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - silent_at).count();
  EXPECT_LT(seconds, 6.0) << "expiry is 2 s";
  // The gateway preference only picks partitions of live owners, mostly the less loaded.
  std::map<int32_t, int> picks;
  for (uint64_t h = 0; h < 2000; ++h) {
    auto p = a->PreferredPartition(h);
    ASSERT_TRUE(p.has_value());
    picks[*p]++;
  }
  int to_b = 0;
  for (int32_t p : b->Owned()) to_b += picks[p];
  // spare a 0.4, b 0.7: b gets 0.7 / 1.1 = 64%.
  EXPECT_NEAR(to_b / 2000.0, 0.64, 0.05);
}

TEST_F(ClaimsEmbeddedTest, GatewayPrefersPartitionsOfLessLoadedWorkers) {
  auto a = Member("ga", 0.0);
  auto b = Member("gb", 0.0);
  ASSERT_TRUE(Await([&] { return Owns({a.get(), b.get()}, {6, 6}); }, std::chrono::seconds(20)));
  // b gets busier, but within the hysteresis band: the claims stay 6 / 6 ...
  SetLoad("gb", 0.3);
  ClaimsOptions vo;
  vo.worker_id = "gateway-view";
  vo.publish = false;
  ClaimsMember view(vo, *bus_, nullptr, registry_, SystemClock::Instance());
  ASSERT_TRUE(view.Start().ok());
  ASSERT_TRUE(Await(
      [&] {
        auto members = view.Members();
        return members.size() == 2 && members[1].score > 0.29;
      },
      std::chrono::seconds(10)));
  EXPECT_EQ(a->Owned().size(), 6u);
  EXPECT_EQ(b->Owned().size(), 6u);
  // ... and the gateway sends it fewer submissions: spare 2 : 1.4 -> 59% to a instead of 50%.
  auto blobs =
      OpenRocksBlobStore(dir_.path() + "/gw-blobs", {}, [] { return SystemClock::Instance().NowMillis(); });
  ASSERT_TRUE(blobs.ok());
  auto status = OpenRocksStatusStore(dir_.path() + "/gw-status");
  ASSERT_TRUE(status.ok());
  auto producer = bus_->NewProducer("gw");
  ASSERT_TRUE(producer.ok());
  SubmissionService service(
      SubmissionLimits{}, **producer, **blobs, **status, SystemClock::Instance(),
      [](std::string_view) -> Result<std::string> { return std::string("image/tiff"); });
  service.SetPartitionChooser([&view](const v1::Submission& sub) -> std::optional<int32_t> {
    return view.PreferredPartition(std::hash<std::string>{}(sub.fax_id()));
  });
  const std::vector<int32_t> owned_a = a->Owned();
  const std::set<int32_t> of_a(owned_a.begin(), owned_a.end());
  bus::ConsumerOptions co;
  co.group = "gw-reader";
  auto reader = bus_->NewConsumer(co);
  ASSERT_TRUE(reader.ok());
  auto tps = bus::AllPartitions(*bus_, std::string(bus::topic::kSubmissions));
  ASSERT_TRUE(tps.ok());
  ASSERT_TRUE((*reader)->Assign(*tps).ok());
  constexpr int kFaxes = 400;
  for (int i = 0; i < kFaxes; ++i) {
    SubmitRequest r;
    r.to = {"+15550100000"};
    r.documents.push_back({"page.tif", "II*\0 not really a tiff", ""});
    auto out = service.Submit(r);
    ASSERT_TRUE(out.ok()) << out.error_code << " " << out.message;
  }
  int to_a = 0, seen = 0;
  ASSERT_TRUE(Await(
      [&] {
        auto recs = (*reader)->Poll(std::chrono::milliseconds(100), 1000);
        EXPECT_TRUE(recs.ok());
        for (const auto& rec : *recs) {
          ++seen;
          if (of_a.contains(rec.partition)) ++to_a;
        }
        return seen >= kFaxes;
      },
      std::chrono::seconds(30)));
  EXPECT_NEAR(static_cast<double>(to_a) / kFaxes, 2.0 / 3.4, 0.06) << to_a << " of " << kFaxes;
  view.Stop();
}

class ClaimsImagingEmbeddedTest : public ClaimsEmbeddedTest {
 protected:
  void SetUp() override {
    ClaimsEmbeddedTest::SetUp();
    auto blobs =
        OpenRocksBlobStore(dir_.path() + "/blobs", {}, [] { return SystemClock::Instance().NowMillis(); });
    ASSERT_TRUE(blobs.ok());
    blobs_ = std::move(*blobs);
    auto doc = blobs_->Put(faxflow::testing::ReadFileOrDie(faxflow::testing::DataFile("fax-page.tif")));
    ASSERT_TRUE(doc.ok());
    doc_ = *doc;
    producer_ = std::move(bus_->NewProducer("test").value());
    bus::ConsumerOptions co;
    co.group = "claims-test-reader";
    reader_ = std::move(bus_->NewConsumer(co).value());
    auto tps = bus::AllPartitions(*bus_, std::string(bus::topic::kJobs));
    ASSERT_TRUE(tps.ok());
    ASSERT_TRUE(reader_->Assign(*tps).ok());
  }

  struct Worker {
    std::unique_ptr<ClaimsMember> claims;
    std::unique_ptr<imaging::ImagingWorker> imaging;
  };
  Worker StartWorker(const std::string& id) {
    Worker w;
    w.claims = Member(id, 0.0, /*start=*/false);
    imaging::ImagingOptions o;
    o.threads = 2;
    o.site = "claims";
    o.follow_claims = true;
    o.worker_id = id;
    o.poll_timeout = std::chrono::milliseconds(50);
    ClaimsMember* c = w.claims.get();
    o.on_partition_taken = [c](int32_t, double s) { c->ObserveTakeover(s); };
    o.on_partition_fenced = [c](int32_t) { c->CountFenced(); };
    w.imaging =
        std::make_unique<imaging::ImagingWorker>(o, *bus_, *blobs_, registry_, SystemClock::Instance());
    EXPECT_TRUE(w.imaging->Start().ok());
    imaging::ImagingWorker* iw = w.imaging.get();
    w.claims->SetOnAssignment([iw](const std::vector<int32_t>& owned) { iw->SetPartitions(owned); });
    w.claims->SetRendersInFlight([iw] { return iw->RendersInFlight(); });
    EXPECT_TRUE(w.claims->Start().ok());
    return w;
  }

  std::string Submit(int i) {
    v1::Submission s;
    s.set_fax_id("fax_emb_" + std::to_string(i));
    s.set_tenant("acme");
    auto* r = s.add_recipients();
    r->set_recipient_id("rcp_" + std::to_string(i));
    r->set_number("+15550100000");
    s.add_documents()->set_blob_id(doc_);
    bus::Message m;
    m.topic = std::string(bus::topic::kSubmissions);
    m.key = s.fax_id();
    m.value = s.SerializeAsString();
    m.partition = i % partitions_;
    EXPECT_TRUE(producer_->Produce(m).ok());
    return s.fax_id();
  }

  // Reads fax.jobs until every fax has a job; returns jobs per fax and per worker header.
  void ReadJobs(const std::set<std::string>& faxes, std::chrono::seconds limit) {
    Await(
        [&] {
          auto recs = reader_->Poll(std::chrono::milliseconds(100), 100);
          EXPECT_TRUE(recs.ok());
          for (const auto& r : *recs) {
            v1::OutboundJob job;
            EXPECT_TRUE(job.ParseFromString(r.value));
            jobs_[job.fax_id()]++;
            if (const auto* w = r.header(imaging::kWorkerHeader)) by_worker_[*w]++;
          }
          for (const auto& f : faxes)
            if (!jobs_.contains(f)) return false;
          return true;
        },
        limit, std::chrono::milliseconds(1));
  }

  std::unique_ptr<BlobStore> blobs_;
  std::string doc_;
  std::unique_ptr<bus::Producer> producer_;
  std::unique_ptr<bus::Consumer> reader_;
  std::map<std::string, int> jobs_, by_worker_;
};

TEST_F(ClaimsImagingEmbeddedTest, WorkersFollowClaimsAndProcessEverySubmissionOnceAcrossAHandOver) {
  Worker one = StartWorker("one");
  Worker two = StartWorker("two");
  ASSERT_TRUE(Await(
      [&] {
        return Owns({one.claims.get(), two.claims.get()}, {6, 6});
      },
      std::chrono::seconds(20)));
  std::set<std::string> faxes;
  for (int i = 0; i < 24; ++i) faxes.insert(Submit(i));
  ReadJobs(faxes, std::chrono::seconds(120));
  for (const auto& f : faxes) EXPECT_EQ(jobs_[f], 1) << f;
  EXPECT_GT(by_worker_["one"], 0);
  EXPECT_GT(by_worker_["two"], 0);

  // "two" leaves: "one" owns all 12 and serves them, nothing is repeated.
  two.imaging->Stop();
  two.claims->Stop();
  ASSERT_TRUE(Await([&] { return one.claims->Owned().size() == 12u; }, std::chrono::seconds(10)));
  for (int i = 24; i < 48; ++i) faxes.insert(Submit(i));
  ReadJobs(faxes, std::chrono::seconds(120));
  for (const auto& f : faxes) EXPECT_EQ(jobs_[f], 1) << f;
  EXPECT_TRUE(one.imaging->status().ok()) << one.imaging->status().ToString();
  const std::string metrics = SerializeMetrics(registry_);
  EXPECT_NE(metrics.find("faxflow_claims_takeover_seconds_count"), std::string::npos);
  EXPECT_NE(metrics.find("faxflow_claims_owned_partitions{worker=\"one\"} 12"), std::string::npos) << metrics;
  one.imaging->Stop();
  one.claims->Stop();
}

}  // namespace
}  // namespace faxflow::claims
