#include "workers/imaging/metrics.h"

namespace faxflow::imaging {
namespace {

prometheus::Family<prometheus::Counter>& Renders(MetricsRegistry& r) {
  return prometheus::BuildCounter()
      .Name("faxflow_imaging_renders_total")
      .Help("Submissions processed by imaging workers, by outcome (ok, document_error, retry).")
      .Register(r);
}

}  // namespace

ImagingMetrics::ImagingMetrics(MetricsRegistry& registry)
    : renders_ok(Renders(registry).Add({{"outcome", "ok"}})),
      renders_document_error(Renders(registry).Add({{"outcome", "document_error"}})),
      renders_retry(Renders(registry).Add({{"outcome", "retry"}})),
      render_seconds(prometheus::BuildHistogram()
                         .Name("faxflow_imaging_render_seconds")
                         .Help("Wall time to render every document of a submission into fax pages.")
                         .Register(registry)
                         .Add({}, prometheus::Histogram::BucketBoundaries(LatencyBucketsSeconds()))),
      pages(prometheus::BuildCounter()
                .Name("faxflow_imaging_pages_total")
                .Help("Fax pages rendered and stored by imaging workers.")
                .Register(registry)
                .Add({})),
      documents_in_flight(prometheus::BuildGauge()
                              .Name("faxflow_imaging_documents_in_flight")
                              .Help("Submissions being rendered right now.")
                              .Register(registry)
                              .Add({})),
      dead_letters(prometheus::BuildCounter()
                       .Name("faxflow_imaging_dead_letters_total")
                       .Help("Undecodable submissions moved to the dead-letter topic fax.dlq.")
                       .Register(registry)
                       .Add({})) {}

}  // namespace faxflow::imaging
