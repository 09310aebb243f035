// Content-addressed blob store: sources uploaded by users and rendered fax pages.
//
// A blob's id is the lowercase hex BLAKE3 of its content (BlobId), so identical content is
// stored once (a broadcast's pages are stored once for 10,000 recipients). Put is idempotent and durable
// (synced) when it returns. The RocksDB implementation keeps large values in blob files
// (BlobDB: enable_blob_files) so compaction does not rewrite page images.
//
// Retention/GC: every Put records (or refreshes) the blob's last-put time. CollectGarbage
// deletes blobs whose last put is older than a cutoff and that the caller's predicate does not
// report as still referenced (by a fax that is not terminal). See docs/storage.md.
//
// Threading: implementations are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace faxflow {

class BlobStore {
 public:
  virtual ~BlobStore() = default;
  // Stores the content; returns its id. Idempotent.
  virtual Result<std::string> Put(std::string_view content) = 0;
  // kNotFound (permanent) when absent; kCorruption (fatal) if the content does not match the id.
  virtual Result<std::string> Get(std::string_view id) = 0;
  virtual Result<bool> Exists(std::string_view id) = 0;
  // Deletes blobs last put before `cutoff_ms` for which `referenced(id)` is false; returns how
  // many were deleted.
  virtual Result<int64_t> CollectGarbage(int64_t cutoff_ms,
                                         const std::function<bool(std::string_view id)>& referenced) = 0;
};

// Lowercase hex SHA-256 (OpenSSL): API key hashes and derived ids, not blob ids.
std::string Sha256Hex(std::string_view content);
// A blob's id: lowercase hex BLAKE3 with the default 32-byte output (64 characters), the same
// as `b3sum` prints. BLAKE3 is a cryptographic hash, so no tenant can make two contents share an
// id; it is chosen over SHA-256 for speed (every page put computes it).
std::string BlobId(std::string_view content);
bool IsBlobId(std::string_view id);

struct RocksBlobStoreOptions {
  bool sync = true;                      // fsync the WAL on every Put
  uint64_t min_blob_size = 4096;         // values at least this big go to blob files
  uint64_t blob_file_size = 256ULL << 20;
  bool verify_on_get = false;            // recompute the BLAKE3 id on every Get
};

// Opens (creating) a RocksDB-backed blob store at `path`. `now_ms` supplies put times.
Result<std::unique_ptr<BlobStore>> OpenRocksBlobStore(const std::string& path, const RocksBlobStoreOptions& options,
                                                      std::function<int64_t()> now_ms);

}  // namespace faxflow
