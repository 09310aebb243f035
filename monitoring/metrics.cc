#include "monitoring/metrics.h"

namespace faxflow::monitoring {

HealthMetrics::HealthMetrics(MetricsRegistry& r)
    : ready(prometheus::BuildGauge()
                .Name("faxflow_process_ready")
                .Help("1 when every readiness check of this process passes (what /readyz answers), else 0.")
                .Register(r)
                .Add({})),
      check_ok(prometheus::BuildGauge()
                   .Name("faxflow_readiness_check_ok")
                   .Help("Result of one readiness check (topics, blob_server, imaging, claims, ...): 1 ok, 0 "
                         "failing.")
                   .Register(r)),
      heartbeat(
          prometheus::BuildGauge()
              .Name("faxflow_heartbeat_timestamp_seconds")
              .Help("Unix time of the last heartbeat of a component of this process (its loop is alive).")
              .Register(r)),
      start_time(prometheus::BuildGauge()
                     .Name("faxflow_process_start_time_seconds")
                     .Help("Unix time at which this faxflow process started its pipeline.")
                     .Register(r)
                     .Add({})),
      heartbeat_age(
          prometheus::BuildGauge()
              .Name("faxflow_worker_heartbeat_age_seconds")
              .Help("Seconds since the worker loop of a component that beat least recently last beat "
                    "(imaging, modem_channel, status, ...); refreshed every second.")
              .Register(r)),
      stall_threshold(
          prometheus::BuildGauge()
              .Name("faxflow_worker_heartbeat_stall_threshold_seconds")
              .Help("Heartbeat age above which a component's loop counts as stalled: /readyz fails "
                    "and FaxflowWorkerNotHeartbeating fires (health.stall_seconds, raised for loops "
                    "with long turns).")
              .Register(r)) {}

BooksMetrics::BooksMetrics(MetricsRegistry& r)
    : accepted(prometheus::BuildGauge()
                   .Name("faxflow_books_recipients_accepted")
                   .Help("Recipients ever accepted, as recorded by the status store (the books). Survives "
                         "restarts, so it is a gauge read from the store, not a process counter.")
                   .Register(r)
                   .Add({})),
      terminal(prometheus::BuildGauge()
                   .Name("faxflow_books_recipients_terminal")
                   .Help("Recipients that reached a terminal state (delivered, partial, failed, cancelled, "
                         "expired), as recorded by the status store.")
                   .Register(r)),
      in_flight(prometheus::BuildGauge()
                    .Name("faxflow_books_recipients_in_flight")
                    .Help("Recipients accepted and not yet terminal: accepted minus every terminal state. "
                          "Negative means the books do not balance.")
                    .Register(r)
                    .Add({})),
      refresh_errors(prometheus::BuildCounter()
                         .Name("faxflow_books_refresh_errors_total")
                         .Help("Failed reads of the books from the status store.")
                         .Register(r)
                         .Add({})) {}

}  // namespace faxflow::monitoring
