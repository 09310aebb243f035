#include "storage/rocks_util.h"

#include "common/log.h"

namespace faxflow::storage_internal {

Status FromRocks(const rocksdb::Status& status, std::string_view what) {
  if (status.ok()) return Status::Ok();
  std::string message = std::string(what) + ": " + status.ToString();
  if (status.IsCorruption()) return Status::Fatal(Code::kCorruption, std::move(message));
  if (status.IsNotFound()) return Status::Permanent(Code::kNotFound, std::move(message));
  if (status.IsBusy() || status.IsTryAgain()) return Status::Retryable(Code::kUnavailable, std::move(message));
  if (status.IsTimedOut()) return Status::Retryable(Code::kTimeout, std::move(message));
  if (status.IsNoSpace()) return Status::Retryable(Code::kResourceExhausted, std::move(message));
  if (status.IsIOError()) return Status::Fatal(Code::kIoError, std::move(message));
  if (status.IsInvalidArgument()) return Status::Permanent(Code::kInvalidArgument, std::move(message));
  return Status::Fatal(Code::kInternal, std::move(message));
}

Result<std::unique_ptr<RocksDb>> RocksDb::Open(const std::string& path, const rocksdb::DBOptions& db_options,
                                               const std::vector<rocksdb::ColumnFamilyDescriptor>& families) {
  std::unique_ptr<RocksDb> out(new RocksDb());
  out->path_ = path;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, path, families, &out->handles_, &raw);
  if (!s.ok()) return FromRocks(s, "open RocksDB at " + path);
  out->db_.reset(raw);
  return out;
}

RocksDb::~RocksDb() {
  if (!db_) return;
  for (rocksdb::ColumnFamilyHandle* handle : handles_) {
    rocksdb::Status s = db_->DestroyColumnFamilyHandle(handle);
    if (!s.ok()) FF_LOG_WARN(Logger("storage"), "destroying a column family handle of {}: {}", path_, s.ToString());
  }
  handles_.clear();
  rocksdb::Status s = db_->Close();
  if (!s.ok()) FF_LOG_WARN(Logger("storage"), "closing RocksDB at {}: {}", path_, s.ToString());
  db_.reset();
}

void AppendFixed32(std::string* out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

void AppendFixed64(std::string* out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

bool ReadFixed32(std::string_view in, size_t* pos, uint32_t* value) {
  if (in.size() < *pos + 4) return false;
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(in[*pos + i])) << (8 * i);
  *pos += 4;
  *value = v;
  return true;
}

bool ReadFixed64(std::string_view in, size_t* pos, uint64_t* value) {
  if (in.size() < *pos + 8) return false;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(in[*pos + i])) << (8 * i);
  *pos += 8;
  *value = v;
  return true;
}

}  // namespace faxflow::storage_internal
