// Test harness for modem worker scenarios: one embedded bus, blob store, dial ledger, schedule
// store and sim line in a temp dir, the pages of a gs-rendered test document in the blob store,
// and helpers to submit jobs and cancel commands, read fax.events and the sim call log
// (calls.jsonl), and compare received pages pixel for pixel.
//
// For tests/modem (scenario matrix, duplicate storm, crash tests). Threading: the test thread.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "pages/pages.h"
#include "schemas/control.pb.h"
#include "schemas/event.pb.h"
#include "schemas/job.pb.h"
#include "storage/blob_store.h"
#include "storage/dedup_store.h"
#include "storage/rocks_blob_store.h"
#include "tests/modem/test_doc.h"
#include "topics/catalogue.h"
#include "topics/embedded/embedded_bus.h"
#include "workers/modem/modem_worker.h"
#include "workers/modem/schedule_store.h"

namespace faxflow::modem::testing {

class ModemHarness {
 public:
  // `doc` must outlive the harness.
  explicit ModemHarness(const TestDoc& doc) : doc_(doc) {
    dir_ = MakeTempDir("modem-harness");
    auto b = bus::OpenEmbeddedBus(dir_ + "/bus");
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    bus_ = std::move(*b);
    EXPECT_TRUE(bus_->EnsureTopics(bus::Catalogue()).ok());
    auto blobs =
        OpenRocksBlobStore(dir_ + "/blobs", RocksBlobStoreOptions{}, [this] { return clock_.NowMillis(); });
    EXPECT_TRUE(blobs.ok()) << blobs.status().ToString();
    blobs_ = std::move(*blobs);
    auto dedup = OpenRocksDedupStore(dir_ + "/dedup");
    EXPECT_TRUE(dedup.ok()) << dedup.status().ToString();
    dedup_ = std::move(*dedup);
    auto sched = OpenRocksScheduleStore(dir_ + "/schedule");
    EXPECT_TRUE(sched.ok()) << sched.status().ToString();
    schedule_ = std::move(*sched);
    for (const auto& page : doc_.page_bytes) {
      auto id = blobs_->Put(page);
      EXPECT_TRUE(id.ok());
      page_ids_.push_back(*id);
    }
    auto p = bus_->NewProducer("test");
    EXPECT_TRUE(p.ok());
    producer_ = std::move(*p);
    options.channels = 2;
    options.work_dir = dir_ + "/work";
    options.site = "test-site";
    options.local_ident = "+1 555 0100";
    options.sim.received_dir = dir_ + "/received";
    options.poll_timeout = std::chrono::milliseconds(20);
    options.stop_grace = std::chrono::milliseconds(0);
  }
  ~ModemHarness() {
    workers_.clear();
    lines_.clear();
    producer_.reset();
    bus_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Starts a worker (several may run, sharing the stores and the line).
  ModemWorker& StartWorker(std::optional<ModemOptions> o = std::nullopt) {
    ModemOptions opts = o.value_or(options);
    if (!line_) {
      auto line = MakeSimLine(opts, clock_);
      EXPECT_TRUE(line.ok()) << line.status().ToString();
      line_ = line->get();
      lines_.push_back(std::move(*line));
    }
    workers_.push_back(
        std::make_unique<ModemWorker>(opts, *bus_, *blobs_, *dedup_, *schedule_, *line_, registry_, clock_));
    if (started_at_ms == 0) started_at_ms = clock_.NowMillis();
    EXPECT_TRUE(workers_.back()->Start().ok());
    return *workers_.back();
  }
  void StopWorkers() {
    for (auto& w : workers_) w->Stop();
  }

  // A job of the first `pages` pages of the test document.
  v1::OutboundJob Job(const std::string& job_id, const std::string& number, int pages = 5,
                      const std::string& fax_id = "") {
    v1::OutboundJob job;
    job.set_job_id(job_id);
    job.set_fax_id(fax_id.empty() ? "fax_" + job_id : fax_id);
    job.set_tenant("acme");
    job.set_number(number);
    for (int i = 0; i < pages; ++i) job.add_pages()->set_blob_id(page_ids_.at(static_cast<size_t>(i)));
    job.set_resolution(v1::RESOLUTION_FINE);
    job.set_submitted_at_ms(clock_.NowMillis());
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

  void Cancel(const std::string& fax_id, const std::vector<std::string>& recipients = {}) {
    v1::ControlCommand cmd;
    cmd.set_command_id("cmd_" + fax_id);
    cmd.set_kind(v1::CONTROL_CANCEL);
    cmd.set_fax_id(fax_id);
    cmd.set_tenant("acme");
    for (const auto& r : recipients) cmd.add_recipient_ids(r);
    cmd.set_at_ms(clock_.NowMillis());
    cmd.set_requested_by("test");
    bus::Message m;
    m.topic = std::string(bus::topic::kControl);
    m.key = fax_id;
    m.value = cmd.SerializeAsString();
    ASSERT_TRUE(producer_->Produce(m).ok());
  }

  // Events read so far (a reader from the start of fax.events, advanced by Poll()).
  const std::vector<v1::DeliveryEvent>& PollEvents() {
    if (!reader_) {
      bus::ConsumerOptions co;
      co.group = "test-reader";
      auto c = bus_->NewConsumer(co);
      EXPECT_TRUE(c.ok());
      reader_ = std::move(*c);
      auto parts = bus::AllPartitions(*bus_, std::string(bus::topic::kEvents));
      EXPECT_TRUE(parts.ok());
      EXPECT_TRUE(reader_->Assign(*parts).ok());
    }
    auto recs = reader_->Poll(std::chrono::milliseconds(20), 10'000);
    if (recs.ok()) {
      for (const auto& r : *recs) {
        v1::DeliveryEvent ev;
        EXPECT_TRUE(ev.ParseFromString(r.value));
        events_.push_back(ev);
      }
    }
    return events_;
  }

  std::map<std::string, v1::AttemptResult> TerminalResults() {
    std::map<std::string, v1::AttemptResult> out;
    for (const auto& e : PollEvents())
      if (e.has_result() && e.result().terminal() && !out.count(e.recipient_id()))
        out[e.recipient_id()] = e.result();
    return out;
  }

  // Waits until every job id has a terminal result (and its report event when reports are on).
  bool AwaitTerminal(const std::vector<std::string>& ids,
                     std::chrono::seconds deadline = std::chrono::seconds(90)) {
    const auto end = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < end) {
      auto results = TerminalResults();
      bool all = true;
      for (const auto& id : ids) all = all && results.count(id) && HasReport(id);
      if (all) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  bool HasReport(const std::string& id) {
    for (const auto& e : events_)
      if (e.recipient_id() == id && e.has_report()) return true;
    return false;
  }

  std::vector<v1::DeliveryEvent> EventsOf(const std::string& id) {
    std::vector<v1::DeliveryEvent> out;
    for (const auto& e : PollEvents())
      if (e.recipient_id() == id) out.push_back(e);
    return out;
  }

  // calls.jsonl of the sim line, parsed.
  std::vector<nlohmann::json> Calls() {
    std::vector<nlohmann::json> out;
    std::ifstream in(line_->CallLogPath());
    for (std::string l; std::getline(in, l);)
      if (!l.empty()) out.push_back(nlohmann::json::parse(l));
    return out;
  }
  int Dials(const std::string& job_id) {
    int n = 0;
    for (const auto& c : Calls()) n += c.value("job_id", "") == job_id;
    return n;
  }
  // Calls placed: a call that carried several jobs has one record per job, with the same "call".
  int CallsPlaced() {
    std::set<std::string> seen;
    int n = 0;
    for (const auto& c : Calls()) {
      const std::string call = c.value("call", "");
      if (call.empty() || seen.insert(call).second) ++n;
    }
    return n;
  }
  // Pages the far end received for a job, over all its calls in attempt order.
  std::vector<pages::Bitmap> Received(const std::string& job_id) {
    std::map<int, std::string> by_attempt;
    for (const auto& c : Calls())
      if (c.value("job_id", "") == job_id && !c.value("received_path", "").empty())
        by_attempt[c.value("attempt", 0)] = c.value("received_path", "");
    std::vector<pages::Bitmap> out;
    for (const auto& [a, path] : by_attempt) {
      auto decoded = pages::DecodeFile(path);
      EXPECT_TRUE(decoded.ok()) << decoded.status().ToString();
      if (decoded.ok()) out.insert(out.end(), decoded->begin(), decoded->end());
    }
    return out;
  }
  // The first `n` pages of the test document.
  std::vector<pages::Bitmap> Expected(int n) {
    auto all = pages::DecodeFile(doc_.multipage_path);
    EXPECT_TRUE(all.ok());
    return std::vector<pages::Bitmap>(all->begin(), all->begin() + n);
  }

  std::string Metrics() { return SerializeMetrics(registry_); }
  double Metric(const std::string& line_prefix) {
    const std::string m = Metrics();
    size_t pos = 0;
    while ((pos = m.find(line_prefix, pos)) != std::string::npos) {
      if (pos == 0 || m[pos - 1] == '\n') {
        const size_t sp = m.find(' ', pos + line_prefix.size());
        return std::stod(m.substr(sp + 1, m.find('\n', sp) - sp - 1));
      }
      ++pos;
    }
    return 0;
  }

  ModemOptions options;
  int64_t started_at_ms = 0;
  SystemClock clock_;
  std::string dir_;
  const TestDoc& doc_;
  std::unique_ptr<bus::Bus> bus_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<DedupStore> dedup_;
  std::unique_ptr<ScheduleStore> schedule_;
  std::unique_ptr<bus::Producer> producer_;
  std::vector<std::string> page_ids_;
  prometheus::Registry registry_;
  std::vector<std::unique_ptr<SimLineDriver>> lines_;
  SimLineDriver* line_ = nullptr;
  std::vector<std::unique_ptr<ModemWorker>> workers_;
  std::unique_ptr<bus::Consumer> reader_;
  std::vector<v1::DeliveryEvent> events_;
};

}  // namespace faxflow::modem::testing
