#include "workers/imaging/metrics.h"

namespace faxflow::imaging {
namespace {

prometheus::Family<prometheus::Counter>& Renders(MetricsRegistry& r) {
  return prometheus::BuildCounter()
      .Name("faxflow_imaging_renders_total")
      .Help("Submissions processed by imaging workers, by outcome (ok, document_error, retry).")
      .Register(r);
}

prometheus::Family<prometheus::Counter>& DocumentRenders(MetricsRegistry& r) {
  return prometheus::BuildCounter()
      .Name("faxflow_imaging_document_renders_total")
      .Help(
          "Documents rendered into fax pages, by outcome (ok, document_error, error = this machine's fault).")
      .Register(r);
}

prometheus::Family<prometheus::Gauge>& RendererProcesses(MetricsRegistry& r) {
  return prometheus::BuildGauge()
      .Name("faxflow_imaging_renderer_processes")
      .Help("Live warm Ghostscript processes of the render pool, by state (idle, busy).")
      .Register(r);
}

prometheus::Family<prometheus::Counter>& Recycles(MetricsRegistry& r) {
  return prometheus::BuildCounter()
      .Name("faxflow_imaging_renderer_recycles_total")
      .Help(
          "Warm Ghostscript processes retired by the render pool, by reason (docs_limit, failure, evicted, "
          "cpu_budget).")
      .Register(r);
}

prometheus::Family<prometheus::Counter>& Covers(MetricsRegistry& r) {
  return prometheus::BuildCounter()
      .Name("faxflow_imaging_covers_total")
      .Help(
          "Per-recipient broadcast cover pages, by outcome (rendered, reused = rendered earlier by this "
          "worker, "
          "document_error = that recipient failed).")
      .Register(r);
}

}  // namespace

RenderMetrics::RenderMetrics(MetricsRegistry& registry)
    : renders_ok(DocumentRenders(registry).Add({{"outcome", "ok"}})),
      renders_document_error(DocumentRenders(registry).Add({{"outcome", "document_error"}})),
      renders_error(DocumentRenders(registry).Add({{"outcome", "error"}})),
      render_seconds(prometheus::BuildHistogram()
                         .Name("faxflow_imaging_document_render_seconds")
                         .Help("Wall time to render one document into fax pages.")
                         .Register(registry)
                         .Add({}, prometheus::Histogram::BucketBoundaries(LatencyBucketsSeconds()))),
      pages(prometheus::BuildCounter()
                .Name("faxflow_imaging_rendered_pages_total")
                .Help("Fax pages produced by the document renderer.")
                .Register(registry)
                .Add({})),
      processes_idle(RendererProcesses(registry).Add({{"state", "idle"}})),
      processes_busy(RendererProcesses(registry).Add({{"state", "busy"}})),
      process_starts(prometheus::BuildCounter()
                         .Name("faxflow_imaging_renderer_process_starts_total")
                         .Help("Ghostscript processes started by the render pool.")
                         .Register(registry)
                         .Add({})),
      recycles_docs_limit(Recycles(registry).Add({{"reason", "docs_limit"}})),
      recycles_failure(Recycles(registry).Add({{"reason", "failure"}})),
      recycles_evicted(Recycles(registry).Add({{"reason", "evicted"}})),
      recycles_cpu_budget(Recycles(registry).Add({{"reason", "cpu_budget"}})),
      parallel_documents(
          prometheus::BuildCounter()
              .Name("faxflow_imaging_renderer_parallel_documents_total")
              .Help("Documents whose pages were rendered by several Ghostscript processes in parallel.")
              .Register(registry)
              .Add({})) {}

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
                       .Add({})),
      transaction_records(prometheus::BuildHistogram()
                              .Name("faxflow_imaging_transaction_records")
                              .Help("Submissions committed together in one bus transaction (consume, "
                                    "render, produce), per transaction.")
                              .Register(registry)
                              .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64})),
      covers_rendered(Covers(registry).Add({{"outcome", "rendered"}})),
      covers_reused(Covers(registry).Add({{"outcome", "reused"}})),
      covers_document_error(Covers(registry).Add({{"outcome", "document_error"}})) {}

}  // namespace faxflow::imaging
