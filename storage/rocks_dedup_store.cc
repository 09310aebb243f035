#include "storage/rocks_dedup_store.h"

#include <algorithm>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>

namespace faxflow {
namespace {

using storage_internal::DescribeLedger;
using storage_internal::FromRocks;
using storage_internal::StoredLedger;

constexpr size_t kLedgerCf = 1;  // handle index; "default" (0) holds nothing
constexpr size_t kMaxJobIdBytes = 1024;
constexpr size_t kMaxPendingPages = 10000;

Status CheckJobId(const std::string& job_id) {
  if (job_id.empty()) return Status::Permanent(Code::kInvalidArgument, "dedup ledger: empty job id");
  if (job_id.size() > kMaxJobIdBytes) {
    return Status::Permanent(Code::kInvalidArgument, "dedup ledger: job id longer than 1024 bytes");
  }
  return Status::Ok();
}

template <typename T>
void Count(const StorageMetrics::DedupOp* op, const T& result) {
  if (op == nullptr) return;
  const Status& status = [&]() -> const Status& {
    if constexpr (std::is_same_v<T, Status>) {
      return result;
    } else {
      return result.status();
    }
  }();
  if (status.ok()) {
    op->ok->Increment();
  } else if (status.permanent()) {
    op->refused->Increment();
  } else {
    op->error->Increment();
  }
}

}  // namespace

Result<std::unique_ptr<RocksDedupStore>> RocksDedupStore::Open(const std::string& path, StorageMetrics* metrics) {
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.keep_log_file_num = 5;
  rocksdb::ColumnFamilyOptions ledger_options;
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  ledger_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {"ledger", ledger_options},
  };
  FF_ASSIGN_OR_RETURN(auto db, storage_internal::RocksDb::Open(path, db_options, families));
  return std::unique_ptr<RocksDedupStore>(new RocksDedupStore(std::move(db), metrics));
}

RocksDedupStore::RocksDedupStore(std::unique_ptr<storage_internal::RocksDb> db, StorageMetrics* metrics)
    : db_(std::move(db)), metrics_(metrics) {}

RocksDedupStore::~RocksDedupStore() = default;

Result<std::optional<StoredLedger>> RocksDedupStore::Load(const std::string& job_id) {
  std::string value;
  rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), db_->cf(kLedgerCf), job_id, &value);
  if (s.IsNotFound()) return std::optional<StoredLedger>();
  FF_RETURN_IF_ERROR(FromRocks(s, "dedup ledger: read job " + job_id));
  FF_ASSIGN_OR_RETURN(StoredLedger stored, storage_internal::DecodeLedger(job_id, value));
  return std::optional<StoredLedger>(std::move(stored));
}

Status RocksDedupStore::Store(const StoredLedger& stored) {
  rocksdb::WriteOptions write_options;
  write_options.sync = true;
  return FromRocks(db_->db()->Put(write_options, db_->cf(kLedgerCf), stored.ledger.job_id,
                                  storage_internal::EncodeLedger(stored)),
                   "dedup ledger: write job " + stored.ledger.job_id);
}

Result<std::optional<JobLedger>> RocksDedupStore::Get(const std::string& job_id) {
  FF_RETURN_IF_ERROR(CheckJobId(job_id));
  FF_ASSIGN_OR_RETURN(std::optional<StoredLedger> stored, Load(job_id));
  if (!stored) return std::optional<JobLedger>();
  return std::optional<JobLedger>(std::move(stored->ledger));
}

Status RocksDedupStore::BeginAttempt(const std::string& job_id, int32_t attempt, int32_t pages_total,
                                     int64_t now_ms) {
  Status status = [&] {
    FF_RETURN_IF_ERROR(CheckJobId(job_id));
    std::lock_guard<std::mutex> lock(locks_.For(job_id));
    return BeginLocked(job_id, attempt, pages_total, now_ms);
  }();
  Count(metrics_ ? &metrics_->dedup_begin : nullptr, status);
  return status;
}

Status RocksDedupStore::BeginLocked(const std::string& job_id, int32_t attempt, int32_t pages_total,
                                    int64_t now_ms) {
  if (attempt < 1) {
    return Status::Permanent(Code::kInvalidArgument, "dedup ledger: attempt numbers start at 1, got " +
                                                         std::to_string(attempt));
  }
  if (pages_total < 0) return Status::Permanent(Code::kInvalidArgument, "dedup ledger: negative pages_total");
  FF_ASSIGN_OR_RETURN(std::optional<StoredLedger> loaded, Load(job_id));
  StoredLedger stored;
  if (loaded) {
    stored = std::move(*loaded);
    if (stored.ledger.terminal) {
      return Status::Permanent(Code::kAlreadyExists,
                               "job is terminal, not dialling again: " + DescribeLedger(stored.ledger));
    }
    if (attempt <= stored.ledger.attempts_begun) {
      return Status::Permanent(Code::kAlreadyExists, "attempt " + std::to_string(attempt) +
                                                         " was already begun: " + DescribeLedger(stored.ledger));
    }
  } else {
    stored.ledger.job_id = job_id;
  }
  if (pages_total > 0) {
    if (pages_total < stored.ledger.pages_confirmed) {
      return Status::Permanent(Code::kInvalidArgument, "pages_total " + std::to_string(pages_total) +
                                                           " is below the pages already confirmed: " +
                                                           DescribeLedger(stored.ledger));
    }
    stored.ledger.pages_total = pages_total;
  }
  stored.ledger.attempts_begun = attempt;
  stored.ledger.updated_at_ms = now_ms;
  return Store(stored);
}

Status RocksDedupStore::ConfirmPage(const std::string& job_id, int32_t attempt, int32_t page, int64_t now_ms) {
  Status status = [&] {
    FF_RETURN_IF_ERROR(CheckJobId(job_id));
    std::lock_guard<std::mutex> lock(locks_.For(job_id));
    return ConfirmLocked(job_id, attempt, page, now_ms);
  }();
  Count(metrics_ ? &metrics_->dedup_confirm : nullptr, status);
  return status;
}

Status RocksDedupStore::ConfirmLocked(const std::string& job_id, int32_t attempt, int32_t page, int64_t now_ms) {
  if (page < 1) return Status::Permanent(Code::kInvalidArgument, "dedup ledger: pages are 1-based");
  if (attempt < 1) return Status::Permanent(Code::kInvalidArgument, "dedup ledger: attempt numbers start at 1");
  FF_ASSIGN_OR_RETURN(std::optional<StoredLedger> loaded, Load(job_id));
  if (!loaded) return Status::Permanent(Code::kNotFound, "dedup ledger: no ledger for job " + job_id);
  StoredLedger& stored = *loaded;
  JobLedger& l = stored.ledger;
  if (attempt > l.attempts_begun) {
    return Status::Permanent(Code::kFailedPrecondition, "page confirmed for attempt " + std::to_string(attempt) +
                                                            " which was never begun: " + DescribeLedger(l));
  }
  if (l.pages_total > 0 && page > l.pages_total) {
    return Status::Permanent(Code::kInvalidArgument, "page " + std::to_string(page) + " beyond the fax's " +
                                                         std::to_string(l.pages_total) + " pages");
  }
  if (page <= l.pages_confirmed) return Status::Ok();  // duplicate confirmation: nothing to record
  std::vector<int32_t>& pending = stored.pages_pending;
  if (page == l.pages_confirmed + 1) {
    l.pages_confirmed = page;
    // Absorb pages confirmed earlier out of order that are now contiguous.
    auto it = pending.begin();
    while (it != pending.end() && *it == l.pages_confirmed + 1) {
      l.pages_confirmed = *it;
      ++it;
    }
    pending.erase(pending.begin(), it);
  } else {
    auto it = std::lower_bound(pending.begin(), pending.end(), page);
    if (it != pending.end() && *it == page) return Status::Ok();  // duplicate out-of-order confirmation
    if (pending.size() >= kMaxPendingPages) {
      return Status::Permanent(Code::kResourceExhausted, "too many out-of-order page confirmations: " +
                                                             DescribeLedger(l));
    }
    pending.insert(it, page);
  }
  l.updated_at_ms = now_ms;
  return Store(stored);
}

Status RocksDedupStore::FinishAttempt(const std::string& job_id, int32_t attempt, bool terminal, int32_t state,
                                      int32_t reason, int64_t now_ms) {
  Status status = [&] {
    FF_RETURN_IF_ERROR(CheckJobId(job_id));
    std::lock_guard<std::mutex> lock(locks_.For(job_id));
    return FinishLocked(job_id, attempt, terminal, state, reason, now_ms);
  }();
  Count(metrics_ ? &metrics_->dedup_finish : nullptr, status);
  return status;
}

Status RocksDedupStore::FinishLocked(const std::string& job_id, int32_t attempt, bool terminal, int32_t state,
                                     int32_t reason, int64_t now_ms) {
  if (attempt < 0 || (attempt == 0 && !terminal)) {
    return Status::Permanent(Code::kInvalidArgument,
                             "dedup ledger: attempt must be >= 1 (or 0 to mark an undialled job terminal)");
  }
  FF_ASSIGN_OR_RETURN(std::optional<StoredLedger> loaded, Load(job_id));
  StoredLedger stored;
  if (loaded) {
    stored = std::move(*loaded);
  } else if (attempt == 0) {
    stored.ledger.job_id = job_id;
  } else {
    return Status::Permanent(Code::kNotFound, "dedup ledger: no ledger for job " + job_id);
  }
  JobLedger& l = stored.ledger;
  if (attempt > l.attempts_begun) {
    return Status::Permanent(Code::kFailedPrecondition, "finishing attempt " + std::to_string(attempt) +
                                                            " which was never begun: " + DescribeLedger(l));
  }
  if (terminal && l.terminal && (l.terminal_state != state || l.terminal_reason != reason)) {
    return Status::Permanent(Code::kAlreadyExists, "job already has a different terminal outcome: " +
                                                       DescribeLedger(l));
  }
  const bool changed = !loaded || attempt > l.attempts_finished || (terminal && !l.terminal);
  if (!changed) return Status::Ok();  // repeated finish: already recorded
  l.attempts_finished = std::max(l.attempts_finished, attempt);
  if (terminal && !l.terminal) {
    l.terminal = true;
    l.terminal_state = state;
    l.terminal_reason = reason;
  }
  l.updated_at_ms = now_ms;
  return Store(stored);
}

Result<int32_t> RocksDedupStore::CountSuppressed(const std::string& job_id) {
  Result<int32_t> result = [&]() -> Result<int32_t> {
    FF_RETURN_IF_ERROR(CheckJobId(job_id));
    std::lock_guard<std::mutex> lock(locks_.For(job_id));
    return SuppressLocked(job_id);
  }();
  Count(metrics_ ? &metrics_->dedup_suppress : nullptr, result);
  return result;
}

Result<int32_t> RocksDedupStore::SuppressLocked(const std::string& job_id) {
  FF_ASSIGN_OR_RETURN(std::optional<StoredLedger> loaded, Load(job_id));
  if (!loaded) return Status::Permanent(Code::kNotFound, "dedup ledger: no ledger for job " + job_id);
  ++loaded->ledger.duplicates_suppressed;
  FF_RETURN_IF_ERROR(Store(*loaded));
  return loaded->ledger.duplicates_suppressed;
}

Result<std::unique_ptr<DedupStore>> OpenRocksDedupStore(const std::string& path) {
  FF_ASSIGN_OR_RETURN(std::unique_ptr<RocksDedupStore> store, RocksDedupStore::Open(path));
  return std::unique_ptr<DedupStore>(std::move(store));
}

}  // namespace faxflow
