#include "workers/modem/metrics.h"

#include <algorithm>
#include <cctype>

#include "schemas/common.pb.h"

namespace faxflow::modem {
namespace {

std::string Label(const std::string& enum_name, std::string_view prefix) {
  std::string s = enum_name.substr(std::min(enum_name.size(), prefix.size()));
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s.empty() ? "unknown" : s;
}

}  // namespace

ModemMetrics::ModemMetrics(prometheus::Registry& r)
    : channels_family(prometheus::BuildGauge()
                          .Name("faxflow_modem_channels")
                          .Help("Modem channels (simultaneous calls) by state: busy (in a call) or idle.")
                          .Register(r)),
      channels_busy(channels_family.Add({{"state", "busy"}})),
      channels_idle(channels_family.Add({{"state", "idle"}})),
      attempts(prometheus::BuildCounter()
                   .Name("faxflow_modem_attempts_total")
                   .Help("Call attempts begun (dial ledger written), including not-answered calls.")
                   .Register(r)
                   .Add({})),
      outcomes(prometheus::BuildCounter()
                   .Name("faxflow_modem_outcomes_total")
                   .Help("Attempt outcomes by recipient state and failure reason.")
                   .Register(r)),
      pages_sent(prometheus::BuildCounter()
                     .Name("faxflow_modem_pages_sent_total")
                     .Help("Pages confirmed by the far end (MCF/RTP).")
                     .Register(r)
                     .Add({})),
      call_seconds(prometheus::BuildHistogram()
                       .Name("faxflow_modem_call_seconds")
                       .Help("Line time of answered calls in seconds (from answer to hang-up).")
                       .Register(r)
                       .Add({}, prometheus::Histogram::BucketBoundaries{5, 10, 20, 30, 45, 60, 90, 120, 180,
                                                                        300, 600, 900, 1800})),
      bit_rate(prometheus::BuildHistogram()
                   .Name("faxflow_modem_bit_rate_bps")
                   .Help("Negotiated fax modem bit rate of answered fax calls, bits per second.")
                   .Register(r)
                   .Add({}, prometheus::Histogram::BucketBoundaries{2400, 4800, 7200, 9600, 12000, 14400})),
      dedup_suppressed(
          prometheus::BuildCounter()
              .Name("faxflow_modem_dedup_suppressed_total")
              .Help("Redelivered jobs not dialled because the dial ledger shows them finished or "
                    "already begun elsewhere.")
              .Register(r)
              .Add({})),
      resumed(prometheus::BuildCounter()
                  .Name("faxflow_modem_resumed_total")
                  .Help("Jobs resumed after an interrupted attempt (crash or shutdown mid-call).")
                  .Register(r)
                  .Add({})),
      watchdog(prometheus::BuildCounter()
                   .Name("faxflow_modem_watchdog_total")
                   .Help("Calls torn down by the call watchdog (line-time limit or wall-clock cap).")
                   .Register(r)
                   .Add({})),
      channel_busy_seconds(prometheus::BuildCounter()
                               .Name("faxflow_modem_channel_busy_seconds_total")
                               .Help("Seconds channels spent on calls (dial to hang-up); line utilisation = "
                                     "rate(this) / channels.")
                               .Register(r)
                               .Add({})),
      scheduler_family(
          prometheus::BuildGauge()
              .Name("faxflow_modem_scheduler_jobs")
              .Help("Jobs held by the modem scheduler: eligible (waiting for a channel), delayed "
                    "(retry delay, send_at or time-of-day window), blocked (number at its call limit).")
              .Register(r)),
      sched_eligible(scheduler_family.Add({{"state", "eligible"}})),
      sched_delayed(scheduler_family.Add({{"state", "delayed"}})),
      sched_blocked(scheduler_family.Add({{"state", "blocked"}})),
      retries(prometheus::BuildCounter()
                  .Name("faxflow_modem_retries_scheduled_total")
                  .Help("Retries scheduled after a failed attempt, by failure reason.")
                  .Register(r)),
      pages_resent(prometheus::BuildCounter()
                       .Name("faxflow_modem_pages_resent_total")
                       .Help("Pages sent again by a later attempt because the far end had not confirmed them "
                             "(page-level resume: at most the page in flight when a call broke).")
                       .Register(r)
                       .Add({})),
      reports(prometheus::BuildCounter()
                  .Name("faxflow_modem_reports_total")
                  .Help("Transmission reports stored (result=ok) or not (result=error).")
                  .Register(r)),
      line_plans(prometheus::BuildCounter()
                     .Name("faxflow_modem_line_plan_attempts_total")
                     .Help("Attempts by line plan: v17+ecm (normal), 9600+ecm and 9600-ecm (fallbacks after "
                           "training failures or remembered for the destination).")
                     .Register(r)),
      cancel_commands(prometheus::BuildCounter()
                          .Name("faxflow_modem_control_commands_total")
                          .Help("fax.control commands applied (cancel).")
                          .Register(r)
                          .Add({})),
      multi_document_calls(prometheus::BuildCounter()
                               .Name("faxflow_modem_multi_document_calls_total")
                               .Help("Calls that carried the documents of several jobs to one number "
                                     "(batching; each job still has its own attempt and outcome).")
                               .Register(r)
                               .Add({})),
      normal_resolution_retries(prometheus::BuildCounter()
                                    .Name("faxflow_modem_normal_resolution_retries_total")
                                    .Help("Retries at normal resolution (204x98) after the far end refused "
                                          "fine resolution (T30_ERR_NORESSUPPORT).")
                                    .Register(r)
                                    .Add({})),
      t38_calls(prometheus::BuildCounter()
                    .Name("faxflow_modem_t38_calls_total")
                    .Help("Answered calls that carried T.38 (UDPTL) instead of audio, counted when they end.")
                    .Register(r)
                    .Add({})),
      t38_datagrams(prometheus::BuildCounter()
                        .Name("faxflow_modem_t38_datagrams_total")
                        .Help("UDPTL datagrams of T.38 calls: direction=sent (handed to the network) or "
                              "received (well-formed, from the far end).")
                        .Register(r)),
      t38_datagrams_sent(t38_datagrams.Add({{"direction", "sent"}})),
      t38_datagrams_received(t38_datagrams.Add({{"direction", "received"}})),
      t38_missing(prometheus::BuildCounter()
                      .Name("faxflow_modem_t38_missing_packets_total")
                      .Help("IFP packets missing from the received UDPTL sequence (lost on the network): "
                            "outcome=recovered from the redundancy of a later datagram, or unrecovered.")
                      .Register(r)),
      t38_recovered(t38_missing.Add({{"outcome", "recovered"}})),
      t38_unrecovered(t38_missing.Add({{"outcome", "unrecovered"}})),
      t38_sequence_gaps(prometheus::BuildCounter()
                            .Name("faxflow_modem_t38_sequence_gaps_total")
                            .Help("Received UDPTL datagrams that arrived after a gap in the sequence numbers "
                                  "(one or more datagrams missing before them).")
                            .Register(r)
                            .Add({})),
      t38_late_datagrams(prometheus::BuildCounter()
                             .Name("faxflow_modem_t38_late_datagrams_total")
                             .Help("Received UDPTL datagrams that came after their sequence number had been "
                                   "delivered or given up (late, reordered or duplicated); not used.")
                             .Register(r)
                             .Add({})),
      t38_malformed(prometheus::BuildCounter()
                        .Name("faxflow_modem_t38_malformed_datagrams_total")
                        .Help("Received datagrams that were not valid UDPTL (dropped).")
                        .Register(r)
                        .Add({})) {}

void ModemMetrics::CountT38Call(const T38CallStats& s) {
  t38_calls.Increment();
  t38_datagrams_sent.Increment(static_cast<double>(s.datagrams_sent));
  t38_datagrams_received.Increment(static_cast<double>(s.datagrams_received));
  t38_recovered.Increment(static_cast<double>(s.recovered));
  t38_unrecovered.Increment(static_cast<double>(s.lost));
  t38_sequence_gaps.Increment(static_cast<double>(s.gaps));
  t38_late_datagrams.Increment(static_cast<double>(s.late));
  t38_malformed.Increment(static_cast<double>(s.malformed));
}

void ModemMetrics::CountRetry(int reason) {
  const std::string why =
      v1::FailureReason_IsValid(reason)
          ? Label(v1::FailureReason_Name(static_cast<v1::FailureReason>(reason)), "REASON_")
          : "unknown";
  retries.Add({{"reason", why}}).Increment();
}

void ModemMetrics::CountOutcome(int state, int reason) {
  const std::string s = v1::RecipientState_IsValid(state)
                            ? Label(v1::RecipientState_Name(static_cast<v1::RecipientState>(state)), "STATE_")
                            : "unknown";
  const std::string why =
      v1::FailureReason_IsValid(reason)
          ? Label(v1::FailureReason_Name(static_cast<v1::FailureReason>(reason)), "REASON_")
          : "unknown";
  outcomes.Add({{"state", s}, {"reason", why}}).Increment();
}

}  // namespace faxflow::modem
