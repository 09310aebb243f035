// Unit: the modem scheduler (priority, per-destination limit, batching preference, delays,
// windows, expiry, cancel), the retry policy (HylaFAX defaults, budgets, fallback steps), the
// schedule store (RocksDB round trip across reopen) and transmission reports (JSON + PDF).
#include "workers/modem/scheduler.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/support/support.h"
#include "workers/modem/fax_session.h"
#include "workers/modem/report.h"
#include "workers/modem/retry_policy.h"
#include "workers/modem/schedule_store.h"

namespace faxflow::modem {
namespace {

SchedJob Make(const std::string& id, const std::string& dest, int priority, int64_t not_before = 0) {
  SchedJob j;
  j.job.set_job_id(id);
  j.job.set_number("+" + dest);
  j.job.set_priority(priority);
  j.destination = dest;
  j.not_before_ms = not_before;
  return j;
}

std::vector<std::string> Drain(Scheduler& s, int64_t now) {
  std::vector<std::string> out;
  while (auto j = s.TakeNext(now)) {
    out.push_back(j->job.job_id());
    s.Done(*j);
  }
  return out;
}

TEST(Scheduler, HigherPriorityFirstThenArrivalOrder) {
  Scheduler s(1);
  ASSERT_TRUE(s.Add(Make("low1", "1", 0)));
  ASSERT_TRUE(s.Add(Make("high", "2", 10)));
  ASSERT_TRUE(s.Add(Make("low2", "3", 0)));
  ASSERT_TRUE(s.Add(Make("mid", "4", 5)));
  EXPECT_EQ(Drain(s, 0), (std::vector<std::string>{"high", "mid", "low1", "low2"}));
}

bool AnyCompatible(const v1::OutboundJob&, const v1::OutboundJob&) { return true; }

std::vector<std::string> Ids(const std::vector<SchedJob>& jobs) {
  std::vector<std::string> out;
  for (const auto& j : jobs) out.push_back(j.job.job_id());
  return out;
}

TEST(Scheduler, CompanionsRideTheCallOfTheirNumberUpToMax) {
  Scheduler s(1);
  ASSERT_TRUE(s.Add(Make("a1", "1", 0)));
  ASSERT_TRUE(s.Add(Make("b1", "2", 0)));
  ASSERT_TRUE(s.Add(Make("a2", "1", 0)));
  ASSERT_TRUE(s.Add(Make("a3", "1", 0, 5000)));  // not ready yet
  ASSERT_TRUE(s.Add(Make("a4", "1", 0)));
  ASSERT_TRUE(s.Add(Make("a5", "1", 0)));
  auto lead = s.TakeNext(0);
  ASSERT_TRUE(lead);
  EXPECT_EQ(lead->job.job_id(), "a1");
  auto companions = s.TakeCompanions(*lead, 0, 2, AnyCompatible);
  EXPECT_EQ(Ids(companions), (std::vector<std::string>{"a2", "a4"})) << "ready ones, in order, at most 2";
  EXPECT_EQ(s.ActiveCalls("1"), 1) << "one call, one slot";
  EXPECT_FALSE(s.Add(Make("a2", "1", 0))) << "a companion is in progress";
  // Another channel may still call number 2 but not number 1.
  auto other = s.TakeNext(0);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->job.job_id(), "b1");
  // The call ends: a companion's retry goes back to the queue, the slot is freed once.
  s.Done(*lead);
  s.Requeue(std::move(companions[0]), 100);
  s.Done(companions[1]);
  EXPECT_EQ(s.ActiveCalls("1"), 0);
  auto next = s.TakeNext(100);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->job.job_id(), "a2");
  EXPECT_FALSE(next->companion) << "a requeued companion leads its next call";
}

TEST(Scheduler, CompanionsNeverOvertakeAMoreUrgentJobElsewhere) {
  Scheduler s(1);
  ASSERT_TRUE(s.Add(Make("a1", "1", 5)));
  ASSERT_TRUE(s.Add(Make("a2", "1", 0)));  // outranked by b (3) waiting for number 2
  ASSERT_TRUE(s.Add(Make("a3", "1", 3)));  // equal to b: may ride along
  ASSERT_TRUE(s.Add(Make("b", "2", 3)));
  auto lead = s.TakeNext(0);
  ASSERT_TRUE(lead);
  EXPECT_EQ(lead->job.job_id(), "a1");
  EXPECT_EQ(Ids(s.TakeCompanions(*lead, 0, 8, AnyCompatible)), (std::vector<std::string>{"a3"}));
  // Incompatible jobs (another tenant, resolution, ...) never share the call.
  Scheduler t(1);
  ASSERT_TRUE(t.Add(Make("x1", "1", 0)));
  ASSERT_TRUE(t.Add(Make("x2", "1", 0)));
  auto x = t.TakeNext(0);
  ASSERT_TRUE(x);
  EXPECT_TRUE(t.TakeCompanions(*x, 0, 8, [](const auto&, const auto&) { return false; }).empty());
}

TEST(Scheduler, DuplicateJobIdIsRefusedWhileQueuedOrInProgress) {
  Scheduler s(1);
  ASSERT_TRUE(s.Add(Make("a", "1", 0)));
  EXPECT_FALSE(s.Add(Make("a", "1", 0)));
  auto j = s.TakeNext(0);
  ASSERT_TRUE(j);
  EXPECT_FALSE(s.Add(Make("a", "1", 0))) << "in progress";
  s.Done(*j);
  EXPECT_TRUE(s.Add(Make("a", "1", 0)));
}

TEST(Scheduler, OneCallPerDestinationAndBlockedJobsDoNotBlockOthers) {
  Scheduler s(1);
  s.Add(Make("a1", "100", 5));
  s.Add(Make("a2", "100", 5));
  s.Add(Make("b1", "200", 0));
  auto first = s.TakeNext(0);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->job.job_id(), "a1");
  auto second = s.TakeNext(0);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->job.job_id(), "b1") << "a2 is blocked by a1's call to the same number";
  EXPECT_EQ(s.Counts(0).blocked, 1u);
  EXPECT_FALSE(s.TakeNext(0));
  s.Done(*first);
  auto third = s.TakeNext(0);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->job.job_id(), "a2");
}

TEST(Scheduler, PreferredDestinationContinuesUnlessAHigherPriorityJobWaits) {
  Scheduler s(1);
  s.Add(Make("x1", "1", 0));
  s.Add(Make("y1", "2", 0));
  s.Add(Make("x2", "1", 0));
  auto j = s.TakeNext(0);
  ASSERT_EQ(j->job.job_id(), "x1");
  s.Done(*j);
  auto k = s.TakeNext(0, "1");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->job.job_id(), "x2") << "batched back to back on the same number";
  s.Done(*k);
  s.Add(Make("x3", "1", 0));
  s.Add(Make("urgent", "3", 9));
  auto u = s.TakeNext(0, "1");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->job.job_id(), "urgent") << "batching never overtakes a higher priority";
}

TEST(Scheduler, DelayedRetryWaitsWithoutBlockingLaterJobs) {
  Scheduler s(1);
  s.Add(Make("retry", "1", 9, /*not_before=*/180'000));
  s.Add(Make("next", "2", 0));
  auto j = s.TakeNext(1000);
  ASSERT_TRUE(j);
  EXPECT_EQ(j->job.job_id(), "next");
  s.Done(*j);
  EXPECT_FALSE(s.TakeNext(179'999));
  EXPECT_EQ(s.NextChangeMs(1000), 180'000);
  auto r = s.TakeNext(180'000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->job.job_id(), "retry");
  s.Requeue(std::move(*r), 500'000);
  EXPECT_EQ(s.Counts(200'000).delayed, 1u);
  EXPECT_TRUE(s.TakeNext(500'000));
}

TEST(Scheduler, ExpiredAndCancelledJobsAreTakenOut) {
  Scheduler s(1);
  auto e = Make("exp", "1", 0);
  e.expires_at_ms = 5000;
  s.Add(e);
  auto c = Make("can", "2", 0);
  c.job.set_fax_id("fax_c");
  s.Add(c);
  s.Add(Make("keep", "3", 0));
  EXPECT_TRUE(s.TakeExpired(4999).empty());
  auto expired = s.TakeExpired(5000);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].job.job_id(), "exp");
  auto cancelled = s.TakeMatching([](const v1::OutboundJob& j) { return j.fax_id() == "fax_c"; });
  ASSERT_EQ(cancelled.size(), 1u);
  EXPECT_EQ(Drain(s, 6000), (std::vector<std::string>{"keep"}));
}

TEST(Scheduler, TimeOfDayWindow) {
  v1::SendWindow w;
  w.set_start_minute(22 * 60);  // 22:00-06:00 UTC, wraps midnight
  w.set_end_minute(6 * 60);
  const int64_t day = 86'400'000;
  const int64_t noon = 10 * day + 12 * 3'600'000;
  EXPECT_FALSE(InWindow(w, noon));
  EXPECT_TRUE(InWindow(w, 10 * day + 23 * 3'600'000));
  EXPECT_TRUE(InWindow(w, 10 * day + 5 * 3'600'000));
  EXPECT_EQ(NextWindowOpen(w, noon), 10 * day + 22 * 3'600'000);
  Scheduler s(1);
  auto j = Make("night", "1", 0);
  *j.job.mutable_window() = w;
  s.Add(j);
  EXPECT_FALSE(s.TakeNext(noon));
  EXPECT_EQ(s.NextChangeMs(noon), 10 * day + 22 * 3'600'000);
  EXPECT_TRUE(s.TakeNext(10 * day + 22 * 3'600'000));
  v1::SendWindow off;
  EXPECT_TRUE(InWindow(off, noon)) << "no window: always";
}

TEST(RetryPolicy, HylaFaxDefaultsPerCause) {
  RetryPolicy p;
  EXPECT_EQ(RetryDelayMs(p, v1::REASON_BUSY), 180'000);
  EXPECT_EQ(RetryDelayMs(p, v1::REASON_NO_ANSWER), 300'000);
  EXPECT_EQ(RetryDelayMs(p, v1::REASON_DROPPED), 300'000);
  EXPECT_EQ(RetryDelayMs(p, v1::REASON_PROTOCOL_ERROR), 60'000);
  EXPECT_EQ(RetryDelayMs(p, v1::REASON_TRAINING_FAILED), 60'000);
  EXPECT_EQ(p.max_tries, 3);
  EXPECT_EQ(p.max_dials, 12);
  const Classification busy{v1::STATE_FAILED, v1::REASON_BUSY, ""};
  EXPECT_TRUE(DecideRetry(p, busy, false, {11, 0, 0}).retry);
  EXPECT_FALSE(DecideRetry(p, busy, false, {12, 0, 0}).retry) << "max dials";
  const Classification dropped{v1::STATE_PARTIAL, v1::REASON_DROPPED, ""};
  EXPECT_TRUE(DecideRetry(p, dropped, true, {2, 2, 0}).retry);
  EXPECT_FALSE(DecideRetry(p, dropped, true, {3, 3, 0}).retry) << "max tries (connected calls)";
  EXPECT_FALSE(DecideRetry(p, {v1::STATE_FAILED, v1::REASON_NOT_A_FAX, ""}, true, {1, 1, 0}).retry);
  EXPECT_FALSE(DecideRetry(p, {v1::STATE_FAILED, v1::REASON_DOCUMENT_ERROR, ""}, false, {1, 0, 0}).retry);
  EXPECT_FALSE(DecideRetry(p, {v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, ""}, true, {1, 1, 0}).retry);
}

TEST(RetryPolicy, PerJobOverrides) {
  RetryPolicy p;
  v1::RetryOverrides o;
  o.set_busy_seconds(2);
  o.set_max_dials(1);
  const RetryPolicy j = p.WithOverrides(o);
  EXPECT_EQ(RetryDelayMs(j, v1::REASON_BUSY), 2000);
  EXPECT_EQ(RetryDelayMs(j, v1::REASON_NO_ANSWER), 300'000);
  EXPECT_FALSE(DecideRetry(j, {v1::STATE_FAILED, v1::REASON_BUSY, ""}, false, {1, 0, 0}).retry);
}

TEST(RetryPolicy, TrainingFallbackTo9600ThenEcmOffAndRememberedStep) {
  RetryPolicy p;
  EXPECT_EQ(FallbackStep(p, 0, 0), 0);
  EXPECT_EQ(FallbackStep(p, 1, 0), 1);
  EXPECT_EQ(FallbackStep(p, 2, 0), 2);
  EXPECT_EQ(FallbackStep(p, 5, 0), 2);
  EXPECT_EQ(FallbackStep(p, 0, 1), 1) << "starts where the destination needed before";
  const LinePlan s0 = LinePlanForStep(0), s1 = LinePlanForStep(1), s2 = LinePlanForStep(2);
  EXPECT_TRUE(s0.ecm);
  EXPECT_EQ(s0.modems, kModemAll);
  EXPECT_TRUE(s1.ecm);
  EXPECT_EQ(s1.modems & kModemV17, 0) << "no V.17: at most 9600 bps";
  EXPECT_FALSE(s2.ecm);
  EXPECT_EQ(s2.ToString(), "9600-ecm");
  p.fallback_training_failures = 2;
  EXPECT_EQ(FallbackStep(p, 1, 0), 0);
  EXPECT_EQ(FallbackStep(p, 2, 0), 1);
}

TEST(ScheduleStore, RocksRoundTripSurvivesReopen) {
  testing::TempDir dir("sched-store");
  JobSchedule s;
  s.job_id = "rcp_1";
  s.dials = 2;
  s.tries = 1;
  s.training_failures = 1;
  s.next_attempt_at_ms = 123456;
  s.pages_reached = 4;
  s.attempts.push_back(
      AttemptRecord{1, 10, 20, 1, 3, 11, 6, "T30_ERR_CALLDROPPED", "CSID", 14400, true, "sim-0", "v17+ecm"});
  s.pages.push_back(PageRecord{1, 1, 99});
  {
    auto store = OpenRocksScheduleStore(dir.path() + "/s");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)->PutJob(s).ok());
    ASSERT_TRUE((*store)->PutDestination({"15550100000", 1, 9600, true, 1, 1, 5}).ok());
  }
  auto store = OpenRocksScheduleStore(dir.path() + "/s");
  ASSERT_TRUE(store.ok());
  auto got = (*store)->GetJob("rcp_1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(EncodeJobSchedule(**got), EncodeJobSchedule(s));
  auto d = (*store)->GetDestination("15550100000");
  ASSERT_TRUE(d.ok() && d->has_value());
  EXPECT_EQ((*d)->step, 1);
  EXPECT_EQ((*d)->bit_rate, 9600);
  ASSERT_TRUE((*store)->DeleteJob("rcp_1").ok());
  EXPECT_FALSE((*store)->GetJob("rcp_1")->has_value());
  EXPECT_FALSE((*store)->GetDestination("1")->has_value());
}

ReportInput SampleReport() {
  ReportInput in;
  in.job.set_job_id("rcp_r");
  in.job.set_fax_id("fax_r");
  in.job.set_number("+15550100000");
  in.job.set_tenant("acme");
  in.state = v1::STATE_DELIVERED;
  in.pages_sent = 3;
  in.pages_total = 3;
  in.attempts.push_back(AttemptRecord{1, 1'700'000'000'000, 41'000, 1, 2, 11, 6, "T30_ERR_CALLDROPPED",
                                      "FAR (END)", 14400, true, "sim-0", "v17+ecm"});
  in.attempts.push_back(AttemptRecord{2, 1'700'000'300'000, 20'000, 3, 1, 10, 0, "T30_ERR_OK", "FAR (END)",
                                      14400, true, "sim-1", "v17+ecm"});
  in.pages = {{1, 1, 1'700'000'010'000}, {2, 1, 1'700'000'020'000}, {3, 2, 1'700'000'310'000}};
  pages::Bitmap page;
  page.width = 1728;
  page.length = 2200;
  page.stride = 216;
  page.bits.assign(page.stride * page.length, 0);
  for (uint32_t y = 100; y < 300; ++y)
    for (size_t x = 10; x < 100; ++x) page.bits[y * page.stride + x] = 0xff;
  in.first_page = page;
  in.generated_ms = 1'700'000'400'000;
  in.site = "test";
  return in;
}

TEST(Report, JsonHasEveryFactOfTheTransmission) {
  auto j = nlohmann::json::parse(ReportJson(SampleReport()));
  EXPECT_EQ(j.at("state"), "delivered");
  EXPECT_EQ(j.at("remote_csid"), "FAR (END)");
  EXPECT_EQ(j.at("bit_rate"), 14400);
  EXPECT_EQ(j.at("ecm"), true);
  EXPECT_EQ(j.at("pages_sent"), 3);
  EXPECT_EQ(j.at("line_ms"), 61'000);
  ASSERT_EQ(j.at("attempts").size(), 2u);
  EXPECT_EQ(j.at("attempts")[0].at("reason"), "dropped");
  EXPECT_EQ(j.at("attempts")[0].at("completion"), "T30_ERR_CALLDROPPED");
  ASSERT_EQ(j.at("pages").size(), 3u);
  EXPECT_EQ(j.at("pages")[2].at("attempt"), 2);
  EXPECT_EQ(j.at("pages")[2].at("status"), "confirmed");
}

TEST(Report, ThumbnailKeepsThePageShape) {
  const auto in = SampleReport();
  const Thumbnail t = MakeThumbnail(*in.first_page);
  EXPECT_EQ(t.width, 216u);
  EXPECT_EQ(t.height, 275u);
  EXPECT_EQ(t.gray[static_cast<size_t>(20) * t.width + 50], 0) << "black block";
  EXPECT_EQ(t.gray[static_cast<size_t>(200) * t.width + 200], 255) << "white paper";
}

TEST(Report, PdfIsAOnePageDocumentGhostscriptCanRender) {
  const std::string pdf = ReportPdf(SampleReport());
  ASSERT_EQ(pdf.rfind("%PDF-1.4", 0), 0u);
  EXPECT_NE(pdf.find("/Count 1"), std::string::npos);
  EXPECT_NE(pdf.find("TRANSMISSION REPORT"), std::string::npos);
  EXPECT_NE(pdf.find("FAR \\(END\\)"), std::string::npos) << "parentheses escaped";
  testing::TempDir dir("report-pdf");
  const std::string path = dir.path() + "/r.pdf";
  {
    std::ofstream out(path, std::ios::binary);
    out << pdf;
  }
  const std::string png = dir.path() + "/r.png";
  const int rc = std::system(("gs -q -dSAFER -dBATCH -dNOPAUSE -sDEVICE=pnggray -r30 -o " + png + " " + path +
                              " > " + dir.path() + "/gs.log 2>&1")
                                 .c_str());
  EXPECT_EQ(rc, 0) << "gs could not render the report";
  EXPECT_TRUE(std::filesystem::exists(png));
  std::ifstream log(dir.path() + "/gs.log");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find("rror"), std::string::npos) << text;
}

}  // namespace
}  // namespace faxflow::modem
