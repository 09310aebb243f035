#include "storage/rocks_blob_store.h"

#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <chrono>
#include <utility>
#include <vector>

namespace faxflow {
namespace {

using storage_internal::FromRocks;

constexpr size_t kMetaCf = 1;  // handle indexes; "default" (0) holds nothing
constexpr size_t kContentCf = 2;
constexpr char kMetaVersion = 1;

std::string EncodeMeta(int64_t last_put_ms, int64_t size) {
  std::string out;
  out.reserve(17);
  out.push_back(kMetaVersion);
  storage_internal::AppendFixed64(&out, static_cast<uint64_t>(last_put_ms));
  storage_internal::AppendFixed64(&out, static_cast<uint64_t>(size));
  return out;
}

Result<BlobInfo> DecodeMeta(std::string_view id, std::string_view value) {
  size_t pos = 1;
  uint64_t put_ms = 0;
  uint64_t size = 0;
  if (value.empty() || value[0] != kMetaVersion || !storage_internal::ReadFixed64(value, &pos, &put_ms) ||
      !storage_internal::ReadFixed64(value, &pos, &size) || pos != value.size()) {
    return Status::Fatal(Code::kCorruption, "blob store: undecodable meta record for " + std::string(id));
  }
  return BlobInfo{static_cast<int64_t>(size), static_cast<int64_t>(put_ms)};
}

Status InvalidId(std::string_view id) {
  std::string shown(id.substr(0, 80));
  return Status::Permanent(Code::kInvalidArgument,
                           "blob id must be 64 lowercase hex characters (BLAKE3), got \"" + shown + "\"");
}

}  // namespace

rocksdb::DBOptions BlobStoreDbOptions() {
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.keep_log_file_num = 5;
  return db_options;
}

std::vector<rocksdb::ColumnFamilyDescriptor> BlobStoreColumnFamilies(const RocksBlobStoreOptions& options) {
  return {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {"meta", BlobStoreMetaOptions()},
      {"blobs", BlobStoreContentOptions(options)},
  };
}

rocksdb::ColumnFamilyOptions BlobStoreMetaOptions() {
  rocksdb::ColumnFamilyOptions cf;
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return cf;
}

rocksdb::ColumnFamilyOptions BlobStoreContentOptions(const RocksBlobStoreOptions& options) {
  rocksdb::ColumnFamilyOptions cf;
  // Fax pages (G4 TIFF) and most sources (PDF) are already compressed.
  cf.compression = rocksdb::kNoCompression;
  cf.enable_blob_files = true;
  cf.min_blob_size = options.min_blob_size;
  cf.blob_file_size = options.blob_file_size;
  cf.blob_compression_type = rocksdb::kNoCompression;
  cf.enable_blob_garbage_collection = true;
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return cf;
}

Result<std::unique_ptr<RocksBlobStore>> RocksBlobStore::Open(const std::string& path,
                                                             const RocksBlobStoreOptions& options,
                                                             std::function<int64_t()> now_ms,
                                                             StorageMetrics* metrics) {
  if (!now_ms) return Status::Permanent(Code::kInvalidArgument, "blob store: now_ms clock is required");
  FF_ASSIGN_OR_RETURN(
      auto db, storage_internal::RocksDb::Open(path, BlobStoreDbOptions(), BlobStoreColumnFamilies(options)));
  return std::unique_ptr<RocksBlobStore>(
      new RocksBlobStore(std::move(db), options, std::move(now_ms), metrics));
}

RocksBlobStore::RocksBlobStore(std::unique_ptr<storage_internal::RocksDb> db, RocksBlobStoreOptions options,
                               std::function<int64_t()> now_ms, StorageMetrics* metrics)
    : db_(std::move(db)), options_(options), now_ms_(std::move(now_ms)), metrics_(metrics) {}

RocksBlobStore::~RocksBlobStore() = default;

Result<std::string> RocksBlobStore::Put(std::string_view content) {
  const auto start = std::chrono::steady_clock::now();
  std::string id = BlobId(content);
  Result<std::string> result = [&] {
    std::lock_guard<std::mutex> lock(locks_.For(id));
    return PutLocked(id, content);
  }();
  if (metrics_ != nullptr) {
    if (!result.ok()) metrics_->blob_puts_error.Increment();
    metrics_->blob_put_seconds.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return result;
}

Result<std::string> RocksBlobStore::PutLocked(const std::string& id, std::string_view content) {
  rocksdb::DB* db = db_->db();
  const int64_t now = now_ms_();
  rocksdb::WriteOptions write_options;
  write_options.sync = options_.sync;

  rocksdb::PinnableSlice meta;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), db_->cf(kMetaCf), id, &meta);
  if (s.ok()) {
    // Already stored: refresh the last put time only (retention), never write the content again.
    FF_ASSIGN_OR_RETURN(BlobInfo info, DecodeMeta(id, meta.ToStringView()));
    if (info.size != static_cast<int64_t>(content.size())) {
      return Status::Fatal(Code::kCorruption,
                           "blob store: meta size of " + id + " does not match its content");
    }
    if (now > info.last_put_ms) {
      FF_RETURN_IF_ERROR(FromRocks(db->Put(write_options, db_->cf(kMetaCf), id, EncodeMeta(now, info.size)),
                                   "blob store: refresh " + id));
    }
    if (metrics_ != nullptr) metrics_->blob_puts_deduplicated.Increment();
    return id;
  }
  if (!s.IsNotFound()) return FromRocks(s, "blob store: read meta of " + id);

  // Sized for both records up front (as DB::Put sizes its own batch): growing the batch's buffer
  // for the meta record after the content would copy the whole page once more.
  rocksdb::WriteBatch batch(content.size() + 2 * id.size() + 64);
  FF_RETURN_IF_ERROR(
      FromRocks(batch.Put(db_->cf(kContentCf), id, rocksdb::Slice(content.data(), content.size())),
                "blob store: batch"));
  FF_RETURN_IF_ERROR(
      FromRocks(batch.Put(db_->cf(kMetaCf), id, EncodeMeta(now, static_cast<int64_t>(content.size()))),
                "blob store: batch"));
  FF_RETURN_IF_ERROR(FromRocks(db->Write(write_options, &batch), "blob store: write " + id));
  if (metrics_ != nullptr) {
    metrics_->blob_puts_stored.Increment();
    metrics_->blob_stored_bytes.Increment(static_cast<double>(content.size()));
  }
  return id;
}

Result<std::string> RocksBlobStore::Get(std::string_view id) {
  if (!IsBlobId(id)) return InvalidId(id);
  rocksdb::PinnableSlice value;
  rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), db_->cf(kContentCf),
                                     rocksdb::Slice(id.data(), id.size()), &value);
  if (s.IsNotFound()) {
    if (metrics_ != nullptr) metrics_->blob_gets_not_found.Increment();
    return Status::Permanent(Code::kNotFound, "blob " + std::string(id) + " not found");
  }
  if (!s.ok()) {
    if (metrics_ != nullptr)
      (s.IsCorruption() ? metrics_->blob_gets_corrupt : metrics_->blob_gets_error).Increment();
    return FromRocks(s, "blob store: get " + std::string(id));
  }
  std::string content(value.data(), value.size());
  if (options_.verify_on_get && BlobId(content) != id) {
    if (metrics_ != nullptr) metrics_->blob_gets_corrupt.Increment();
    return Status::Fatal(Code::kCorruption,
                         "blob " + std::string(id) + ": stored content does not match its BLAKE3 id");
  }
  if (metrics_ != nullptr) metrics_->blob_gets_ok.Increment();
  return content;
}

Result<bool> RocksBlobStore::Exists(std::string_view id) {
  if (!IsBlobId(id)) return InvalidId(id);
  std::string meta;
  rocksdb::Status s =
      db_->db()->Get(rocksdb::ReadOptions(), db_->cf(kMetaCf), rocksdb::Slice(id.data(), id.size()), &meta);
  if (s.IsNotFound()) return false;
  FF_RETURN_IF_ERROR(FromRocks(s, "blob store: exists " + std::string(id)));
  return true;
}

Result<BlobInfo> RocksBlobStore::Info(std::string_view id) {
  if (!IsBlobId(id)) return InvalidId(id);
  std::string meta;
  rocksdb::Status s =
      db_->db()->Get(rocksdb::ReadOptions(), db_->cf(kMetaCf), rocksdb::Slice(id.data(), id.size()), &meta);
  if (s.IsNotFound()) return Status::Permanent(Code::kNotFound, "blob " + std::string(id) + " not found");
  FF_RETURN_IF_ERROR(FromRocks(s, "blob store: info " + std::string(id)));
  return DecodeMeta(id, meta);
}

Result<int64_t> RocksBlobStore::CollectGarbage(int64_t cutoff_ms,
                                               const std::function<bool(std::string_view id)>& referenced) {
  rocksdb::DB* db = db_->db();
  // Pass 1: candidates by age from a consistent view, without locks.
  std::vector<std::string> candidates;
  {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), db_->cf(kMetaCf)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      FF_ASSIGN_OR_RETURN(BlobInfo info, DecodeMeta(it->key().ToStringView(), it->value().ToStringView()));
      if (info.last_put_ms < cutoff_ms) candidates.push_back(it->key().ToString());
    }
    FF_RETURN_IF_ERROR(FromRocks(it->status(), "blob store: scan meta"));
  }
  // Pass 2: ask the caller, then delete under the id's lock after re-checking the age, so a
  // concurrent Put (which refreshes the time under the same lock) always wins.
  int64_t deleted = 0;
  rocksdb::WriteOptions write_options;
  write_options.sync = false;  // a lost deletion only delays reclamation; synced once below
  for (const std::string& id : candidates) {
    if (referenced && referenced(id)) continue;
    std::lock_guard<std::mutex> lock(locks_.For(id));
    std::string meta;
    rocksdb::Status s = db->Get(rocksdb::ReadOptions(), db_->cf(kMetaCf), id, &meta);
    if (s.IsNotFound()) continue;
    FF_RETURN_IF_ERROR(FromRocks(s, "blob store: gc read " + id));
    FF_ASSIGN_OR_RETURN(BlobInfo info, DecodeMeta(id, meta));
    if (info.last_put_ms >= cutoff_ms) continue;
    rocksdb::WriteBatch batch;
    FF_RETURN_IF_ERROR(FromRocks(batch.Delete(db_->cf(kContentCf), id), "blob store: batch"));
    FF_RETURN_IF_ERROR(FromRocks(batch.Delete(db_->cf(kMetaCf), id), "blob store: batch"));
    FF_RETURN_IF_ERROR(FromRocks(db->Write(write_options, &batch), "blob store: gc delete " + id));
    ++deleted;
    if (metrics_ != nullptr) metrics_->blob_gc_deleted.Increment();
  }
  if (deleted > 0 && options_.sync) FF_RETURN_IF_ERROR(FromRocks(db->SyncWAL(), "blob store: gc sync"));
  return deleted;
}

Result<BlobStoreStats> RocksBlobStore::Stats() {
  BlobStoreStats stats;
  std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions(), db_->cf(kMetaCf)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    FF_ASSIGN_OR_RETURN(BlobInfo info, DecodeMeta(it->key().ToStringView(), it->value().ToStringView()));
    ++stats.blobs;
    stats.content_bytes += info.size;
  }
  FF_RETURN_IF_ERROR(FromRocks(it->status(), "blob store: scan meta"));
  uint64_t blob_bytes = 0;
  if (db_->db()->GetIntProperty(db_->cf(kContentCf), "rocksdb.total-blob-file-size", &blob_bytes)) {
    stats.blob_file_bytes = blob_bytes;
  }
  return stats;
}

Status RocksBlobStore::Flush() {
  rocksdb::FlushOptions flush;
  flush.wait = true;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs = {db_->cf(kMetaCf), db_->cf(kContentCf)};
  return FromRocks(db_->db()->Flush(flush, cfs), "blob store: flush");
}

Status RocksBlobStore::Compact() {
  rocksdb::CompactRangeOptions compact;
  compact.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  FF_RETURN_IF_ERROR(FromRocks(db_->db()->CompactRange(compact, db_->cf(kMetaCf), nullptr, nullptr),
                               "blob store: compact meta"));
  return FromRocks(db_->db()->CompactRange(compact, db_->cf(kContentCf), nullptr, nullptr),
                   "blob store: compact blobs");
}

Status RocksBlobStore::OverwriteContentForTest(std::string_view id, std::string_view content) {
  rocksdb::WriteOptions write_options;
  write_options.sync = true;
  return FromRocks(db_->db()->Put(write_options, db_->cf(kContentCf), rocksdb::Slice(id.data(), id.size()),
                                  rocksdb::Slice(content.data(), content.size())),
                   "blob store: test overwrite");
}

}  // namespace faxflow
