// Retry policy of the modem worker: which attempt outcomes are retried, after how long, within
// which budget, and the line fallback (V.17 -> 9600 bps -> ECM off) after training failures.
//
// For ModemWorker (decides after every attempt) and its tests. Defaults follow HylaFAX
// (docs/modem.md, ../shared/notes/fax-systems.md): busy 180 s; no answer, dropped calls and
// other failures 300 s; T.30 protocol and training failures 60 s; at most 3 calls that connected
// (MaxTries) and 12 calls placed (MaxDials). Not retried: delivered, document errors,
// capability mismatches, not-a-fax answers (HylaFAX: "not a fax machine" stops the job),
// cancelled and expired jobs. Configured globally (modem.retry.* keys) and per job
// (OutboundJob.retry overrides, 0 = default).
//
// Pure functions and value types; thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "common/config.h"
#include "schemas/job.pb.h"
#include "workers/modem/outcome.h"

namespace faxflow::modem {

struct RetryPolicy {
  int64_t busy_seconds = 180;
  int64_t no_answer_seconds = 300;  // also not answered by a fax, dropped, internal, other
  int64_t protocol_seconds = 60;    // protocol errors and training failures
  int64_t other_seconds = 300;
  int32_t max_tries = 3;                   // calls that connected (the far end answered)
  int32_t max_dials = 12;                  // calls placed
  int32_t fallback_training_failures = 1;  // training failures per fallback step

  static RetryPolicy FromConfig(const Config& config);
  // This policy with the job's non-zero overrides applied.
  RetryPolicy WithOverrides(const v1::RetryOverrides& overrides) const;
};

// What the job has used so far (after the attempt being decided, i.e. counts include it).
struct RetryBudget {
  int32_t dials = 0;              // calls placed
  int32_t tries = 0;              // calls answered
  int32_t training_failures = 0;  // attempts that ended training_failed
};

struct RetryDecision {
  bool retry = false;
  int64_t delay_ms = 0;
  std::string why;  // for logs and event details: "busy: retry in 180 s", "max dials (12) reached"
};

// Whether the outcome's reason is worth another call at all, and the delay for it.
bool RetryableReason(v1::FailureReason reason);
int64_t RetryDelayMs(const RetryPolicy& policy, v1::FailureReason reason);

// Decides after an attempt that did not deliver every page. `answered`: this call connected.
RetryDecision DecideRetry(const RetryPolicy& policy, const Classification& outcome, bool answered,
                          const RetryBudget& budget);

// Line settings of an attempt. Step 0: every modem (V.17 up to 14400), ECM on; step 1: V.27ter
// and V.29 only (9600 bps at most), ECM on; step 2: 9600 bps and ECM off.
struct LinePlan {
  int step = 0;
  bool ecm = true;
  int modems = 0;                // ModemSupport bits
  std::string ToString() const;  // "v17+ecm", "9600+ecm", "9600-ecm"
};
inline constexpr int kMaxFallbackStep = 2;
LinePlan LinePlanForStep(int step);
// The step of the next attempt: the larger of what the destination needed before and the
// job's own training failures (one step per `fallback_training_failures`).
int FallbackStep(const RetryPolicy& policy, int32_t training_failures, int remembered_step);

}  // namespace faxflow::modem
