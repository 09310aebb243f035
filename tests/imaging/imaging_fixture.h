// The fixture of the imaging worker tests (tests/imaging, tests/broadcast covers): the embedded
// bus environment of tests/support/embedded_bus_test.h with the reader on fax.jobs, fax.events and
// the dead-letter topic, plus what these tests do with it: submit to fax.submissions, read the
// worker's output until a condition holds (checking keys and schema headers on the way), and
// find jobs and events by fax id.
//
// Lifecycle and threading as EmbeddedBusTest: SetUp opens everything, TearDown closes it; the
// ImagingWorker under test is a local of the test body (stopped before TearDown). Collected
// outputs live in deques, so pointers and references to them stay valid across ReadUntil calls.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "schemas/event.pb.h"
#include "schemas/job.pb.h"
#include "schemas/submission.pb.h"
#include "tests/imaging/test_util.h"
#include "tests/support/embedded_bus_test.h"
#include "workers/imaging/imaging_worker.h"

namespace faxflow::imaging::testing {

// A header's value or "<missing>" (Record::header returns a pointer).
inline std::string HeaderOf(const bus::Record& r, std::string_view name) {
  for (const auto& h : r.headers)
    if (h.key == name) return h.value;
  return "<missing>";
}

class ImagingWorkerFixture : public faxflow::testing::EmbeddedBusTest {
 protected:
  void SetUp() override { OpenEmbeddedBus(); }

  // Worker options for tests: site "test", short polls, a 60 s render timeout.
  static ImagingOptions Options(int threads = 2) {
    ImagingOptions o;
    o.threads = threads;
    o.site = "test";
    o.poll_timeout = std::chrono::milliseconds(50);
    o.renderer.timeout_seconds = 60;
    return o;
  }

  // Stores tests/data/<file> in the blob store.
  std::string PutDoc(const std::string& file) { return Put(ReadData(file)); }

  void Submit(const std::string& key, const std::string& value, bool with_schema = true) {
    bus::Message m;
    m.topic = std::string(bus::topic::kSubmissions);
    m.key = key;
    m.value = value;
    if (with_schema) m.headers.push_back({std::string(bus::header::kSchema), "faxflow.v1.Submission"});
    ASSERT_TRUE(producer_->Produce(m).ok());
  }
  void Submit(const v1::Submission& s) { Submit(s.fax_id(), s.SerializeAsString()); }

  // Reads output records until `done` says so or the deadline passes: jobs (keyed by number,
  // with the OutboundJob schema header), events (keyed by fax id), everything else as dead letters.
  void ReadUntil(const std::function<bool()>& done, std::chrono::seconds limit = std::chrono::seconds(90)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      auto recs = reader_->Poll(std::chrono::milliseconds(100), 100);
      ASSERT_TRUE(recs.ok());
      for (auto& r : *recs) {
        if (r.topic == bus::topic::kJobs) {
          v1::OutboundJob job;
          ASSERT_TRUE(job.ParseFromString(r.value));
          EXPECT_EQ(r.key, job.number());
          EXPECT_EQ(HeaderOf(r, bus::header::kSchema), "faxflow.v1.OutboundJob");
          jobs_.push_back(job);
        } else if (r.topic == bus::topic::kEvents) {
          v1::DeliveryEvent ev;
          ASSERT_TRUE(ev.ParseFromString(r.value));
          EXPECT_EQ(r.key, ev.fax_id());
          events_.push_back(ev);
        } else {
          dlq_.push_back(r);
        }
      }
    }
  }

  std::vector<const v1::OutboundJob*> JobsOf(const std::string& fax) const {
    std::vector<const v1::OutboundJob*> out;
    for (const auto& j : jobs_)
      if (j.fax_id() == fax) out.push_back(&j);
    return out;
  }
  std::vector<const v1::DeliveryEvent*> EventsOf(const std::string& fax) const {
    std::vector<const v1::DeliveryEvent*> out;
    for (const auto& e : events_)
      if (e.fax_id() == fax) out.push_back(&e);
    return out;
  }
  // The one job with this id (a failed expectation and an empty job when there is not exactly one).
  const v1::OutboundJob& Job(const std::string& job_id) const {
    static const v1::OutboundJob kNone;
    const v1::OutboundJob* found = nullptr;
    int n = 0;
    for (const auto& j : jobs_) {
      if (j.job_id() != job_id) continue;
      found = &j;
      ++n;
    }
    EXPECT_EQ(n, 1) << "jobs with id " << job_id;
    return found != nullptr ? *found : kNone;
  }

  std::deque<v1::OutboundJob> jobs_;
  std::deque<v1::DeliveryEvent> events_;
  std::deque<bus::Record> dlq_;
};

}  // namespace faxflow::imaging::testing
