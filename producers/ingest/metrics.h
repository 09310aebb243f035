// Metrics of enterprise ingestion (fax.ingest), declared in one place.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace faxflow::ingest {

struct IngestMetrics {
  explicit IngestMetrics(prometheus::Registry& registry);
  // faxflow_ingest_records_total{outcome}: accepted (produced to fax.submissions), dead_letter
  // (produced to fax.dlq), retry (a transient failure that will be tried again).
  prometheus::Counter& accepted;
  prometheus::Counter& dead_letter;
  prometheus::Counter& retry;
  // faxflow_ingest_fetch_seconds: duration of one URL fetch attempt (success or failure).
  prometheus::Histogram& fetch_seconds;
  // faxflow_ingest_fetch_bytes_total: document bytes fetched from URLs.
  prometheus::Counter& fetch_bytes;
};

}  // namespace faxflow::ingest
