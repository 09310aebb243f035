// Prometheus metrics of the imaging worker, declared in one place. Build one ImagingMetrics
// from the process registry and hand it to the ImagingWorker.
//
// Families (labels are bounded enums, never ids):
//   faxflow_imaging_renders_total{outcome=ok|document_error|retry}   submissions processed
//   faxflow_imaging_render_seconds       wall time to render all documents of a submission
//   faxflow_imaging_pages_total          fax pages produced
//   faxflow_imaging_documents_in_flight  submissions being rendered right now
//   faxflow_imaging_dead_letters_total   undecodable submissions sent to fax.dlq
//   faxflow_imaging_transaction_records  submissions committed per bus transaction
//   faxflow_imaging_covers_total{outcome=rendered|reused|document_error}  broadcast cover pages
//
// Threading: prometheus-cpp metrics are thread-safe; the struct is immutable after construction.
#pragma once

#include "common/metrics.h"

namespace faxflow::imaging {

struct ImagingMetrics {
  explicit ImagingMetrics(MetricsRegistry& registry);

  prometheus::Counter& renders_ok;
  prometheus::Counter& renders_document_error;
  prometheus::Counter& renders_retry;
  prometheus::Histogram& render_seconds;
  prometheus::Counter& pages;
  prometheus::Gauge& documents_in_flight;
  prometheus::Counter& dead_letters;
  prometheus::Histogram& transaction_records;
  // Per-recipient broadcast covers (docs/broadcast.md): rendered, reused from the worker's
  // cover cache (same cover in an earlier chunk), or failed (that recipient only).
  prometheus::Counter& covers_rendered;
  prometheus::Counter& covers_reused;
  prometheus::Counter& covers_document_error;
};

// Metrics of the document renderer and its pool of warm Ghostscript processes (renderer.h,
// render_pool.h). Families (labels are bounded enums):
//   faxflow_imaging_document_renders_total{outcome=ok|document_error|error}  documents rendered
//   faxflow_imaging_document_render_seconds    wall time to render one document
//   faxflow_imaging_rendered_pages_total       fax pages produced by the renderer (rate() = pages/s)
//   faxflow_imaging_renderer_processes{state=idle|busy}  live warm gs processes of the pool
//   faxflow_imaging_renderer_process_starts_total        gs processes started by the pool
//   faxflow_imaging_renderer_recycles_total{reason=docs_limit|failure|evicted|cpu_budget}
//   faxflow_imaging_renderer_parallel_documents_total    documents whose pages were split across processes
// Gauges are changed with Increment/Decrement so that several pools of one process add up.
struct RenderMetrics {
  explicit RenderMetrics(MetricsRegistry& registry);

  prometheus::Counter& renders_ok;
  prometheus::Counter& renders_document_error;
  prometheus::Counter& renders_error;
  prometheus::Histogram& render_seconds;
  prometheus::Counter& pages;
  prometheus::Gauge& processes_idle;
  prometheus::Gauge& processes_busy;
  prometheus::Counter& process_starts;
  prometheus::Counter& recycles_docs_limit;
  prometheus::Counter& recycles_failure;
  prometheus::Counter& recycles_evicted;
  prometheus::Counter& recycles_cpu_budget;
  prometheus::Counter& parallel_documents;
};

}  // namespace faxflow::imaging
