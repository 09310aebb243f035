// Load-weighted claims with real `faxflow imaging` processes on a private Kafka broker
// (scripts/kafka; the tests kill and stop faxflow processes, and the topic names are fixed, so
// they do not use the shared broker). One `faxflow blobs` process holds the documents; the test
// produces submissions straight to fax.submissions (12 partitions) and reads fax.events and
// fax.jobs with read_committed consumers. Imaging processes run with every measured load weight
// at 0 so their score is the artificial test knob alone (imaging.load.artificial_file), which the
// test rewrites to change a worker's load while it runs.
//
// What users care about, asserted here:
//   - shares of the 12 partitions follow spare capacity within 15% of the rule (docs/claims.md)
//     and follow a load change within bounded time without thrashing;
//   - kill -9 of a worker: its partitions are owned again within 10 s and work continues;
//   - SIGSTOP a worker until its partitions move, SIGCONT: its late transaction is fenced and
//     nothing it produced for moved partitions is visible (every input offset has exactly one
//     committed output set);
//   - kill -9 cycles under a steady stream: 0 lost, 0 duplicate jobs (5 cycles in CI, 100 under
//     the `chaos` label with FAXFLOW_CHAOS_CYCLES=100).
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "schemas/event.pb.h"
#include "schemas/job.pb.h"
#include "schemas/load.pb.h"
#include "schemas/submission.pb.h"
#include "tests/e2e/e2e_util.h"
#include "topics/catalogue.h"
#include "topics/claims/assignment.h"
#include "topics/kafka/kafka_bus.h"
#include "workers/imaging/imaging_worker.h"

namespace faxflow::testing {
namespace {

constexpr int kPartitions = 12;
constexpr int kHeartbeatMs = 500;
constexpr int kExpiryMs = 3000;

int AdminPort(const ChildProcess& p) {
  const std::string log = p.Log();
  const std::string marker = "metrics on http://127.0.0.1:";
  const auto at = log.rfind(marker);
  if (at == std::string::npos) return -1;
  return std::stoi(log.substr(at + marker.size()));
}

// The latest WorkerLoad of every member, read from fax.members.
class MembersView {
 public:
  explicit MembersView(bus::Bus& bus) {
    auto c = bus.NewConsumer({"claims-test-members-" + std::to_string(::getpid()), "claims-test", false});
    EXPECT_TRUE(c.ok());
    consumer_ = std::move(*c);
    auto tps = bus::AllPartitions(bus, std::string(bus::topic::kMembers));
    EXPECT_TRUE(tps.ok());
    EXPECT_TRUE(consumer_->Assign(*tps).ok());
  }
  void Refresh() {
    for (int i = 0; i < 20; ++i) {
      auto recs = consumer_->Poll(std::chrono::milliseconds(i == 0 ? 200 : 20), 1000);
      if (!recs.ok() || recs->empty()) return;
      for (const auto& r : *recs) {
        if (r.value.empty()) {
          loads_.erase(r.key);
          continue;
        }
        v1::WorkerLoad l;
        if (l.ParseFromString(r.value)) loads_[r.key] = l;
      }
    }
  }
  // Owned partitions of `ids` whose last heartbeat is recent; empty map entry for the others.
  std::map<std::string, std::vector<int32_t>> Owned(const std::vector<std::string>& ids) {
    Refresh();
    std::map<std::string, std::vector<int32_t>> out;
    const int64_t now = SystemClock::Instance().NowMillis();
    for (const auto& id : ids) {
      auto it = loads_.find(id);
      if (it == loads_.end() || now - it->second.at_ms() > kExpiryMs) {
        out[id];
        continue;
      }
      out[id].assign(it->second.owned_partitions().begin(), it->second.owned_partitions().end());
    }
    return out;
  }
  double Score(const std::string& id) const {
    auto it = loads_.find(id);
    return it == loads_.end() ? -1 : it->second.score();
  }

 private:
  std::unique_ptr<bus::Consumer> consumer_;
  std::map<std::string, v1::WorkerLoad> loads_;
};

// Every partition owned by exactly one of `owned`.
bool CoversAllOnce(const std::map<std::string, std::vector<int32_t>>& owned) {
  std::multiset<int32_t> all;
  for (const auto& [id, ps] : owned) all.insert(ps.begin(), ps.end());
  if (all.size() != kPartitions) return false;
  for (int32_t p = 0; p < kPartitions; ++p)
    if (all.count(p) != 1) return false;
  return true;
}

std::string Describe(const std::map<std::string, std::vector<int32_t>>& owned) {
  std::string s;
  for (const auto& [id, ps] : owned) {
    s += id + "=[";
    for (int32_t p : ps) s += std::to_string(p) + " ";
    s += "] ";
  }
  return s;
}

// Committed outputs per fax and per input offset (header faxflow-imaging-input).
class Outputs {
 public:
  explicit Outputs(bus::Bus& bus) {
    auto c =
        bus.NewConsumer({"claims-test-out-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++),
                         "claims-test", true});
    EXPECT_TRUE(c.ok());
    consumer_ = std::move(*c);
    std::vector<bus::TopicPartition> all;
    for (auto topic : {bus::topic::kJobs, bus::topic::kEvents}) {
      auto tps = bus::AllPartitions(bus, std::string(topic));
      EXPECT_TRUE(tps.ok());
      all.insert(all.end(), tps->begin(), tps->end());
    }
    EXPECT_TRUE(consumer_->Assign(all).ok());
  }
  void Drain() {
    while (true) {
      auto recs = consumer_->Poll(std::chrono::milliseconds(200), 1000);
      if (!recs.ok() || recs->empty()) return;
      for (const auto& r : *recs) {
        const std::string* input = r.header(imaging::kInputHeader);
        const std::string* worker = r.header(imaging::kWorkerHeader);
        if (r.topic == bus::topic::kJobs) {
          v1::OutboundJob job;
          if (!job.ParseFromString(r.value)) continue;
          jobs_[job.fax_id()]++;
          if (input) job_inputs_[*input]++;
          if (worker) by_worker_[*worker]++;
        } else {
          v1::DeliveryEvent ev;
          if (!ev.ParseFromString(r.value) || !ev.has_rendered()) continue;
          rendered_[ev.fax_id()]++;
        }
      }
    }
  }
  int jobs(const std::string& fax) const { return jobs_.contains(fax) ? jobs_.at(fax) : 0; }
  int rendered(const std::string& fax) const { return rendered_.contains(fax) ? rendered_.at(fax) : 0; }
  // Inputs with more than one committed job set (each test submission has one recipient).
  std::vector<std::string> DuplicateInputs() const {
    std::vector<std::string> out;
    for (const auto& [input, n] : job_inputs_)
      if (n > 1) out.push_back(input);
    return out;
  }
  const std::map<std::string, int>& by_worker() const { return by_worker_; }

 private:
  static inline int counter_ = 0;
  std::unique_ptr<bus::Consumer> consumer_;
  std::map<std::string, int> jobs_, rendered_, job_inputs_, by_worker_;
};

class ClaimsKafkaE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("faxflow-claims");
    broker_ = new PrivateKafkaBroker(dir_->path() + "/kafka");
    if (!broker_->ok()) return Fail("scripts/kafka could not start a private broker");
    blob_port_ = FreePort();
    blobs_ = new ChildProcess(
        {FaxflowBinary(), "blobs", "--set", "data_dir=" + dir_->path() + "/blobs", "--set",
         "blob.listen=127.0.0.1:" + std::to_string(blob_port_), "--set", "admin.listen=127.0.0.1:0"},
        dir_->path() + "/blobs.log");
    bus::KafkaBusOptions ko;
    ko.bootstrap = broker_->bootstrap();
    auto b = bus::OpenKafkaBus(ko);
    if (!b.ok()) return Fail(b.status().ToString());
    bus_ = b->release();
    if (!bus_->EnsureTopics(bus::Catalogue()).ok()) return Fail("topics");
    // Fresh topics: wait until a probe record on each topic the test reads comes back (a
    // consumer assigned before the partition leaders are known could miss the start).
    auto probe_producer = bus_->NewProducer("claims-test-probe");
    if (!probe_producer.ok()) return Fail(probe_producer.status().ToString());
    for (auto topic : {bus::topic::kMembers, bus::topic::kJobs, bus::topic::kEvents}) {
      bus::Message m;
      m.topic = std::string(topic);
      m.key = "probe";  // empty value: a members tombstone, an empty job/event (no fax id)
      m.partition = 0;
      if (!(*probe_producer)->Produce(m).ok()) return Fail("probe to " + m.topic);
      int attempt = 0;
      const bool seen = Await(
          [&] {
            auto c =
                bus_->NewConsumer({"claims-test-probe-" + std::to_string(attempt++), "claims-test", false});
            if (!c.ok() || !(*c)->Assign({{m.topic, 0}}).ok()) return false;
            auto recs = (*c)->Poll(std::chrono::seconds(2), 10);
            return recs.ok() && !recs->empty();
          },
          std::chrono::seconds(60), std::chrono::milliseconds(100));
      if (!seen) return Fail("probe record on " + m.topic + " never came back");
    }
    if (!Await([] { return HttpGet(blob_port_, "/healthz").status == 200; }, std::chrono::seconds(30)))
      return Fail("blob server: " + blobs_->Log());
    httplib::Client client("127.0.0.1", blob_port_);
    auto put = client.Put("/v1/blobs", ReadFileOrDie(DataFile("fax-page.tif")), "application/octet-stream");
    if (!put || (put->status != 200 && put->status != 201)) return Fail("blob upload");
    small_doc_ = nlohmann::json::parse(put->body).at("id");
    const std::string ps = WriteNumberedPostScript(dir_->path() + "/eight.ps", 8);
    auto put2 = client.Put("/v1/blobs", ReadFileOrDie(ps), "application/octet-stream");
    if (!put2 || (put2->status != 200 && put2->status != 201)) return Fail("blob upload");
    slow_doc_ = nlohmann::json::parse(put2->body).at("id");
    ready_ = true;
  }
  static void Fail(const std::string& why) { setup_error_ = why; }
  static void TearDownTestSuite() {
    delete bus_;
    delete blobs_;
    delete broker_;
    delete dir_;
  }

  void SetUp() override {
    ASSERT_TRUE(ready_) << setup_error_;
    producer_ = std::move(bus_->NewProducer("claims-test").value());
    members_ = std::make_unique<MembersView>(*bus_);
  }

  void TearDown() override {
    // Graceful stop: tombstones, so the next test starts with an empty member table.
    for (auto& [id, w] : workers_) {
      if (w && w->Running()) w->Signal(SIGCONT), w->Signal(SIGTERM);
    }
    for (auto& [id, w] : workers_)
      if (w) w->Wait(std::chrono::seconds(30));
    workers_.clear();
  }

  std::string LoadFile(const std::string& id) const { return dir_->path() + "/" + id + ".load"; }
  void SetLoad(const std::string& id, double load) {
    std::ofstream(LoadFile(id) + ".tmp") << load << "\n";
    std::rename((LoadFile(id) + ".tmp").c_str(), LoadFile(id).c_str());
  }

  void StartWorker(const std::string& id, double load) {
    SetLoad(id, load);
    std::vector<std::string> argv = {FaxflowBinary(), "imaging", "--kafka", broker_->bootstrap()};
    for (const std::string& set :
         {"data_dir=" + dir_->path() + "/" + id, "blob.url=http://127.0.0.1:" + std::to_string(blob_port_),
          std::string("admin.listen=127.0.0.1:0"), std::string("log.level=info"), std::string("site=claims"),
          std::string("claims.mode=on"), "claims.worker_id=" + id,
          "claims.heartbeat_ms=" + std::to_string(kHeartbeatMs),
          "claims.expiry_ms=" + std::to_string(kExpiryMs), std::string("imaging.workers=2"),
          std::string("imaging.load.capacity=2"), std::string("imaging.load.weight_cpu=0"),
          std::string("imaging.load.weight_memory=0"), std::string("imaging.load.weight_renders=0"),
          std::string("imaging.load.weight_lag=0"), "imaging.load.artificial_file=" + LoadFile(id)}) {
      argv.push_back("--set");
      argv.push_back(set);
    }
    workers_[id] = std::make_unique<ChildProcess>(
        argv, dir_->path() + "/" + id + "-" + std::to_string(starts_++) + ".log");
  }

  // Produces one submission (one recipient) on `partition`; returns its fax id.
  std::string Submit(int32_t partition, bool slow = false) {
    v1::Submission s;
    const std::string id = "fax_claims_" + std::to_string(::getpid()) + "_" + std::to_string(next_fax_++);
    s.set_fax_id(id);
    s.set_tenant("acme");
    s.set_submitted_at_ms(SystemClock::Instance().NowMillis());
    s.set_source("test");
    auto* r = s.add_recipients();
    r->set_recipient_id("rcp_" + id);
    r->set_number("+15550100000");
    auto* d = s.add_documents();
    d->set_blob_id(slow ? slow_doc_ : small_doc_);
    s.mutable_options()->set_resolution(v1::RESOLUTION_NORMAL);
    bus::Message m;
    m.topic = std::string(bus::topic::kSubmissions);
    m.key = id;
    m.value = s.SerializeAsString();
    m.headers.push_back({std::string(bus::header::kSchema), "faxflow.v1.Submission"});
    m.partition = partition;
    auto pos = producer_->Produce(m);
    EXPECT_TRUE(pos.ok()) << pos.status().ToString();
    submitted_.push_back(id);
    return id;
  }

  // Awaits every submitted fax having exactly one job and one rendered event; reports the rest.
  void ExpectAllExactlyOnce(Outputs& out, std::chrono::seconds limit) {
    const bool all = Await(
        [&] {
          out.Drain();
          for (const auto& id : submitted_)
            if (out.jobs(id) < 1 || out.rendered(id) < 1) return false;
          return true;
        },
        limit, std::chrono::milliseconds(200));
    out.Drain();
    int lost = 0, duplicated = 0;
    for (const auto& id : submitted_) {
      if (out.jobs(id) == 0) ++lost;
      if (out.jobs(id) > 1 || out.rendered(id) > 1) ++duplicated;
    }
    EXPECT_TRUE(all) << lost << " of " << submitted_.size() << " submissions not rendered in time";
    EXPECT_EQ(lost, 0);
    EXPECT_EQ(duplicated, 0);
    EXPECT_TRUE(out.DuplicateInputs().empty()) << out.DuplicateInputs().front();
  }

  // Awaits the three workers' published claims matching the rule within 15% of 12 partitions.
  bool AwaitShares(const std::vector<std::string>& ids, const std::map<std::string, double>& loads,
                   std::chrono::seconds limit, std::string* why) {
    return Await([&] { return SharesMatch(ids, loads, why); }, limit, std::chrono::milliseconds(250));
  }
  bool SharesMatch(const std::vector<std::string>& ids, const std::map<std::string, double>& loads,
                   std::string* why, const std::map<std::string, std::vector<int32_t>>* snapshot = nullptr) {
    {
      auto owned = snapshot ? *snapshot : members_->Owned(ids);
      *why = Describe(owned);
      if (!CoversAllOnce(owned)) return false;
      double spare_sum = 0;
      for (const auto& id : ids) spare_sum += 1.0 - loads.at(id);
      for (const auto& id : ids) {
        const double ideal = kPartitions * (1.0 - loads.at(id)) / spare_sum;
        const double n = static_cast<double>(owned[id].size());
        if (std::fabs(n - ideal) > 0.15 * kPartitions) return false;  // what the issue asks
        // The rule's own guarantee (docs/claims.md): within the hysteresis band, a fixed point.
        if (std::fabs(n - ideal) > std::max(1.0, 0.25 * ideal) + 1e-9) return false;
        if (std::fabs(members_->Score(id) - loads.at(id)) > 1e-6) return false;
      }
      return true;
    }
  }

  static inline TempDir* dir_ = nullptr;
  static inline PrivateKafkaBroker* broker_ = nullptr;
  static inline ChildProcess* blobs_ = nullptr;
  static inline bus::Bus* bus_ = nullptr;
  static inline int blob_port_ = 0;
  static inline std::string small_doc_, slow_doc_;
  static inline bool ready_ = false;
  static inline std::string setup_error_;
  static inline int next_fax_ = 0;
  static inline int starts_ = 0;

  std::unique_ptr<bus::Producer> producer_;
  std::unique_ptr<MembersView> members_;
  std::map<std::string, std::unique_ptr<ChildProcess>> workers_;
  std::vector<std::string> submitted_;
};

TEST_F(ClaimsKafkaE2E, SharesFollowSpareCapacityAndLoadChangesWithoutThrashing) {
  const std::vector<std::string> ids = {"share-a", "share-b", "share-c"};
  std::map<std::string, double> loads = {{"share-a", 0.0}, {"share-b", 0.3}, {"share-c", 0.6}};
  for (const auto& id : ids) StartWorker(id, loads[id]);
  std::string why;
  ASSERT_TRUE(AwaitShares(ids, loads, std::chrono::seconds(90), &why)) << why;
  std::cerr << "shares at loads 0/0.3/0.6: " << why << "\n";
  Outputs out(*bus_);
  for (int i = 0; i < 24; ++i) Submit(i % kPartitions);

  // Stable: no claim moves while loads stay the same.
  const auto before = members_->Owned(ids);
  std::this_thread::sleep_for(std::chrono::seconds(3));  // observation window, not a wait for a condition
  EXPECT_EQ(members_->Owned(ids), before) << "claims moved without a load change";

  // Load change: a becomes busy, c idle. Ownership follows within 20 s; count the moves.
  loads = {{"share-a", 0.6}, {"share-b", 0.3}, {"share-c", 0.0}};
  SetLoad("share-a", 0.6);
  SetLoad("share-c", 0.0);
  const auto start = std::chrono::steady_clock::now();
  std::map<int32_t, std::string> owner;
  for (const auto& [id, ps] : before)
    for (int32_t p : ps) owner[p] = id;
  int moves = 0;
  const bool followed = Await(
      [&] {
        auto now = members_->Owned(ids);
        for (const auto& [id, ps] : now)
          for (int32_t p : ps)
            if (owner[p] != id) {
              owner[p] = id;
              ++moves;
            }
        return SharesMatch(ids, loads, &why, &now);
      },
      std::chrono::seconds(20), std::chrono::milliseconds(200));
  ASSERT_TRUE(followed) << why;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "load change followed in " << seconds << " s with " << moves << " partition moves: " << why
            << "\n";
  // 6/4/2 -> within the band of 2.29/4/5.71 needs 3 or 4 moves; thrashing would be many more.
  EXPECT_GE(moves, 3);
  EXPECT_LE(moves, 8);
  const auto after = members_->Owned(ids);
  std::this_thread::sleep_for(std::chrono::seconds(3));  // observation window
  EXPECT_EQ(members_->Owned(ids), after) << "claims kept moving after the change";
  for (int i = 0; i < 24; ++i) Submit(i % kPartitions);
  ExpectAllExactlyOnce(out, std::chrono::seconds(120));
}

TEST_F(ClaimsKafkaE2E, KillNineIsReownedWithinTenSecondsAndProcessingContinues) {
  const std::vector<std::string> ids = {"kill-a", "kill-b", "kill-c"};
  std::map<std::string, double> loads = {{"kill-a", 0.0}, {"kill-b", 0.0}, {"kill-c", 0.0}};
  for (const auto& id : ids) StartWorker(id, 0.0);
  std::string why;
  ASSERT_TRUE(AwaitShares(ids, loads, std::chrono::seconds(90), &why)) << why;
  Outputs out(*bus_);
  for (int i = 0; i < 24; ++i) Submit(i % kPartitions);
  const int admin_b = AdminPort(*workers_["kill-b"]);
  ASSERT_TRUE(Await([&] { return ScrapeMetric(admin_b, "faxflow_imaging_renders_total") >= 1; },
                    std::chrono::seconds(60)));

  workers_["kill-b"]->Signal(SIGKILL);
  workers_["kill-b"]->Wait(std::chrono::seconds(10));
  const auto killed_at = std::chrono::steady_clock::now();
  // Re-owned: a and c together own all 12 (they published it after taking the partitions).
  const std::vector<std::string> survivors = {"kill-a", "kill-c"};
  ASSERT_TRUE(Await(
      [&] {
        auto owned = members_->Owned(survivors);
        why = Describe(owned);
        return CoversAllOnce(owned);
      },
      std::chrono::seconds(15), std::chrono::milliseconds(100)))
      << why;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  std::cerr << "partitions of the killed worker re-owned after " << seconds << " s: " << why << "\n";
  EXPECT_LE(seconds, 10.0);
  for (int i = 0; i < 24; ++i) Submit(i % kPartitions);
  ExpectAllExactlyOnce(out, std::chrono::seconds(120));
  const int admin_a = AdminPort(*workers_["kill-a"]);
  EXPECT_GE(ScrapeMetric(admin_a, "faxflow_claims_takeover_seconds_count") +
                ScrapeMetric(AdminPort(*workers_["kill-c"]), "faxflow_claims_takeover_seconds_count"),
            1.0);
}

TEST_F(ClaimsKafkaE2E, StoppedStaleOwnerIsFencedAndItsLateOutputNeverVisible) {
  const std::vector<std::string> ids = {"stop-a", "stop-b", "stop-c"};
  std::map<std::string, double> loads = {{"stop-a", 0.0}, {"stop-b", 0.0}, {"stop-c", 0.0}};
  for (const auto& id : ids) StartWorker(id, 0.0);
  std::string why;
  ASSERT_TRUE(AwaitShares(ids, loads, std::chrono::seconds(90), &why)) << why;
  Outputs out(*bus_);
  // Slow (8-page) documents on a's partitions, so a is rendering when it is stopped.
  const auto owned_a = members_->Owned(ids)["stop-a"];
  ASSERT_FALSE(owned_a.empty());
  for (int round = 0; round < 3; ++round)
    for (int32_t p : owned_a) Submit(p, /*slow=*/true);
  const int admin_a = AdminPort(*workers_["stop-a"]);
  ASSERT_GT(admin_a, 0);
  ASSERT_TRUE(Await([&] { return ScrapeMetric(admin_a, "faxflow_imaging_documents_in_flight") >= 1; },
                    std::chrono::seconds(60)));
  workers_["stop-a"]->Signal(SIGSTOP);
  const std::vector<std::string> others = {"stop-b", "stop-c"};
  ASSERT_TRUE(Await(
      [&] {
        auto owned = members_->Owned(others);
        why = Describe(owned);
        return CoversAllOnce(owned);
      },
      std::chrono::seconds(20), std::chrono::milliseconds(100)))
      << why;
  // The new owners serve a's old partitions (the stale owner's open transaction was aborted by
  // the fencing init): all slow documents complete while a is still stopped.
  for (int32_t p = 0; p < kPartitions; ++p) Submit(p);
  ExpectAllExactlyOnce(out, std::chrono::seconds(120));
  const auto jobs_by_a_before = out.by_worker().contains("stop-a") ? out.by_worker().at("stop-a") : 0;

  workers_["stop-a"]->Signal(SIGCONT);
  // a finishes the render it was doing; its commit is fenced (counted), nothing becomes visible.
  ASSERT_TRUE(Await([&] { return ScrapeMetric(admin_a, "faxflow_claims_fenced_total") >= 1; },
                    std::chrono::seconds(60)))
      << workers_["stop-a"]->Log().substr(0, 20000);
  // Give any late output of a the time to (not) show up, then check: still exactly once, and no
  // job of a beyond those committed before it was stopped... unless a re-owned partitions, in
  // which case its new output is for new inputs only (no duplicates).
  ASSERT_TRUE(Await(
      [&] {
        auto owned = members_->Owned(ids);
        return CoversAllOnce(owned) && !owned["stop-a"].empty();
      },
      std::chrono::seconds(30)));
  for (int32_t p = 0; p < kPartitions; ++p) Submit(p);
  ExpectAllExactlyOnce(out, std::chrono::seconds(120));
  std::cerr << "jobs committed by the stale owner before SIGCONT: " << jobs_by_a_before
            << ", total after: " << (out.by_worker().contains("stop-a") ? out.by_worker().at("stop-a") : 0)
            << "\n";
}

TEST_F(ClaimsKafkaE2E, KillNineCyclesUnderASteadyStreamLoseAndDuplicateNothing) {
  int cycles = 5;
  if (const char* env = std::getenv("FAXFLOW_CHAOS_CYCLES")) cycles = std::max(1, std::atoi(env));
  const std::vector<std::string> ids = {"chaos-a", "chaos-b", "chaos-c"};
  std::map<std::string, double> loads = {{"chaos-a", 0.0}, {"chaos-b", 0.2}, {"chaos-c", 0.4}};
  for (const auto& id : ids) StartWorker(id, loads[id]);
  std::string why;
  ASSERT_TRUE(AwaitShares(ids, loads, std::chrono::seconds(90), &why)) << why;
  Outputs out(*bus_);
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::thread stream([&] {
    int i = 0;
    while (!stop.load()) {
      {
        std::lock_guard lock(mu);
        Submit(i++ % kPartitions);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the stream's pace
    }
  });
  std::mt19937 rng(42);
  for (int cycle = 0; cycle < cycles; ++cycle) {
    const std::string& victim = ids[rng() % ids.size()];
    workers_[victim]->Signal(SIGKILL);
    workers_[victim]->Wait(std::chrono::seconds(10));
    // Restart at once half of the time, after the others took over the other half.
    if (rng() % 2) {
      std::vector<std::string> others;
      for (const auto& id : ids)
        if (id != victim) others.push_back(id);
      Await([&] { return CoversAllOnce(members_->Owned(others)); }, std::chrono::seconds(15),
            std::chrono::milliseconds(100));
    }
    StartWorker(victim, loads[victim]);
    // Wait until the restarted worker owns partitions again (so the next kill hits a working set).
    ASSERT_TRUE(Await(
        [&] {
          auto owned = members_->Owned(ids);
          return CoversAllOnce(owned) && !owned[victim].empty();
        },
        std::chrono::seconds(60), std::chrono::milliseconds(100)))
        << "cycle " << cycle << ": " << Describe(members_->Owned(ids));
    std::cerr << "cycle " << cycle + 1 << "/" << cycles << ": killed " << victim << "\n";
  }
  stop.store(true);
  stream.join();
  std::lock_guard lock(mu);
  ExpectAllExactlyOnce(out, std::chrono::seconds(180));
  std::cerr << submitted_.size() << " submissions, " << cycles << " kill -9 cycles\n";
}

}  // namespace
}  // namespace faxflow::testing
