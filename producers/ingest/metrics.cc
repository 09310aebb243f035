#include "producers/ingest/metrics.h"

#include "common/metrics.h"

namespace faxflow::ingest {
namespace {

prometheus::Family<prometheus::Counter>& Records(prometheus::Registry& r) {
  return prometheus::BuildCounter()
      .Name("faxflow_ingest_records_total")
      .Help("fax.ingest records handled, by outcome: accepted, dead_letter, retry")
      .Register(r);
}

}  // namespace

IngestMetrics::IngestMetrics(prometheus::Registry& registry)
    : accepted(Records(registry).Add({{"outcome", "accepted"}})),
      dead_letter(Records(registry).Add({{"outcome", "dead_letter"}})),
      retry(Records(registry).Add({{"outcome", "retry"}})),
      fetch_seconds(prometheus::BuildHistogram()
                        .Name("faxflow_ingest_fetch_seconds")
                        .Help("Duration of one URL fetch attempt of an ingest document")
                        .Register(registry)
                        .Add({}, LatencyBucketsSeconds())),
      fetch_bytes(prometheus::BuildCounter()
                      .Name("faxflow_ingest_fetch_bytes_total")
                      .Help("Document bytes fetched from URLs named in ingest records")
                      .Register(registry)
                      .Add({})) {}

}  // namespace faxflow::ingest
