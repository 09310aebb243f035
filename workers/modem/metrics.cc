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
                          .Add({})) {}

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
