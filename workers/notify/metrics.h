// Metrics of the webhook notifier, declared in one place.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace faxflow::notify {

struct NotifyMetrics {
  explicit NotifyMetrics(prometheus::Registry& registry);
  prometheus::Family<prometheus::Counter>& events;    // by type
  prometheus::Family<prometheus::Counter>& attempts;  // by outcome
  prometheus::Counter& delivered;
  prometheus::Counter& dead_lettered;
  prometheus::Counter& duplicates;
  prometheus::Counter& pruned;
  prometheus::Gauge& pending;
  prometheus::Gauge& partitions;  // partitions of fax.submissions/fax.events notified by this node
  prometheus::Histogram& attempt_seconds;
};

}  // namespace faxflow::notify
