// Integration: the scenario matrix of the modem worker. Each row submits jobs to a worker on the
// embedded bus over the sim line (real SpanDSP calls to a virtual far end) and checks what a
// user sees: every recipient's terminal state, reason, pages confirmed, the number of calls
// placed (sim call log), a transmission report, and the received pages pixel for pixel.
//
// Table-driven: add a Row to kRows (far-end behaviours come from the sim directory, docs/sim.md;
// `sim_behaviours` adds numbers). Rows that need T.38 or special far ends can be added the
// same way (the `options` hook sets line options).
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/modem/modem_harness.h"

// Rows leave trailing members (hooks) at their defaults.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace faxflow::modem {
namespace {

using testing::ModemHarness;
using testing::TestDoc;

constexpr char kAnswer[] = "+15550100000";
constexpr char kBusy[] = "+15550100001";
constexpr char kNoAnswer[] = "+15550100002";
constexpr char kVoice[] = "+15550100003";
constexpr char kSilence[] = "+15550100004";
constexpr char kDropAfter2[] = "+15550100005";
constexpr char kDropAfter1[] = "+15550100006";

struct JobSpec {
  std::string id;
  std::string number;
  int pages = 5;
  int priority = 0;
  std::string fax_id;  // empty: fax_<id>
  // Adjusts the job (now = wall ms at submission): retry overrides, send_at, expiry, window.
  std::function<void(v1::OutboundJob&, int64_t now)> tweak;
};

struct Expect {
  std::string id;
  v1::RecipientState state;
  v1::FailureReason reason;
  int pages_sent;
  int dials;
};

struct Row {
  std::string name;
  std::vector<JobSpec> jobs;
  std::vector<Expect> expect;
  std::function<void(ModemOptions&)> options;  // worker and sim line options
  std::function<void(ModemHarness&)> during;   // after submitting, before awaiting the results
  std::function<void(ModemHarness&)> check;    // extra assertions at the end
  bool normal_resolution = false;              // pages arrive converted to 204x98
};

// Fast retries for the matrix: 1 s for every cause.
std::function<void(v1::OutboundJob&, int64_t)> Retry(int max_dials, int max_tries = 0) {
  return [=](v1::OutboundJob& j, int64_t) {
    auto* r = j.mutable_retry();
    r->set_busy_seconds(1);
    r->set_no_answer_seconds(1);
    r->set_protocol_seconds(1);
    r->set_other_seconds(1);
    r->set_max_dials(max_dials);
    if (max_tries > 0) r->set_max_tries(max_tries);
  };
}

// Calls to one number never overlap: a channel's call (one or several jobs' AttemptStarted
// events) always ends (their AttemptResults) before another channel's call to it begins.
void ExpectNoOverlappingCalls(ModemHarness& h, const std::vector<std::string>& ids) {
  std::map<std::string, int> open;                // channel -> attempts in progress
  std::map<std::string, std::string> channel_of;  // job -> channel of its current attempt
  for (const auto& e : h.PollEvents()) {
    if (std::find(ids.begin(), ids.end(), e.recipient_id()) == ids.end()) continue;
    if (e.has_attempt_started()) {
      const std::string& c = e.attempt_started().channel();
      for (const auto& [other, n] : open)
        EXPECT_TRUE(other == c || n == 0) << "two calls to one number at the same time";
      ++open[c];
      channel_of[e.recipient_id()] = c;
    }
    if (e.has_result() && channel_of.count(e.recipient_id())) --open[channel_of[e.recipient_id()]];
  }
}

// Every job of the row is due at the same moment (so that they are all queued when a line takes
// the first one).
std::function<void(v1::OutboundJob&, int64_t)> DueTogether(int max_dials = 0) {
  return [=](v1::OutboundJob& j, int64_t now) {
    j.set_send_at_ms(now + 1500);
    if (max_dials > 0) Retry(max_dials)(j, now);
  };
}

// The calls of the sim line that carried several jobs: their job ids in call order.
std::vector<std::vector<std::string>> SharedCalls(ModemHarness& h) {
  std::vector<std::vector<std::string>> out;
  std::map<std::string, size_t> index;
  for (const auto& c : h.Calls()) {
    const std::string call = c.value("call", "");
    if (call.empty()) continue;
    if (!index.count(call)) {
      index[call] = out.size();
      out.emplace_back();
    }
    out[index[call]].push_back(c.value("job_id", ""));
  }
  return out;
}

std::vector<int> FirstPages(ModemHarness& h, const std::string& id) {
  std::vector<int> out;
  for (const auto& e : h.EventsOf(id))
    if (e.has_attempt_started()) out.push_back(e.attempt_started().first_page());
  return out;
}

// The job's attempts: every one but the last failed training, the last was delivered at 9600
// (with or without ECM); the line plans were `plans` in order; the next fax to the number
// starts where the last one ended (one dial, same rate and ECM).
void ExpectFallback(ModemHarness& h, const std::string& id, const std::string& number,
                    const std::vector<std::string>& plans, bool ecm) {
  std::vector<v1::AttemptResult> results;
  for (const auto& e : h.EventsOf(id))
    if (e.has_result()) results.push_back(e.result());
  ASSERT_EQ(results.size(), plans.size());
  for (size_t i = 0; i + 1 < results.size(); ++i) {
    EXPECT_EQ(results[i].reason(), v1::REASON_TRAINING_FAILED) << results[i].detail();
    // The far end answered every training check with FTT, down to 2400 bps.
    EXPECT_EQ(results[i].completion_name(), "T30_ERR_CANNOT_TRAIN");
    EXPECT_FALSE(results[i].terminal());
  }
  EXPECT_EQ(results.back().bit_rate(), 9600);
  EXPECT_EQ(results.back().ecm(), ecm);
  for (const auto& plan : plans)
    EXPECT_GE(h.Metric("faxflow_modem_line_plan_attempts_total{plan=\"" + plan + "\"}"), 1) << plan;
  for (const auto& e : h.EventsOf(id)) {
    if (!e.has_report()) continue;
    auto json = h.blobs_->Get(e.report().json_blob_id());
    ASSERT_TRUE(json.ok());
    auto j = nlohmann::json::parse(*json);
    std::vector<std::string> got;
    for (const auto& a : j.at("attempts")) got.push_back(a.value("line_plan", ""));
    EXPECT_EQ(got, plans) << "the report names each attempt's line plan";
  }
  const std::string next = id + "_next";
  h.Submit(h.Job(next, number, 1));
  ASSERT_TRUE(h.AwaitTerminal({next}));
  const auto r = h.TerminalResults().at(next);
  EXPECT_EQ(r.state(), v1::STATE_DELIVERED) << r.detail();
  EXPECT_EQ(h.Dials(next), 1) << "the number's memory: no training failure again";
  EXPECT_EQ(r.bit_rate(), 9600);
  EXPECT_EQ(r.ecm(), ecm);
}

const std::vector<Row>& Rows() {
  static const std::vector<Row> rows = {
      {"answer_delivered",
       {{"rcp_a", kAnswer}},
       {{"rcp_a", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 5, 1}},
       nullptr,
       nullptr,
       [](ModemHarness& h) {
         EXPECT_GT(h.Metric("faxflow_modem_channel_busy_seconds_total"), 0);
         EXPECT_EQ(h.Metric("faxflow_modem_reports_total{result=\"ok\"}"), 1);
         EXPECT_EQ(h.Metric("faxflow_modem_bit_rate_bps_count"), 1);
         int connected = 0;
         for (const auto& e : h.EventsOf("rcp_a")) {
           if (!e.has_connected()) continue;
           ++connected;
           EXPECT_EQ(e.connected().bit_rate(), 14400);
           EXPECT_TRUE(e.connected().ecm());
           EXPECT_EQ(e.connected().remote_csid(), "FAXFLOW SIM");
         }
         EXPECT_EQ(connected, 1);
       }},
      {"busy_retried_until_max_dials",
       {{"rcp_b", kBusy, 1, 0, "", Retry(3)}},
       {{"rcp_b", v1::STATE_FAILED, v1::REASON_BUSY, 0, 3}},
       nullptr,
       nullptr,
       [](ModemHarness& h) {
         EXPECT_EQ(h.Metric("faxflow_modem_retries_scheduled_total{reason=\"busy\"}"), 2);
         EXPECT_EQ(h.Metric("faxflow_modem_attempts_total"), 3);
         EXPECT_EQ(h.Metric("faxflow_modem_outcomes_total{reason=\"busy\",state=\"failed\"}"), 3);
         std::vector<int64_t> retry_at;
         for (const auto& e : h.EventsOf("rcp_b"))
           if (e.has_retry_scheduled()) retry_at.push_back(e.retry_scheduled().retry_at_ms() - e.at_ms());
         ASSERT_EQ(retry_at.size(), 2u);
         for (int64_t d : retry_at) {
           EXPECT_GT(d, 0) << "per-job busy delay (1 s), counted from the end of the call";
           EXPECT_LE(d, 1000);
         }
       }},
      {"busy_without_retries",
       {{"rcp_b1", kBusy, 1, 0, "", Retry(1)}},
       {{"rcp_b1", v1::STATE_FAILED, v1::REASON_BUSY, 0, 1}}},
      {"no_answer_retried",
       {{"rcp_n", kNoAnswer, 1, 0, "", Retry(2)}},
       {{"rcp_n", v1::STATE_FAILED, v1::REASON_NO_ANSWER, 0, 2}}},
      {"voice_is_not_a_fax_and_not_retried",
       {{"rcp_v", kVoice, 1, 0, "", Retry(5)}},
       {{"rcp_v", v1::STATE_FAILED, v1::REASON_NOT_A_FAX, 0, 1}}},
      {"silence_is_not_a_fax",
       {{"rcp_s", kSilence, 1, 0, "", Retry(5)}},
       {{"rcp_s", v1::STATE_FAILED, v1::REASON_NOT_A_FAX, 0, 1}}},
      {"drop_after_2_then_success_on_retry",
       {{"rcp_d", kDropAfter2, 5, 0, "", Retry(5)}},
       {{"rcp_d", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 5, 3}},
       nullptr,
       nullptr,
       [](ModemHarness& h) {
         std::vector<int> first_pages;
         for (const auto& e : h.EventsOf("rcp_d"))
           if (e.has_attempt_started()) first_pages.push_back(e.attempt_started().first_page());
         EXPECT_EQ(first_pages, (std::vector<int>{1, 3, 5}))
             << "each retry resumes at the first unconfirmed page";
         int retries = 0;
         for (const auto& e : h.EventsOf("rcp_d")) retries += e.has_retry_scheduled();
         EXPECT_EQ(retries, 2);
         EXPECT_EQ(h.Metric("faxflow_modem_retries_scheduled_total{reason=\"dropped\"}"), 2);
         EXPECT_EQ(h.Metric("faxflow_modem_pages_resent_total"), 2) << "the page in flight at each drop";
         EXPECT_EQ(h.Metric("faxflow_modem_pages_sent_total"), 5);
       }},
      {"drop_after_1_ends_partial_at_max_tries",
       {{"rcp_d1", kDropAfter1, 5, 0, "", Retry(12, 3)}},
       {{"rcp_d1", v1::STATE_PARTIAL, v1::REASON_DROPPED, 3, 3}}},
      {"cancel_during_a_call_hangs_up",
       {{"rcp_c", kAnswer, 5}},
       {{"rcp_c", v1::STATE_CANCELLED, v1::REASON_UNSPECIFIED, 0, 1}},
       [](ModemOptions& o) {
         o.sim.realtime = true;  // a call long enough to cancel
         o.sim.ring_ms = 10;
       },
       [](ModemHarness& h) {
         const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
         auto connected = [&] {
           for (const auto& e : h.EventsOf("rcp_c"))
             if (e.has_connected()) return true;
           return false;
         };
         while (!connected() && std::chrono::steady_clock::now() < end)
           std::this_thread::sleep_for(std::chrono::milliseconds(10));
         ASSERT_TRUE(connected());
         h.Cancel("fax_rcp_c");
       },
       [](ModemHarness& h) {
         EXPECT_EQ(h.Metric("faxflow_modem_control_commands_total"), 1);
         EXPECT_EQ(h.Metric("faxflow_modem_outcomes_total{reason=\"unspecified\",state=\"cancelled\"}"), 1);
         auto calls = h.Calls();
         ASSERT_EQ(calls.size(), 1u);
         EXPECT_LT(calls[0].value("line_ms", 0), 40'000) << "hung up soon after the cancel";
       }},
      {"cancel_while_queued_never_dials",
       {{"rcp_cq", kAnswer, 1, 0, "",
         [](v1::OutboundJob& j, int64_t now) { j.set_send_at_ms(now + 60'000); }}},
       {{"rcp_cq", v1::STATE_CANCELLED, v1::REASON_UNSPECIFIED, 0, 0}},
       nullptr,
       [](ModemHarness& h) {
         const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
         while (h.workers_.back()->Queued() == 0 && std::chrono::steady_clock::now() < end)
           std::this_thread::sleep_for(std::chrono::milliseconds(5));
         h.Cancel("fax_rcp_cq");
       }},
      {"expiry_while_queued",
       {{"rcp_e", kAnswer, 1, 0, "",
         [](v1::OutboundJob& j, int64_t now) {
           j.set_send_at_ms(now + 60'000);
           j.set_expires_at_ms(now + 700);
         }}},
       {{"rcp_e", v1::STATE_EXPIRED, v1::REASON_UNSPECIFIED, 0, 0}}},
      {"closed_time_of_day_window_then_expiry",
       {{"rcp_w", kAnswer, 1, 0, "",
         [](v1::OutboundJob& j, int64_t now) {
           const int minute = static_cast<int>((now / 60'000) % 1440);
           j.mutable_window()->set_start_minute((minute + 120) % 1440);
           j.mutable_window()->set_end_minute((minute + 180) % 1440);
           j.set_expires_at_ms(now + 700);
         }}},
       {{"rcp_w", v1::STATE_EXPIRED, v1::REASON_UNSPECIFIED, 0, 0}}},
      {"send_at_in_the_future_is_honoured",
       {{"rcp_t", kAnswer, 1, 0, "", [](v1::OutboundJob& j, int64_t now) { j.set_send_at_ms(now + 1500); }}},
       {{"rcp_t", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 1, 1}},
       nullptr,
       nullptr,
       [](ModemHarness& h) {
         for (const auto& e : h.EventsOf("rcp_t")) {
           if (e.has_attempt_started()) {
             EXPECT_GE(e.at_ms(), h.started_at_ms + 1500) << "dialled before send_at";
           }
         }
       }},
      {"priority_ordering_under_a_full_line_pool",
       {{"rcp_p0", "+4930100000", 1, 0, "",
         [](v1::OutboundJob& j, int64_t now) { j.set_send_at_ms(now + 800); }},
        {"rcp_p5", "+4930100005", 1, 5, "",
         [](v1::OutboundJob& j, int64_t now) { j.set_send_at_ms(now + 800); }},
        {"rcp_p9", "+4930100009", 1, 9, "",
         [](v1::OutboundJob& j, int64_t now) { j.set_send_at_ms(now + 800); }},
        {"rcp_p1", "+4930100001", 1, 1, "",
         [](v1::OutboundJob& j, int64_t now) { j.set_send_at_ms(now + 800); }}},
       {{"rcp_p0", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 1, 1},
        {"rcp_p5", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 1, 1},
        {"rcp_p9", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 1, 1},
        {"rcp_p1", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 1, 1}},
       [](ModemOptions& o) { o.channels = 1; },
       nullptr,
       [](ModemHarness& h) {
         std::vector<std::string> order;
         for (const auto& c : h.Calls()) order.push_back(c.value("job_id", ""));
         EXPECT_EQ(order, (std::vector<std::string>{"rcp_p9", "rcp_p5", "rcp_p1", "rcp_p0"}));
       }},
      {"two_jobs_to_one_busy_number",
       {{"rcp_bb1", kBusy, 1, 0, "fax_two", Retry(2)}, {"rcp_bb2", kBusy, 1, 0, "fax_two", Retry(2)}},
       {{"rcp_bb1", v1::STATE_FAILED, v1::REASON_BUSY, 0, 2},
        {"rcp_bb2", v1::STATE_FAILED, v1::REASON_BUSY, 0, 2}},
       [](ModemOptions& o) { o.channels = 3; },
       nullptr,
       [](ModemHarness& h) {
         ExpectNoOverlappingCalls(h, {"rcp_bb1", "rcp_bb2"});
       }},
      {"two_jobs_to_one_number_share_one_call",
       {{"rcp_s1", kAnswer, 2, 0, "fax_same", DueTogether()},
        {"rcp_s2", kAnswer, 2, 0, "fax_same", DueTogether()}},
       {{"rcp_s1", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 2, 1},
        {"rcp_s2", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 2, 1}},
       [](ModemOptions& o) { o.channels = 3; },
       nullptr,
       [](ModemHarness& h) {
         ExpectNoOverlappingCalls(h, {"rcp_s1", "rcp_s2"});
         EXPECT_EQ(h.CallsPlaced(), 1) << "one call for both documents";
         EXPECT_EQ(SharedCalls(h), (std::vector<std::vector<std::string>>{{"rcp_s1", "rcp_s2"}}));
       }},
      // Several documents in one call: three jobs to one number, one dial, each job delivered
      // with its own page count and its own page events.
      {"three_jobs_to_one_number_in_one_call",
       {{"rcp_m1", kAnswer, 2, 0, "", DueTogether()},
        {"rcp_m2", kAnswer, 3, 0, "", DueTogether()},
        {"rcp_m3", kAnswer, 1, 0, "", DueTogether()}},
       {{"rcp_m1", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 2, 1},
        {"rcp_m2", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 3, 1},
        {"rcp_m3", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 1, 1}},
       [](ModemOptions& o) { o.channels = 2; },
       nullptr,
       [](ModemHarness& h) {
         ASSERT_EQ(h.CallsPlaced(), 1) << "one dial for three jobs";
         EXPECT_EQ(SharedCalls(h), (std::vector<std::vector<std::string>>{{"rcp_m1", "rcp_m2", "rcp_m3"}}));
         int received = 0;
         for (const auto& c : h.Calls()) {
           received += c.value("pages_received", 0);
           EXPECT_EQ(c.value("call_documents", 0), 3);
         }
         EXPECT_EQ(received, 6);
         EXPECT_EQ(h.Metric("faxflow_modem_multi_document_calls_total"), 1);
         EXPECT_EQ(h.Metric("faxflow_modem_attempts_total"), 3) << "one attempt per job in the ledger";
         for (const auto& [id, n] :
              std::vector<std::pair<std::string, int>>{{"rcp_m1", 2}, {"rcp_m2", 3}, {"rcp_m3", 1}}) {
           std::vector<int> confirmed;
           for (const auto& e : h.EventsOf(id))
             if (e.has_page_confirmed()) confirmed.push_back(e.page_confirmed().page());
           std::vector<int> want;
           for (int p = 1; p <= n; ++p) want.push_back(p);
           EXPECT_EQ(confirmed, want) << id << ": its own page numbers";
           auto ledger = h.dedup_->Get(id);
           ASSERT_TRUE(ledger.ok() && ledger->has_value());
           EXPECT_EQ((*ledger)->attempts_begun, 1) << id;
         }
       }},
      // The call breaks in the middle of job 2: job 1 is delivered, job 2 resumes at its first
      // unconfirmed page, job 3 goes on the retry (which again carries both in one call).
      {"shared_call_dropped_in_job_2_resumes_per_job",
       {{"rcp_x1", "+15557770300", 2, 0, "", DueTogether(5)},
        {"rcp_x2", "+15557770300", 2, 0, "", DueTogether(5)},
        {"rcp_x3", "+15557770300", 2, 0, "", DueTogether(5)}},
       {{"rcp_x1", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 2, 1},
        {"rcp_x2", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 2, 2},
        {"rcp_x3", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 2, 2}},
       [](ModemOptions& o) {
         o.channels = 1;
         o.sim_behaviours = "+15557770300=drop_after:3";
       },
       nullptr,
       [](ModemHarness& h) {
         EXPECT_EQ(h.CallsPlaced(), 2);
         EXPECT_EQ(SharedCalls(h), (std::vector<std::vector<std::string>>{{"rcp_x1", "rcp_x2", "rcp_x3"},
                                                                          {"rcp_x2", "rcp_x3"}}));
         EXPECT_EQ(FirstPages(h, "rcp_x1"), (std::vector<int>{1}));
         EXPECT_EQ(FirstPages(h, "rcp_x2"), (std::vector<int>{1, 2}))
             << "resumed at its first unconfirmed page";
         EXPECT_EQ(FirstPages(h, "rcp_x3"), (std::vector<int>{1, 1}));
         // No false delivered: job 1 delivered after the first call, job 2 and 3 not before the retry.
         int x2_retry = 0, x3_retry = 0;
         for (const auto& e : h.EventsOf("rcp_x2")) x2_retry += e.has_retry_scheduled();
         for (const auto& e : h.EventsOf("rcp_x3")) x3_retry += e.has_retry_scheduled();
         EXPECT_EQ(x2_retry, 1);
         EXPECT_EQ(x3_retry, 1);
         EXPECT_EQ(h.Metric("faxflow_modem_pages_resent_total"), 1) << "job 2's page in flight at the drop";
         EXPECT_EQ(h.Metric("faxflow_modem_pages_sent_total"), 6);
       }},
      // A higher-priority job to another number is not delayed by a shared call: with one line,
      // it is dialled first, then the two jobs to one number go together.
      {"shared_call_never_overtakes_a_more_urgent_job",
       {{"rcp_lo1", kAnswer, 1, 0, "", DueTogether()},
        {"rcp_lo2", kAnswer, 1, 0, "", DueTogether()},
        {"rcp_hi", "+4930100077", 1, 5, "", DueTogether()}},
       {{"rcp_lo1", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 1, 1},
        {"rcp_lo2", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 1, 1},
        {"rcp_hi", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 1, 1}},
       [](ModemOptions& o) { o.channels = 1; },
       nullptr,
       [](ModemHarness& h) {
         std::vector<std::string> order;
         for (const auto& c : h.Calls()) order.push_back(c.value("job_id", ""));
         EXPECT_EQ(order, (std::vector<std::string>{"rcp_hi", "rcp_lo1", "rcp_lo2"}));
         EXPECT_EQ(h.CallsPlaced(), 2);
         EXPECT_EQ(SharedCalls(h), (std::vector<std::vector<std::string>>{{"rcp_lo1", "rcp_lo2"}}));
       }},
      // A normal-only receiver refuses fine resolution (T30_ERR_NORESSUPPORT): the worker retries
      // at once with the pages converted to 204x98, and remembers it for the number.
      {"normal_only_receiver_gets_204x98_on_the_automatic_retry",
       {{"rcp_norm", "+15550100103", 2}},
       {{"rcp_norm", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 2, 2}},
       nullptr,
       nullptr,
       [](ModemHarness& h) {
         std::vector<std::string> completions;
         for (const auto& e : h.EventsOf("rcp_norm"))
           if (e.has_result()) completions.push_back(e.result().completion_name());
         EXPECT_EQ(completions, (std::vector<std::string>{"T30_ERR_NORESSUPPORT", "T30_ERR_OK"}));
         EXPECT_EQ(h.Metric("faxflow_modem_normal_resolution_retries_total"), 1);
         // The next fax to that number starts at normal resolution: one dial.
         h.Submit(h.Job("rcp_norm2", "+15550100103", 1));
         ASSERT_TRUE(h.AwaitTerminal({"rcp_norm2"}));
         EXPECT_EQ(h.TerminalResults().at("rcp_norm2").state(), v1::STATE_DELIVERED);
         EXPECT_EQ(h.Dials("rcp_norm2"), 1) << "the number's memory says normal resolution";
       },
       true},
      // Training failures: a line that cannot carry V.17 fails every training of a call that
      // starts at V.17 (train_fail:v17); the retry runs at 9600 (V.29) and is delivered; the
      // number remembers it, so the next fax starts at 9600 (one dial).
      {"training_failure_falls_back_to_9600_and_is_remembered",
       {{"rcp_tf", "+15550100108", 2, 0, "", Retry(5)}},
       {{"rcp_tf", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 2, 2}},
       nullptr,
       nullptr,
       [](ModemHarness& h) {
         ExpectFallback(h, "rcp_tf", "+15550100108", {"v17+ecm", "9600+ecm"}, true);
       }},
      // ... and a line that also fails with ECM (train_fail:v17+ecm): 9600, then ECM off.
      {"training_failures_fall_back_to_9600_then_ecm_off",
       {{"rcp_tfe", "+15550100109", 2, 0, "", Retry(5)}},
       {{"rcp_tfe", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 2, 3}},
       nullptr,
       nullptr,
       [](ModemHarness& h) {
         ExpectFallback(h, "rcp_tfe", "+15550100109", {"v17+ecm", "9600+ecm", "9600-ecm"}, false);
       }},
      // Line conditions of the sim line (docs/sim.md, docs/t38.md; tests/modem/t38_scenarios.h).
      {"t38_no_loss_delivered",
       {{"rcp_t38a", "+15550100100", 2}},
       {{"rcp_t38a", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 2, 1}},
       nullptr,
       nullptr,
       [](ModemHarness& h) {
         EXPECT_EQ(h.Metric("faxflow_modem_t38_calls_total"), 1);
         EXPECT_GT(h.Metric("faxflow_modem_t38_datagrams_total{direction=\"sent\"}"), 100);
         EXPECT_GT(h.Metric("faxflow_modem_t38_datagrams_total{direction=\"received\"}"), 10);
         EXPECT_EQ(h.Metric("faxflow_modem_t38_missing_packets_total{outcome=\"recovered\"}"), 0);
         EXPECT_EQ(h.Metric("faxflow_modem_t38_missing_packets_total{outcome=\"unrecovered\"}"), 0);
         EXPECT_EQ(h.Metric("faxflow_modem_t38_sequence_gaps_total"), 0);
       }},
      {"t38_loss_1pct_delivered",
       {{"rcp_t38b", "+15550100101", 2}},
       {{"rcp_t38b", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 2, 1}}},
      {"t38_loss_10pct_delivered",
       {{"rcp_t38c", "+15550100102", 2}},
       {{"rcp_t38c", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 2, 1}},
       nullptr,
       nullptr,
       [](ModemHarness& h) {
         // 10 % of the far end's datagrams are lost; UDPTL redundancy recovers them.
         EXPECT_EQ(h.Metric("faxflow_modem_t38_calls_total"), 1);
         EXPECT_GT(h.Metric("faxflow_modem_t38_sequence_gaps_total"), 0);
         EXPECT_GT(h.Metric("faxflow_modem_t38_missing_packets_total{outcome=\"recovered\"}"), 0);
         EXPECT_GE(h.Metric("faxflow_modem_t38_missing_packets_total{outcome=\"recovered\"}"),
                   h.Metric("faxflow_modem_t38_sequence_gaps_total"));
       }},
      {"slow_receiver_9600_delivered",
       {{"rcp_slow9", "+15550100104", 2}},
       {{"rcp_slow9", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 2, 1}}},
      {"slow_receiver_4800_delivered",
       {{"rcp_slow4", "+15550100105", 2}},
       {{"rcp_slow4", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 2, 1}}},
      {"noise_within_limits_delivered",
       {{"rcp_noise", "+15550100106", 2}},
       {{"rcp_noise", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 2, 1}}},
  };
  return rows;
}

class ScenarioMatrix : public ::testing::TestWithParam<size_t> {
 protected:
  static void SetUpTestSuite() {
    doc_dir_ = new std::string(testing::MakeTempDir("matrix-doc"));
    doc_ = new TestDoc(testing::MakeTestDoc(*doc_dir_, 5));
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*doc_dir_);
    delete doc_;
    delete doc_dir_;
  }
  static inline std::string* doc_dir_ = nullptr;
  static inline TestDoc* doc_ = nullptr;
};

TEST_P(ScenarioMatrix, EndsInTheExpectedState) {
  ASSERT_FALSE(doc_->multipage_path.empty()) << "gs failed to render the test document";
  const Row& row = Rows().at(GetParam());
  ModemHarness h(*doc_);
  if (row.options) row.options(h.options);
  h.StartWorker();
  const int64_t now = h.clock_.NowMillis();
  for (const auto& spec : row.jobs) {
    auto job = h.Job(spec.id, spec.number, spec.pages, spec.fax_id);
    job.set_priority(spec.priority);
    if (spec.tweak) spec.tweak(job, now);
    h.Submit(job);
  }
  if (row.during) row.during(h);
  std::vector<std::string> ids;
  for (const auto& e : row.expect) ids.push_back(e.id);
  ASSERT_TRUE(h.AwaitTerminal(ids)) << "not every recipient reached a terminal state with a report";
  auto results = h.TerminalResults();
  for (const auto& e : row.expect) {
    SCOPED_TRACE(e.id);
    const auto& r = results.at(e.id);
    EXPECT_EQ(r.state(), e.state) << v1::RecipientState_Name(r.state()) << " " << r.detail();
    EXPECT_EQ(r.reason(), e.reason) << v1::FailureReason_Name(r.reason()) << " " << r.detail();
    EXPECT_EQ(r.pages_sent(), e.pages_sent);
    EXPECT_EQ(h.Dials(e.id), e.dials) << "calls placed";
    // Pixel for pixel: the far end holds exactly the confirmed pages (a cancelled call may hold
    // a page it received but we never saw confirmed).
    auto received = h.Received(e.id);
    if (e.state != v1::STATE_CANCELLED) {
      ASSERT_EQ(static_cast<int>(received.size()), e.pages_sent);
    }
    if (e.pages_sent > 0 && static_cast<int>(received.size()) >= e.pages_sent) {
      std::vector<pages::Bitmap> got(received.begin(), received.begin() + e.pages_sent);
      std::vector<pages::Bitmap> want = h.Expected(e.pages_sent);
      if (row.normal_resolution) {
        auto normal = pages::ToNormalResolution(testing::ReadFileBytes(doc_->multipage_path));
        ASSERT_TRUE(normal.ok()) << normal.status().ToString();
        auto decoded = pages::DecodePages(*normal);
        ASSERT_TRUE(decoded.ok());
        want.assign(decoded->begin(), decoded->begin() + e.pages_sent);
      }
      Status same = pages::ComparePages(want, got);
      EXPECT_TRUE(same.ok()) << same.ToString();
    }
    // The ledger agrees and the job is never dialled again.
    auto ledger = h.dedup_->Get(e.id);
    ASSERT_TRUE(ledger.ok() && ledger->has_value());
    EXPECT_TRUE((*ledger)->terminal);
    EXPECT_EQ((*ledger)->terminal_state, e.state);
    EXPECT_EQ((*ledger)->pages_confirmed, e.pages_sent);
    // A transmission report names the same outcome.
    for (const auto& ev : h.EventsOf(e.id)) {
      if (!ev.has_report()) continue;
      EXPECT_EQ(ev.report().state(), e.state);
      auto json = h.blobs_->Get(ev.report().json_blob_id());
      ASSERT_TRUE(json.ok());
      auto j = nlohmann::json::parse(*json);
      EXPECT_EQ(j.at("pages_sent"), e.pages_sent);
      EXPECT_EQ(static_cast<int>(j.at("attempts").size()), e.dials);
      auto pdf = h.blobs_->Get(ev.report().pdf_blob_id());
      ASSERT_TRUE(pdf.ok());
      EXPECT_EQ(pdf->rfind("%PDF-", 0), 0u);
    }
  }
  if (row.check) row.check(h);
  h.StopWorkers();
}

INSTANTIATE_TEST_SUITE_P(Modem, ScenarioMatrix, ::testing::Range<size_t>(0, Rows().size()),
                         [](const ::testing::TestParamInfo<size_t>& p) { return Rows().at(p.param).name; });

}  // namespace
}  // namespace faxflow::modem
