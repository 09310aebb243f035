// BroadcastReplica on the embedded bus: two gateway "nodes" (own status store, broadcast store,
// replica; shared bus and blob store, as with a blob server), the test plays imaging (rendered
// events applied to both status stores, as both status workers would from fax.events) and the
// owner (the `drives` predicate), and calls DriveOnce(). Checks:
//   - a broadcast created on A is readable on B (record, chunk ids), and after A fanned out, B's
//     own status store has every chunk fax (progress counts all recipients on B);
//   - A's own records read back never move its cursor back;
//   - only the node the predicate names drives;
//   - ChunkId is deterministic, so two nodes fanning out the same chunks (an overlap, the second
//     one not having seen the first one's records) produce the same job ids: the modem's dial
//     ledger suppresses the second set.
#include "producers/gateway/broadcast_replica.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <set>

#include "common/clock.h"
#include "common/ids.h"
#include "producers/gateway/broadcast.h"
#include "schemas/event.pb.h"
#include "schemas/job.pb.h"
#include "storage/blob_store.h"
#include "storage/status_store.h"
#include "tests/support/catalogue_bus.h"
#include "tests/support/support.h"
#include "topics/catalogue.h"
#include "topics/embedded/embedded_bus.h"

namespace faxflow {
namespace {

using namespace std::chrono_literals;
using testing::Await;

struct Node {
  std::string name;
  std::unique_ptr<StatusStore> status;
  std::unique_ptr<bus::Producer> producer;
  std::unique_ptr<SubmissionService> submissions;
  prometheus::Registry registry;
  std::unique_ptr<BroadcastReplica> replica;
  std::unique_ptr<BroadcastService> service;
  ~Node() {
    if (replica) replica->Stop();  // its follower applies to `service`
    service.reset();
  }
};

TEST(ChunkIdTest, DeterministicIdsThatLookLikeIdsAndKeepTheBroadcastTime) {
  const std::string bc = NewId("bc", 1'700'000'000'000);
  const std::string a = ChunkId("fax", bc, "3"), b = ChunkId("fax", bc, "3");
  EXPECT_EQ(a, b);
  EXPECT_TRUE(LooksLikeId(a, "fax")) << a;
  EXPECT_EQ(a.substr(4, 10), bc.substr(3, 10)) << "the broadcast's time part, so ids sort by time";
  EXPECT_NE(ChunkId("fax", bc, "4"), a);
  EXPECT_NE(ChunkId("fax", NewId("bc", 1'700'000'000'000), "3"), a) << "another broadcast";
  EXPECT_TRUE(LooksLikeId(ChunkId("rcp", bc, "3/7"), "rcp"));
}

class BroadcastReplicaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bus_ = testing::OpenCatalogueBus(dir_.path() + "/bus");
    ASSERT_TRUE(bus_);
    auto blobs = OpenRocksBlobStore(dir_.path() + "/blobs", {}, [] { return int64_t{1'700'000'000'000}; });
    ASSERT_TRUE(blobs.ok());
    blobs_ = std::move(*blobs);
    for (auto* n : {&a_, &b_}) StartNode(*n, n == &a_ ? "a" : "b");
  }

  void StartNode(Node& n, const std::string& name) {
    n.name = name;
    auto status = OpenRocksStatusStore(dir_.path() + "/status-" + name);
    ASSERT_TRUE(status.ok());
    n.status = std::move(*status);
    auto producer = bus_->NewProducer("gateway-" + name);
    ASSERT_TRUE(producer.ok());
    n.producer = std::move(*producer);
    n.submissions = std::make_unique<SubmissionService>(
        SubmissionLimits{}, *n.producer, *blobs_, *n.status, clock_,
        [](std::string_view) -> Result<std::string> { return std::string("text/plain"); });
    n.replica = std::make_unique<BroadcastReplica>(*bus_, *n.status);
    ASSERT_TRUE(n.replica->Open().ok());
    BroadcastOptions o;
    o.chunk_size = 2;
    o.batch_size = 2;
    n.service = std::make_unique<BroadcastService>(o, *n.submissions, *n.producer, *blobs_,
                                                   n.replica->status_store(), n.registry, clock_);
    ASSERT_TRUE(n.service->Open(dir_.path() + "/broadcasts-" + name).ok());
    Status s =
        n.replica->Start(*n.service, [this, name](const std::string&) { return owner_.load() == name[0]; });
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  // Imaging's rendered event for `fax_id`, applied to both nodes' status stores.
  void Rendered(const std::string& fax_id) {
    v1::DeliveryEvent ev;
    ev.set_event_id("rendered_" + fax_id);
    ev.set_fax_id(fax_id);
    ev.set_tenant("t");
    ev.set_at_ms(clock_.NowMillis());
    ev.mutable_rendered()->set_page_count(1);
    ev.mutable_rendered()->add_page_blob_ids("page-blob-1");
    for (auto* n : {&a_, &b_}) ASSERT_TRUE(n->status->Apply(ev).ok());
  }

  // Job ids on fax.jobs so far, with how often each was produced.
  std::map<std::string, int> Jobs() {
    if (!jobs_reader_) {
      auto c = bus_->NewConsumer({"jobs-reader", "jobs-reader", true});
      EXPECT_TRUE(c.ok());
      jobs_reader_ = std::move(*c);
      auto tps = bus::AllPartitions(*bus_, std::string(bus::topic::kJobs));
      EXPECT_TRUE(tps.ok());
      EXPECT_TRUE(jobs_reader_->Assign(*tps).ok());
    }
    for (;;) {
      auto recs = jobs_reader_->Poll(100ms, 1000);
      EXPECT_TRUE(recs.ok());
      if (!recs.ok() || recs->empty()) break;
      for (const auto& r : *recs) {
        v1::OutboundJob job;
        EXPECT_TRUE(job.ParseFromString(r.value));
        ++jobs_[job.job_id()];
      }
    }
    return jobs_;
  }

  int64_t Queued(Node& n, const std::string& id) {
    auto p = n.service->Progress("t", id);
    EXPECT_TRUE(p.ok());
    if (!p.ok() || !p->has_value()) return -1;
    int64_t known = 0;
    for (const auto& [state, count] : (*p)->counts)
      if (state != "queued") known += count;
    return known;
  }

  BroadcastRequest Request(int recipients) {
    BroadcastRequest r;
    r.tenant = "t";
    r.documents.push_back({"doc.txt", "broadcast document\n"});
    for (int i = 0; i < recipients; ++i) r.recipients.push_back({"+1555300" + std::to_string(1000 + i), {}});
    return r;
  }

  testing::TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<bus::Bus> bus_;
  std::unique_ptr<BlobStore> blobs_;
  std::atomic<char> owner_{'a'};
  Node a_, b_;
  std::unique_ptr<bus::Consumer> jobs_reader_;
  std::map<std::string, int> jobs_;
};

TEST_F(BroadcastReplicaTest, RecordsCursorAndChunkStatusReachTheOtherNodeWhichTakesOver) {
  auto created = a_.service->Create(Request(7));  // chunks of 2: 0..3
  ASSERT_TRUE(created.ok()) << created.message;
  const std::string id = created.id;
  // The record and chunk 0 reach B's own store.
  ASSERT_TRUE(Await([&] { return Queued(b_, id) >= 0; }, 10s)) << "the broadcast is not replicated to B";
  Rendered(created.template_fax_id);
  ASSERT_TRUE(b_.service->DriveOnce().ok());
  EXPECT_TRUE(Jobs().empty()) << "B does not own the tenant: it does not drive";
  ASSERT_TRUE(a_.service->DriveOnce().ok());
  EXPECT_EQ(Jobs().size(), 5u) << "A fanned out chunks 1..3 (5 recipients)";
  // B's status store has every chunk fax (from fax.broadcasts): all 7 recipients are known there,
  // chunk 0's 2 through fax.submissions in production (here: the render event's stubs are not
  // recipients), so count chunks 1..3.
  ASSERT_TRUE(Await(
      [&] {
        auto pb = b_.service->Progress("t", id);
        return Queued(b_, id) >= 5 && pb.ok() && pb->has_value() && (*pb)->state == "sending";
      },
      10s))
      << "chunk status records or A's final cursor not on B";
  // A read its own records back: its cursor did not move back.
  ASSERT_TRUE(a_.service->DriveOnce().ok());
  EXPECT_EQ(Jobs().size(), 5u);
  for (const auto& [job, n] : Jobs()) EXPECT_EQ(n, 1) << job << " produced again";

  // A is gone; B owns the tenant now and drives: nothing to fan out again.
  owner_ = 'b';
  a_.replica->Stop();
  ASSERT_TRUE(b_.service->DriveOnce().ok());
  for (const auto& [job, n] : Jobs()) EXPECT_EQ(n, 1) << job << " produced again by the new owner";
}

TEST_F(BroadcastReplicaTest, AnOverlapOfTwoDriversProducesTheSameJobIds) {
  auto created = a_.service->Create(Request(6));
  ASSERT_TRUE(created.ok()) << created.message;
  ASSERT_TRUE(Await([&] { return Queued(b_, created.id) >= 0; }, 10s));
  // B stops following (it will not see A's chunk records) and both believe they own the tenant.
  b_.replica->Stop();
  Rendered(created.template_fax_id);
  owner_ = 'a';
  ASSERT_TRUE(a_.service->DriveOnce().ok());
  const auto after_a = Jobs();
  ASSERT_EQ(after_a.size(), 4u);
  owner_ = 'b';
  ASSERT_TRUE(b_.service->DriveOnce().ok());
  const auto after_b = Jobs();
  EXPECT_EQ(after_b.size(), 4u) << "B's jobs have A's job ids (derived from the broadcast id)";
  for (const auto& [job, n] : after_b) EXPECT_EQ(n, 2) << job;
}

}  // namespace
}  // namespace faxflow
