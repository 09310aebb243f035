// The modem worker's metrics, declared in one place. Labels are bounded (state/reason enum
// names, channel state); never a fax id or a phone number.
#pragma once

#include <string>

#include "common/metrics.h"

namespace faxflow::modem {

struct ModemMetrics {
  explicit ModemMetrics(prometheus::Registry& registry);

  prometheus::Family<prometheus::Gauge>& channels_family;
  prometheus::Gauge& channels_busy;                         // faxflow_modem_channels{state="busy"}
  prometheus::Gauge& channels_idle;                         // faxflow_modem_channels{state="idle"}
  prometheus::Counter& attempts;                            // faxflow_modem_attempts_total
  prometheus::Family<prometheus::Counter>& outcomes;        // faxflow_modem_outcomes_total{state,reason}
  prometheus::Counter& pages_sent;                          // faxflow_modem_pages_sent_total
  prometheus::Histogram& call_seconds;                      // faxflow_modem_call_seconds (line time)
  prometheus::Histogram& bit_rate;                          // faxflow_modem_bit_rate_bps
  prometheus::Counter& dedup_suppressed;                    // faxflow_modem_dedup_suppressed_total
  prometheus::Counter& resumed;                             // faxflow_modem_resumed_total
  prometheus::Counter& watchdog;                            // faxflow_modem_watchdog_total
  prometheus::Counter& channel_busy_seconds;                // faxflow_modem_channel_busy_seconds_total
  prometheus::Family<prometheus::Gauge>& scheduler_family;  // faxflow_modem_scheduler_jobs{state}
  prometheus::Gauge& sched_eligible;
  prometheus::Gauge& sched_delayed;
  prometheus::Gauge& sched_blocked;
  prometheus::Family<prometheus::Counter>& retries;     // faxflow_modem_retries_scheduled_total{reason}
  prometheus::Counter& pages_resent;                    // faxflow_modem_pages_resent_total
  prometheus::Family<prometheus::Counter>& reports;     // faxflow_modem_reports_total{result}
  prometheus::Family<prometheus::Counter>& line_plans;  // faxflow_modem_line_plan_attempts_total{plan}
  prometheus::Counter& cancel_commands;                 // faxflow_modem_control_commands_total

  void CountRetry(int reason);

  // Counts one attempt outcome (state/reason are the proto enum names, lowercase, no prefix).
  void CountOutcome(int state, int reason);
};

}  // namespace faxflow::modem
