#include "topics/claims/metrics.h"

namespace faxflow::claims {

ClaimsMetrics::ClaimsMetrics(MetricsRegistry& registry, const std::string& worker)
    : load_score(
          prometheus::BuildGauge()
              .Name("faxflow_claims_load_score")
              .Help("Load score (0 idle .. 1 saturated) this imaging worker last published to fax.members.")
              .Register(registry)
              .Add({{"worker", worker}})),
      capacity(prometheus::BuildGauge()
                   .Name("faxflow_claims_capacity_cores")
                   .Help("Capacity in cores this imaging worker publishes; spare = capacity x (1 - score).")
                   .Register(registry)
                   .Add({{"worker", worker}})),
      owned_partitions(prometheus::BuildGauge()
                           .Name("faxflow_claims_owned_partitions")
                           .Help("Partitions of fax.submissions this imaging worker owns.")
                           .Register(registry)
                           .Add({{"worker", worker}})),
      changes(prometheus::BuildCounter()
                  .Name("faxflow_claims_changes_total")
                  .Help("Changes of this imaging worker's set of owned partitions.")
                  .Register(registry)
                  .Add({{"worker", worker}})),
      members(prometheus::BuildGauge()
                  .Name("faxflow_claims_members")
                  .Help("Live imaging workers in fax.members as seen by this worker.")
                  .Register(registry)
                  .Add({{"worker", worker}})),
      takeover_seconds(prometheus::BuildHistogram()
                           .Name("faxflow_claims_takeover_seconds")
                           .Help("Time from a claim decision to the partition being served (previous owner "
                                 "fenced, consumer at the committed offset).")
                           .Register(registry)
                           .Add({}, prometheus::Histogram::BucketBoundaries(LatencyBucketsSeconds()))),
      fenced(prometheus::BuildCounter()
                 .Name("faxflow_claims_fenced_total")
                 .Help("Partitions this imaging worker lost because a newer owner fenced its transaction.")
                 .Register(registry)
                 .Add({})) {}

}  // namespace faxflow::claims
