// The modem worker's metrics, declared in one place. Labels are bounded (state/reason enum
// names, channel state); never a fax id or a phone number.
#pragma once

#include <string>

#include "common/metrics.h"
#include "workers/modem/line_driver.h"

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
  prometheus::Counter& multi_document_calls;            // faxflow_modem_multi_document_calls_total
  prometheus::Counter& normal_resolution_retries;       // faxflow_modem_normal_resolution_retries_total
  // T.38 calls (the t38 driver and the sim's T.38 far ends), counted when a call ends.
  prometheus::Counter& t38_calls;                          // faxflow_modem_t38_calls_total
  prometheus::Family<prometheus::Counter>& t38_datagrams;  // faxflow_modem_t38_datagrams_total{direction}
  prometheus::Counter& t38_datagrams_sent;
  prometheus::Counter& t38_datagrams_received;
  prometheus::Family<prometheus::Counter>& t38_missing;  // faxflow_modem_t38_missing_packets_total{outcome}
  prometheus::Counter& t38_recovered;
  prometheus::Counter& t38_unrecovered;
  prometheus::Counter& t38_sequence_gaps;   // faxflow_modem_t38_sequence_gaps_total
  prometheus::Counter& t38_late_datagrams;  // faxflow_modem_t38_late_datagrams_total
  prometheus::Counter& t38_malformed;       // faxflow_modem_t38_malformed_datagrams_total

  // Adds a finished T.38 call's packet statistics.
  void CountT38Call(const T38CallStats& stats);

  void CountRetry(int reason);

  // Counts one attempt outcome (state/reason are the proto enum names, lowercase, no prefix).
  void CountOutcome(int state, int reason);
};

}  // namespace faxflow::modem
