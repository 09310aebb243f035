// Prometheus metrics of the storage component (blob store and dedup ledger), declared in one
// place. Build one StorageMetrics from the process registry and hand a pointer to the stores
// (RocksBlobStore::Open, RocksDedupStore::Open); stores opened without one record nothing.
//
// Families (labels are bounded enums, never ids):
//   faxflow_storage_blob_puts_total{result=stored|deduplicated|error}
//   faxflow_storage_blob_stored_bytes_total        content bytes newly written (not deduplicated)
//   faxflow_storage_blob_put_seconds               Put latency including the fsync
//   faxflow_storage_blob_gets_total{result=ok|not_found|corrupt|error}
//   faxflow_storage_blob_gc_deleted_total          blobs deleted by CollectGarbage
//   faxflow_storage_dedup_ops_total{op=begin|confirm|finish|suppress, result=ok|refused|error}
//
// Threading: prometheus-cpp metrics are thread-safe; the struct is immutable after construction.
#pragma once

#include "common/metrics.h"

namespace faxflow {

struct StorageMetrics {
  explicit StorageMetrics(MetricsRegistry& registry);

  prometheus::Counter& blob_puts_stored;
  prometheus::Counter& blob_puts_deduplicated;
  prometheus::Counter& blob_puts_error;
  prometheus::Counter& blob_stored_bytes;
  prometheus::Histogram& blob_put_seconds;
  prometheus::Counter& blob_gets_ok;
  prometheus::Counter& blob_gets_not_found;
  prometheus::Counter& blob_gets_corrupt;
  prometheus::Counter& blob_gets_error;
  prometheus::Counter& blob_gc_deleted;

  // Dedup ledger operations. "refused" is a permanent refusal by the ledger's rules (attempt
  // already begun, job terminal, not begun, bad argument); "error" is a storage failure.
  struct DedupOp {
    prometheus::Counter* ok;
    prometheus::Counter* refused;
    prometheus::Counter* error;
  };
  DedupOp dedup_begin;
  DedupOp dedup_confirm;
  DedupOp dedup_finish;
  DedupOp dedup_suppress;
};

}  // namespace faxflow
