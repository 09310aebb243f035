// RocksDedupStore: the RocksDB implementation of the modem's durable dial ledger
// (dedup_store.h). Use OpenRocksDedupStore() for the interface, or this class to pass metrics.
// Ledger rules and layout: docs/storage.md ("Dedup ledger").
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "storage/dedup_store.h"
#include "storage/ledger_codec.h"
#include "storage/metrics.h"
#include "storage/rocks_util.h"

namespace faxflow {

// One RocksDB instance, column family "ledger": job id -> encoded ledger (ledger_codec.h).
// Every mutation is a read-modify-write under the job's (striped) mutex and is written with
// WriteOptions.sync = true, so once a call returns OK the record survives kill -9 and power
// loss. Rules beyond dedup_store.h:
//   - BeginAttempt: attempt >= 1; any attempt above attempts_begun is accepted (callers should
//     use attempts_begun + 1); pages_total > 0 updates the job's page count.
//   - ConfirmPage: the attempt must have been begun (kFailedPrecondition otherwise, e.g. a
//     confirmation for an unknown job is kNotFound); a page at or below pages_confirmed, or
//     already recorded, is a no-op; a page above pages_confirmed + 1 is remembered and the
//     contiguous count catches up when the gap is confirmed; page > pages_total (when known)
//     is kInvalidArgument.
//   - FinishAttempt: the attempt must have been begun, except attempt 0 with terminal = true,
//     which marks a job terminal that was never dialled (cancelled/expired before dialling).
//     The first terminal outcome wins: repeating it is OK, a different one is kAlreadyExists.
//   - CountSuppressed: kNotFound for a job with no ledger.
// Refusals are permanent (retrying gives the same answer); storage failures keep RocksDB's
// severity (see storage_internal::FromRocks).
//
// Lifecycle: Open, use from any thread, destroy. One process per path (RocksDB LOCK file).
// Threading: thread-safe; operations on different jobs proceed in parallel and share fsyncs.
class RocksDedupStore final : public DedupStore {
 public:
  static Result<std::unique_ptr<RocksDedupStore>> Open(const std::string& path, StorageMetrics* metrics = nullptr);
  ~RocksDedupStore() override;

  Result<std::optional<JobLedger>> Get(const std::string& job_id) override;
  Status BeginAttempt(const std::string& job_id, int32_t attempt, int32_t pages_total, int64_t now_ms) override;
  Status ConfirmPage(const std::string& job_id, int32_t attempt, int32_t page, int64_t now_ms) override;
  Status FinishAttempt(const std::string& job_id, int32_t attempt, bool terminal, int32_t state, int32_t reason,
                       int64_t now_ms) override;
  Result<int32_t> CountSuppressed(const std::string& job_id) override;

 private:
  RocksDedupStore(std::unique_ptr<storage_internal::RocksDb> db, StorageMetrics* metrics);
  Result<std::optional<storage_internal::StoredLedger>> Load(const std::string& job_id);
  Status Store(const storage_internal::StoredLedger& stored);
  Status BeginLocked(const std::string& job_id, int32_t attempt, int32_t pages_total, int64_t now_ms);
  Status ConfirmLocked(const std::string& job_id, int32_t attempt, int32_t page, int64_t now_ms);
  Status FinishLocked(const std::string& job_id, int32_t attempt, bool terminal, int32_t state, int32_t reason,
                      int64_t now_ms);
  Result<int32_t> SuppressLocked(const std::string& job_id);

  std::unique_ptr<storage_internal::RocksDb> db_;
  StorageMetrics* metrics_;
  storage_internal::StripedMutex locks_;
};

}  // namespace faxflow
