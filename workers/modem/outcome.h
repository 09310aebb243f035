// Classification of one fax call into the per-recipient delivery vocabulary.
//
// For the modem worker (and the status/notifier stages that read its events): turns what the
// line reported (call setup: busy, no answer, ...) and what SpanDSP reported (the T.30
// completion code, pages confirmed by the far end, whether phase B was reached, whether our
// watchdog tore the call down) into a faxflow::v1::RecipientState + FailureReason.
//
// Rules (docs/sim.md has the table):
//   - delivered  = T30_ERR_OK and every page of the fax confirmed (over all attempts);
//   - T30_ERR_OK with fewer pages confirmed -> partial (reason dropped);
//   - busy / no answer / rejected from call setup -> failed + busy / no_answer / not_a_fax;
//   - T0_EXPIRED, TX_NODIS, TX_GOTDCN, CEDTONE -> not_a_fax;
//   - CANNOT_TRAIN, TX_BADDCS, TX_PHBDEAD, HDLC_CARRIER, T1_EXPIRED -> training_failed;
//   - INCOMPATIBLE, RX/TX_INCAPABLE, NORESSUPPORT, NOSIZESUPPORT, *_UNACCEPTABLE -> capability_mismatch;
//   - drops (TX_PHDDEAD, TX_BADPG, TX_INVALRSP, TX_ECMPHD, TX_T5EXP, RETRYDCN, CALLDROPPED,
//     UNEXPECTED) and the watchdog -> partial+dropped if any page confirmed, else failed+dropped;
//     a call the far end hung up before any T.30 handshake (no DIS ever seen) is not_a_fax;
//   - FILEERROR..NOMEM -> failed + document_error;
//   - anything else -> failed + protocol_error.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "schemas/common.pb.h"
#include "workers/modem/line_driver.h"

namespace faxflow::modem {

// Stable name of a SpanDSP 0.0.6 completion code, e.g. "T30_ERR_OK"; "T30_ERR_<n>" if unknown.
std::string CompletionCodeName(int code);
// SpanDSP's own description (t30_completion_code_to_str).
std::string CompletionCodeText(int code);

struct CallFacts {
  CallSetup setup = CallSetup::kAnswered;
  int completion_code = 0;      // T30_ERR_*, meaningful when answered
  bool phase_b_seen = false;    // the far end sent DIS (it is a fax machine)
  bool watchdog = false;        // our watchdog tore the call down
  int32_t pages_confirmed = 0;  // contiguous pages 1..n confirmed over all attempts
  int32_t pages_total = 0;
};

struct Classification {
  v1::RecipientState state = v1::STATE_UNSPECIFIED;
  v1::FailureReason reason = v1::REASON_UNSPECIFIED;
  std::string detail;  // human-readable
};

Classification Classify(const CallFacts& facts);

// The one place that decides whether an attempt's outcome ends the job. For now every outcome
// is terminal (no retry scheduling yet); a later issue grows this (busy/no answer/training ->
// retry later within the retry budget).
bool IsTerminal(const Classification& c, int32_t attempt);

std::string_view CallSetupName(CallSetup setup);

}  // namespace faxflow::modem
