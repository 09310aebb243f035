#include "workers/modem/fax_call.h"

#include <array>
#include <chrono>

#include "common/log.h"

namespace faxflow::modem {

Result<FaxCallResult> RunFaxCall(LineDriver& line, const CallRequest& request, const FaxCallOptions& options,
                                 Clock& clock, const FaxCallHooks& hooks) {
  static const auto logger = Logger("modem");
  FaxCallResult out;
  // Build the session before dialling: an invalid ident must not cost a call.
  TxSessionOptions tx;
  tx.tiff_path = options.tiff_path;
  tx.start_page = 0;
  tx.ident = options.ident;
  tx.header_info = options.header_info;
  tx.ecm = options.ecm;
  tx.modems = options.modems;
  tx.log_tag = options.log_tag;
  tx.on_page_confirmed = hooks.on_confirmed;
  FF_ASSIGN_OR_RETURN(auto session, FaxSession::NewTransmitter(tx));

  const auto wall_start = std::chrono::steady_clock::now();
  if (hooks.before_dial) FF_RETURN_IF_ERROR(hooks.before_dial());
  FF_ASSIGN_OR_RETURN(DialResult dial, line.Dial(request));
  out.setup = dial.setup;
  out.setup_detail = dial.detail;
  out.setup_ms = dial.setup_millis;
  if (dial.setup != CallSetup::kAnswered || !dial.call) {
    if (dial.setup == CallSetup::kAnswered) out.setup = CallSetup::kError;
    // A wait for the far end cut short by shutdown is not the far end's answer: resume later.
    if (hooks.should_abort && hooks.should_abort()) out.aborted = true;
    return out;
  }
  Call& call = *dial.call;
  if (T38Link* link = call.t38()) {
    // A T.38 call (t38 driver, sim T.38 far ends): T.30 runs on a t38_terminal instead of audio.
    if (Status st = session->UseT38(*link); !st.ok()) {
      call.Hangup();
      return st;
    }
  }
  const int64_t timeout_ms = static_cast<int64_t>(options.call_timeout_seconds * 1000.0);
  const double wall_cap =
      options.wall_timeout_seconds > 0 ? options.wall_timeout_seconds : options.call_timeout_seconds + 60.0;
  const auto wall_deadline = clock.Monotonic() + std::chrono::duration_cast<Clock::MonoTime::duration>(
                                                     std::chrono::duration<double>(wall_cap));
  std::array<int16_t, kFrameSamples> txbuf{};
  std::array<int16_t, kFrameSamples> rxbuf{};
  int64_t frames = 0;
  bool connected_reported = false;
  while (true) {
    session->Transmit(txbuf);
    if (Status ex = call.Exchange(txbuf, rxbuf); !ex.ok()) {
      // The line failed under the call: the same as a hang-up for T.30 and the classification.
      FF_LOG_WARN(logger, "line failed during job {} attempt {}: {}", request.job_id, request.attempt,
                  ex.ToString());
      out.far_end_hung_up = true;
      call.Hangup();
      session->Terminate();
      break;
    }
    session->Receive(rxbuf);
    ++frames;
    if (hooks.on_connected && !connected_reported && frames % 10 == 0 && session->PhaseBSeen()) {
      const TransferStats stats = session->Stats();
      if (stats.bit_rate > 0) {
        connected_reported = true;
        hooks.on_connected(session->RemoteIdent(), stats.bit_rate, stats.ecm);
      }
    }
    if (session->Finished()) break;
    if (call.Hungup()) {
      out.far_end_hung_up = true;
      session->Terminate();
      break;
    }
    const bool line_expired = call.LineMillis() >= timeout_ms;
    // Checking the clock every 50 frames (1 s of line) keeps the loop cheap.
    const bool second = frames % 50 == 0;
    const bool wall_expired = second && clock.Monotonic() >= wall_deadline;
    if (second && hooks.should_abort && hooks.should_abort()) {
      out.aborted = true;
      FF_LOG_WARN(logger, "call aborted (shutdown): job {} attempt {} after {} ms line time", request.job_id,
                  request.attempt, call.LineMillis());
      call.Hangup();
      session->Terminate();
      break;
    }
    if (line_expired || wall_expired) {
      out.watchdog = true;
      FF_LOG_WARN(logger, "call watchdog: job {} attempt {} torn down after {} ms line time{}",
                  request.job_id, request.attempt, call.LineMillis(),
                  wall_expired ? " (wall-clock cap)" : "");
      call.Hangup();
      session->Terminate();
      break;
    }
  }
  // Let the far end hear the end of our last frames (DCN) before hanging up.
  if (!out.watchdog && !out.aborted) {
    for (int i = 0; i < 100 && !call.Hungup(); ++i) {
      session->Transmit(txbuf);
      if (!call.Exchange(txbuf, rxbuf).ok()) break;
    }
  }
  out.line_ms = call.LineMillis();
  if (T38Link* link = call.t38()) out.t38 = link->Stats();
  call.Hangup();
  out.completion_code = session->CompletionCode();
  out.status_before_terminate = session->StatusBeforeTerminate();
  out.phase_b_seen = session->PhaseBSeen();
  out.pages_confirmed = session->PagesConfirmed();
  out.stats = session->Stats();
  out.remote_csid = session->RemoteIdent();
  out.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return out;
}

}  // namespace faxflow::modem
