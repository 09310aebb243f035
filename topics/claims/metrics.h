// Prometheus metrics of partition claims, declared in one place. Label `worker` is the member
// id of the imaging worker (bounded: one per imaging worker of the deployment; several only when
// imaging workers run as threads of one embedded process).
//
//   faxflow_claims_load_score{worker}            load score 0..1 last published (docs/claims.md)
//   faxflow_claims_capacity_cores{worker}        capacity published
//   faxflow_claims_owned_partitions{worker}      fax.submissions partitions this worker owns now
//   faxflow_claims_changes_total{worker}         assignment changes this worker applied
//   faxflow_claims_members{worker}               live members this worker sees
//   faxflow_claims_takeover_seconds              from the claim decision to the partition being
//                                                served (producer fenced the previous owner,
//                                                consumer resumed at the committed offset)
//   faxflow_claims_fenced_total                  partitions whose transaction was fenced by a
//                                                newer owner (this worker was a stale owner)
//
// Threading: prometheus-cpp metrics are thread-safe; the struct is immutable after construction.
#pragma once

#include <string>

#include "common/metrics.h"

namespace faxflow::claims {

struct ClaimsMetrics {
  ClaimsMetrics(MetricsRegistry& registry, const std::string& worker);

  prometheus::Gauge& load_score;
  prometheus::Gauge& capacity;
  prometheus::Gauge& owned_partitions;
  prometheus::Counter& changes;
  prometheus::Gauge& members;
  prometheus::Histogram& takeover_seconds;
  prometheus::Counter& fenced;
};

}  // namespace faxflow::claims
