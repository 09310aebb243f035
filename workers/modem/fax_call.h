// One fax call over a line driver: dial, run the T.30 transmitter over the call's audio until
// phase E, the far end hanging up, or the watchdog (line-time limit + wall-clock cap).
//
// For Channel (which prepares the document and records results) and for tests/benchmarks that
// want a call without the blob store. Threading: runs entirely on the calling thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "workers/modem/fax_session.h"
#include "workers/modem/line_driver.h"

namespace faxflow::modem {

struct FaxCallOptions {
  std::string tiff_path;    // multi-page TIFF, sent from its first page
  std::string ident;        // TSI (<= 20 chars)
  std::string header_info;  // page header; empty = none
  bool ecm = true;
  int modems = kModemAll;
  double call_timeout_seconds = 900;  // watchdog in line time (from answer)
  double wall_timeout_seconds = 0;    // wall-clock cap via Clock::Monotonic; 0 = call_timeout + 60 s
  std::string log_tag = "tx";
};

struct FaxCallResult {
  CallSetup setup = CallSetup::kError;
  std::string setup_detail;
  int64_t setup_ms = 0;      // line time before answer (ringing/busy)
  int64_t line_ms = 0;       // line time of the answered call
  int completion_code = -1;  // T30_ERR_*, -1 when not answered
  int status_before_terminate = 0;
  bool phase_b_seen = false;
  bool watchdog = false;
  bool aborted = false;  // torn down by should_abort (shutdown)
  bool far_end_hung_up = false;
  int pages_confirmed = 0;  // pages of this call confirmed (1..n of the file)
  TransferStats stats;
  std::string remote_csid;
  double wall_seconds = 0;
  std::optional<T38CallStats> t38;  // set for a call that carried T.38
};

struct FaxCallHooks {
  // Runs after the session is set up and right before dialling; an error aborts the call
  // before anything is dialled and is returned (the worker writes its dial ledger here).
  std::function<Status()> before_dial;
  // Page n of the file (1-based) was confirmed by the far end; called as it happens.
  std::function<void(int page)> on_confirmed;
  // Polled once per second of line time: true tears the call down (shutdown).
  std::function<bool()> should_abort;
  // T.30 phase B is done and a bit rate negotiated: called once per call, on the call's thread.
  std::function<void(const std::string& remote_csid, int bit_rate, bool ecm)> on_connected;
};

Result<FaxCallResult> RunFaxCall(LineDriver& line, const CallRequest& request, const FaxCallOptions& options,
                                 Clock& clock, const FaxCallHooks& hooks);

}  // namespace faxflow::modem
