// Prometheus metrics of the imaging worker, declared in one place. Build one ImagingMetrics
// from the process registry and hand it to the ImagingWorker.
//
// Families (labels are bounded enums, never ids):
//   faxflow_imaging_renders_total{outcome=ok|document_error|retry}   submissions processed
//   faxflow_imaging_render_seconds       wall time to render all documents of a submission
//   faxflow_imaging_pages_total          fax pages produced
//   faxflow_imaging_documents_in_flight  submissions being rendered right now
//   faxflow_imaging_dead_letters_total   undecodable submissions sent to fax.dlq
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
};

}  // namespace faxflow::imaging
