#include "workers/notify/metrics.h"

namespace faxflow::notify {

NotifyMetrics::NotifyMetrics(prometheus::Registry& r)
    : events(prometheus::BuildCounter()
                 .Name("faxflow_webhook_events_total")
                 .Help("Events the notifier turned into webhook deliveries, by event type.")
                 .Register(r)),
      attempts(
          prometheus::BuildCounter()
              .Name("faxflow_webhook_attempts_total")
              .Help("Webhook POST attempts by outcome: ok, http_error, unreachable, refused (SSRF guard).")
              .Register(r)),
      delivered(prometheus::BuildCounter()
                    .Name("faxflow_webhook_delivered_total")
                    .Help("Webhook deliveries answered with 2xx.")
                    .Register(r)
                    .Add({})),
      dead_lettered(
          prometheus::BuildCounter()
              .Name("faxflow_webhook_dead_lettered_total")
              .Help("Webhook deliveries given up after webhooks.max_age_seconds or refused for good.")
              .Register(r)
              .Add({})),
      duplicates(prometheus::BuildCounter()
                     .Name("faxflow_webhook_duplicate_events_total")
                     .Help("Events seen again (at-least-once redelivery) whose deliveries already existed.")
                     .Register(r)
                     .Add({})),
      pruned(prometheus::BuildCounter()
                 .Name("faxflow_webhook_pruned_total")
                 .Help("Finished webhook deliveries this node removed after "
                       "webhooks.finished_retention_hours (with several gateway nodes: tombstones it "
                       "wrote to fax.webhook-deliveries for the partitions it owns).")
                 .Register(r)
                 .Add({})),
      pending(prometheus::BuildGauge()
                  .Name("faxflow_webhook_pending")
                  .Help("Webhook deliveries waiting for their next attempt.")
                  .Register(r)
                  .Add({})),
      partitions(prometheus::BuildGauge()
                     .Name("faxflow_webhook_partitions")
                     .Help("Partitions of fax.submissions and fax.events whose events this node's webhook "
                           "notifier turns into deliveries (all of them on a single node; split across "
                           "gateway nodes with owner routing).")
                     .Register(r)
                     .Add({})),
      attempt_seconds(prometheus::BuildHistogram()
                          .Name("faxflow_webhook_attempt_seconds")
                          .Help("Duration of one webhook POST attempt.")
                          .Register(r)
                          .Add({}, prometheus::Histogram::BucketBoundaries{0.005, 0.02, 0.05, 0.1, 0.25, 0.5,
                                                                           1, 2.5, 5, 10, 30})) {}

}  // namespace faxflow::notify
