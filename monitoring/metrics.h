// Metrics of the monitoring component (health, readiness, heartbeats, the books), declared in one
// place. Labels are bounded: check names and component names are fixed strings chosen by the
// code that registers them (a handful per process), states are the terminal state names.
// Conventions: docs/metrics.md. Threading: prometheus-cpp metrics are thread-safe.
#pragma once

#include "common/metrics.h"

namespace faxflow::monitoring {

struct HealthMetrics {
  explicit HealthMetrics(MetricsRegistry& registry);
  prometheus::Gauge& ready;                          // faxflow_process_ready
  prometheus::Family<prometheus::Gauge>& check_ok;   // faxflow_readiness_check_ok{check}
  prometheus::Family<prometheus::Gauge>& heartbeat;  // faxflow_heartbeat_timestamp_seconds{component}
  prometheus::Gauge& start_time;                     // faxflow_process_start_time_seconds
  // faxflow_worker_heartbeat_age_seconds{component}: since the least recent beat of its loops.
  prometheus::Family<prometheus::Gauge>& heartbeat_age;
  // faxflow_worker_heartbeat_stall_threshold_seconds{component}: age above which it is stalled.
  prometheus::Family<prometheus::Gauge>& stall_threshold;
};

struct BooksMetrics {
  explicit BooksMetrics(MetricsRegistry& registry);
  prometheus::Gauge& accepted;                      // faxflow_books_recipients_accepted
  prometheus::Family<prometheus::Gauge>& terminal;  // faxflow_books_recipients_terminal{state}
  prometheus::Gauge& in_flight;                     // faxflow_books_recipients_in_flight
  prometheus::Counter& refresh_errors;              // faxflow_books_refresh_errors_total
};

}  // namespace faxflow::monitoring
