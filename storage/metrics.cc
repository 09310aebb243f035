#include "storage/metrics.h"

namespace faxflow {
namespace {

prometheus::Family<prometheus::Counter>& BlobPuts(MetricsRegistry& registry) {
  return prometheus::BuildCounter()
      .Name("faxflow_storage_blob_puts_total")
      .Help("Blob store Put calls by result: stored (new content), deduplicated (content already present), error")
      .Register(registry);
}

prometheus::Family<prometheus::Counter>& BlobGets(MetricsRegistry& registry) {
  return prometheus::BuildCounter()
      .Name("faxflow_storage_blob_gets_total")
      .Help("Blob store Get calls by result: ok, not_found, corrupt (content does not match its id), error")
      .Register(registry);
}

prometheus::Family<prometheus::Counter>& DedupOps(MetricsRegistry& registry) {
  return prometheus::BuildCounter()
      .Name("faxflow_storage_dedup_ops_total")
      .Help("Dial ledger mutations by operation and result: ok, refused (ledger rule, e.g. attempt already "
            "begun), error (storage failure)")
      .Register(registry);
}

StorageMetrics::DedupOp MakeOp(prometheus::Family<prometheus::Counter>& family, const std::string& op) {
  return StorageMetrics::DedupOp{&family.Add({{"op", op}, {"result", "ok"}}),
                                 &family.Add({{"op", op}, {"result", "refused"}}),
                                 &family.Add({{"op", op}, {"result", "error"}})};
}

}  // namespace

StorageMetrics::StorageMetrics(MetricsRegistry& registry)
    : blob_puts_stored(BlobPuts(registry).Add({{"result", "stored"}})),
      blob_puts_deduplicated(BlobPuts(registry).Add({{"result", "deduplicated"}})),
      blob_puts_error(BlobPuts(registry).Add({{"result", "error"}})),
      blob_stored_bytes(prometheus::BuildCounter()
                            .Name("faxflow_storage_blob_stored_bytes_total")
                            .Help("Content bytes newly written to the blob store (deduplicated puts excluded)")
                            .Register(registry)
                            .Add({})),
      blob_put_seconds(prometheus::BuildHistogram()
                           .Name("faxflow_storage_blob_put_seconds")
                           .Help("Blob store Put latency in seconds, hashing and fsync included")
                           .Register(registry)
                           .Add({}, LatencyBucketsSeconds())),
      blob_gets_ok(BlobGets(registry).Add({{"result", "ok"}})),
      blob_gets_not_found(BlobGets(registry).Add({{"result", "not_found"}})),
      blob_gets_corrupt(BlobGets(registry).Add({{"result", "corrupt"}})),
      blob_gets_error(BlobGets(registry).Add({{"result", "error"}})),
      blob_gc_deleted(prometheus::BuildCounter()
                          .Name("faxflow_storage_blob_gc_deleted_total")
                          .Help("Blobs deleted by garbage collection (old and no longer referenced)")
                          .Register(registry)
                          .Add({})),
      dedup_begin(MakeOp(DedupOps(registry), "begin")),
      dedup_confirm(MakeOp(DedupOps(registry), "confirm")),
      dedup_finish(MakeOp(DedupOps(registry), "finish")),
      dedup_suppress(MakeOp(DedupOps(registry), "suppress")) {}

}  // namespace faxflow
