// The modem stage's durable dial ledger: the reason a crash never sends a fax twice.
//
// For every outbound job it records which attempts (calls) were started, which pages the far
// end confirmed, and whether the job reached a terminal state. Every mutation is synced to disk
// before it returns, and BeginAttempt is written *before* dialling. A redelivered job is checked
// against the ledger:
//   - terminal           -> not dialled again (counted as a suppressed duplicate);
//   - attempt N started but not finished (a crash mid-call) -> attempt N is closed as
//     interrupted and attempt N+1 resumes at the first unconfirmed page;
//   - nothing recorded   -> dial attempt 1.
// BeginAttempt(job, n) fails with kAlreadyExists when that attempt was already begun: two
// workers racing on one redelivered job cannot both dial (the store serialises them).
//
// Threading: thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace faxflow {

struct JobLedger {
  std::string job_id;
  int32_t attempts_begun = 0;       // highest attempt number begun (0: never dialled)
  int32_t attempts_finished = 0;    // highest attempt number finished (closed)
  int32_t pages_confirmed = 0;      // contiguous pages 1..n confirmed, over all attempts
  int32_t pages_total = 0;
  bool terminal = false;
  int32_t terminal_state = 0;       // faxflow.v1.RecipientState when terminal
  int32_t terminal_reason = 0;      // faxflow.v1.FailureReason when terminal
  int32_t duplicates_suppressed = 0;
  int64_t updated_at_ms = 0;
};

class DedupStore {
 public:
  virtual ~DedupStore() = default;
  virtual Result<std::optional<JobLedger>> Get(const std::string& job_id) = 0;
  // Records attempt `attempt` as begun (synced). kAlreadyExists if it was begun before, or if
  // the job is terminal (the ledger in the error message).
  virtual Status BeginAttempt(const std::string& job_id, int32_t attempt, int32_t pages_total, int64_t now_ms) = 0;
  // Records that the far end confirmed `page` (1-based, within the whole fax). Synced.
  virtual Status ConfirmPage(const std::string& job_id, int32_t attempt, int32_t page, int64_t now_ms) = 0;
  // Closes an attempt; when `terminal`, the job is done and never dialled again.
  virtual Status FinishAttempt(const std::string& job_id, int32_t attempt, bool terminal, int32_t state,
                               int32_t reason, int64_t now_ms) = 0;
  // Counts one suppressed redelivery of the job; returns the job's new count.
  virtual Result<int32_t> CountSuppressed(const std::string& job_id) = 0;
};

Result<std::unique_ptr<DedupStore>> OpenRocksDedupStore(const std::string& path);

}  // namespace faxflow
