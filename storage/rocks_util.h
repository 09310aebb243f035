// Internal helpers shared by the RocksDB-backed stores in storage/: the RocksDB handle owner,
// the rocksdb::Status -> faxflow::Status mapping, fixed-width little-endian encoding and striped
// locks. Not part of the public storage API; other components use blob_store.h,
// dedup_store.h and the Rocks* headers.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/status.h>

#include "common/status.h"

namespace faxflow::storage_internal {

// Maps a RocksDB status to faxflow's vocabulary. `what` names the operation for the message.
//   Corruption -> kCorruption (fatal); NotFound -> kNotFound (permanent);
//   Busy/TryAgain -> kUnavailable (retryable); TimedOut -> kTimeout (retryable);
//   IOError with no space -> kResourceExhausted (retryable); other IOError -> kIoError (fatal:
//   RocksDB stops accepting writes after a failed WAL sync); InvalidArgument -> permanent;
//   anything else -> kInternal (fatal).
Status FromRocks(const rocksdb::Status& status, std::string_view what);

// Owns an open rocksdb::DB and its column family handles; closes both in the right order.
// Lifecycle: created by Open, destroyed with the store that owns it. Threading: the DB is
// thread-safe; the handle vector is immutable after Open.
class RocksDb {
 public:
  // Opens (creating the DB and any missing column families) at `path`. The returned handles
  // are in the order of `families`.
  static Result<std::unique_ptr<RocksDb>> Open(const std::string& path, const rocksdb::DBOptions& db_options,
                                               const std::vector<rocksdb::ColumnFamilyDescriptor>& families);
  ~RocksDb();
  RocksDb(const RocksDb&) = delete;
  RocksDb& operator=(const RocksDb&) = delete;

  rocksdb::DB* db() const { return db_.get(); }
  rocksdb::ColumnFamilyHandle* cf(size_t index) const { return handles_.at(index); }

 private:
  RocksDb() = default;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::string path_;
};

void AppendFixed32(std::string* out, uint32_t value);
void AppendFixed64(std::string* out, uint64_t value);
// Reads a fixed-width value at `*pos` and advances it; false when the input is too short.
bool ReadFixed32(std::string_view in, size_t* pos, uint32_t* value);
bool ReadFixed64(std::string_view in, size_t* pos, uint64_t* value);

// A fixed set of mutexes selected by key hash: operations on one key serialise, operations on
// different keys mostly do not (so concurrent synced writes can share an fsync).
class StripedMutex {
 public:
  std::mutex& For(std::string_view key) { return stripes_[std::hash<std::string_view>{}(key) % stripes_.size()]; }

 private:
  std::array<std::mutex, 64> stripes_;
};

}  // namespace faxflow::storage_internal
