// RocksBlobStore: the RocksDB/BlobDB implementation of BlobStore (blob_store.h), for the gateway
// (uploaded sources), imaging workers (rendered pages) and modem workers (pages to send).
//
// Use OpenRocksBlobStore() when the BlobStore interface is enough; open this class directly for
// the operational extras (Stats, Info, Flush, Compact) and metrics. Layout, durability and the
// retention rule are in docs/storage.md.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include "common/status.h"
#include "storage/blob_store.h"
#include "storage/metrics.h"
#include "storage/rocks_util.h"

namespace faxflow {

struct BlobStoreStats {
  int64_t blobs = 0;            // distinct blobs stored
  int64_t content_bytes = 0;    // sum of their sizes (each distinct content counted once)
  uint64_t blob_file_bytes = 0; // on-disk size of BlobDB blob files (flushed data only)
};

struct BlobInfo {
  int64_t size = 0;
  int64_t last_put_ms = 0;
};

// Content-addressed blob store on one RocksDB instance with two column families:
//   "blobs": id -> content, BlobDB enabled (values >= min_blob_size live in blob files);
//   "meta":  id -> [version 1][fixed64 last_put_ms][fixed64 size], small and compaction-cheap.
// A Put of content already present only refreshes last_put_ms (no second copy is written).
//
// Lifecycle: Open, use from any thread, destroy (closes the DB; the directory lock is released).
// Only one process may open a path at a time (RocksDB's LOCK file).
// Threading: thread-safe. Operations on one id serialise on a striped mutex, so a Put racing a
// CollectGarbage of the same id either keeps the blob or re-creates it, never loses it.
// The column family options the store uses (content in blob files, uncompressed; meta with a
// Bloom filter). Exposed so benchmarks compare against raw RocksDB with exactly these options.
rocksdb::ColumnFamilyOptions BlobStoreContentOptions(const RocksBlobStoreOptions& options);
rocksdb::ColumnFamilyOptions BlobStoreMetaOptions();
rocksdb::DBOptions BlobStoreDbOptions();
// Column families in open order: default, meta, blobs.
std::vector<rocksdb::ColumnFamilyDescriptor> BlobStoreColumnFamilies(const RocksBlobStoreOptions& options);

class RocksBlobStore final : public BlobStore {
 public:
  // `now_ms` supplies put times (inject a ManualClock in tests). `metrics` may be null.
  static Result<std::unique_ptr<RocksBlobStore>> Open(const std::string& path, const RocksBlobStoreOptions& options,
                                                      std::function<int64_t()> now_ms,
                                                      StorageMetrics* metrics = nullptr);
  ~RocksBlobStore() override;

  Result<std::string> Put(std::string_view content) override;
  Result<std::string> Get(std::string_view id) override;
  Result<bool> Exists(std::string_view id) override;
  Result<int64_t> CollectGarbage(int64_t cutoff_ms,
                                 const std::function<bool(std::string_view id)>& referenced) override;

  // Size and last put time of one blob; kNotFound (permanent) when absent.
  Result<BlobInfo> Info(std::string_view id);
  // Counts distinct blobs and their bytes (a scan of the meta column family: O(blobs)).
  Result<BlobStoreStats> Stats();
  // Flushes memtables so every value is in SST/blob files (e.g. before a file-level backup).
  Status Flush();
  // Full manual compaction: lets BlobDB garbage collection reclaim space after deletions.
  Status Compact();

  // Test hook: stores `content` under `id` without hashing (to simulate on-disk corruption).
  Status OverwriteContentForTest(std::string_view id, std::string_view content);

 private:
  RocksBlobStore(std::unique_ptr<storage_internal::RocksDb> db, RocksBlobStoreOptions options,
                 std::function<int64_t()> now_ms, StorageMetrics* metrics);
  Result<std::string> PutLocked(const std::string& id, std::string_view content);

  std::unique_ptr<storage_internal::RocksDb> db_;
  RocksBlobStoreOptions options_;
  std::function<int64_t()> now_ms_;
  StorageMetrics* metrics_;
  storage_internal::StripedMutex locks_;
};

}  // namespace faxflow
