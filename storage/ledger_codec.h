// Internal: the on-disk encoding of one job's dial ledger (the value under the job id in the
// dedup store's "ledger" column family). Fixed little-endian layout, version byte first:
//   v1: [u8 1][i32 attempts_begun][i32 attempts_finished][i32 pages_confirmed][i32 pages_total]
//       [u8 flags: bit0 terminal][i32 terminal_state][i32 terminal_reason]
//       [i32 duplicates_suppressed][i64 updated_at_ms][u32 n][n x i32 pages confirmed above the
//       contiguous run, ascending]
// The job id is the key and is not repeated in the value. A new field means a new version byte;
// decoders keep reading every older version.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "storage/dedup_store.h"

namespace faxflow::storage_internal {

struct StoredLedger {
  JobLedger ledger;
  // Pages the far end confirmed out of order, above ledger.pages_confirmed (kept so that the
  // contiguous count catches up when the gap is filled). Ascending, no duplicates.
  std::vector<int32_t> pages_pending;
};

std::string EncodeLedger(const StoredLedger& stored);
// kCorruption (fatal) when `bytes` is not a valid encoding.
Result<StoredLedger> DecodeLedger(std::string_view job_id, std::string_view bytes);

// One-line human summary for error messages and logs.
std::string DescribeLedger(const JobLedger& ledger);

}  // namespace faxflow::storage_internal
