// SpanDSP 0.0.6 fax sessions (T.30 over G.711-rate audio) with RAII ownership.
//
// For the modem worker's channels (transmitting side) and the simulated far end (receiving
// side). A FaxSession owns one `fax_state_t` configured as the notes prescribe: ECM on, T.6
// allowed, transmit-on-idle, TSI/CSI validated (<= 20 chars), SpanDSP logging routed to the
// "spandsp" spdlog logger at debug level (never to stderr). It records what a caller needs to
// classify the call: phase B seen (the far end is a fax machine), every page confirmed (phase D
// MCF/RTP, reported through a callback as it happens), the completion code (phase E), the
// remote ident and transfer statistics.
//
// Lifecycle: create with NewTransmitter/NewReceiver, then alternate Transmit()/Receive() per
// 20 ms frame until Finished(); if the line goes away first, call Terminate() (runs phase E
// synchronously). Threading: one thread per session (SpanDSP objects are not thread-safe).
// Callbacks run on that thread, inside Transmit/Receive/Terminate.
#pragma once

#include <spandsp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "common/status.h"
#include "workers/modem/line_driver.h"

namespace faxflow::modem {

struct FaxStateDeleter {
  void operator()(fax_state_t* s) const { fax_free(s); }
};
using FaxStatePtr = std::unique_ptr<fax_state_t, FaxStateDeleter>;

// Modem families a session may use (restrict for "slow" far ends).
enum ModemSupport : int {
  kModemV27ter = T30_SUPPORT_V27TER,  // 2400/4800
  kModemV29 = T30_SUPPORT_V29,        // 7200/9600
  kModemV17 = T30_SUPPORT_V17,        // 7200..14400
  kModemAll = static_cast<int>(T30_SUPPORT_V27TER) | static_cast<int>(T30_SUPPORT_V29) |
              static_cast<int>(T30_SUPPORT_V17),
};

struct TxSessionOptions {
  std::string tiff_path;    // multi-page TIFF to send
  int start_page = 0;       // 0-based first page of the file to send (resume)
  std::string ident;        // TSI, <= 20 characters (T30_MAX_IDENT_LEN)
  std::string header_info;  // page header text; empty = no header line
  bool ecm = true;
  int modems = kModemAll;
  // Resolutions we may send (T30_SUPPORT_*_RESOLUTION bits); 0 = SpanDSP's default (all).
  int resolutions = 0;
  std::string log_tag = "tx";
  // Called when the far end confirms a page (MCF/RTP). `page` counts pages of this session,
  // starting at 1 for the first page sent.
  std::function<void(int page)> on_page_confirmed;
};

struct RxSessionOptions {
  std::string tiff_path;  // where received pages are written (deleted by SpanDSP if none)
  std::string ident;      // CSI
  bool ecm = true;
  int modems = kModemAll;
  // Resolutions we accept (T30_SUPPORT_*_RESOLUTION bits); 0 = SpanDSP's default (all). A
  // "normal only" far end sets T30_SUPPORT_STANDARD_RESOLUTION.
  int resolutions = 0;
  std::string log_tag = "rx";
  // Called for every T.30 control frame: `sent` true for frames we send; `fcf` with the
  // final-frame bit cleared (e.g. T30_MCF); `frame` the whole frame (address, control, FCF,
  // FIF: a DCS's FIF starts at frame[3]).
  std::function<void(bool sent, int fcf, std::span<const uint8_t> frame)> on_frame;
};

struct TransferStats {
  int bit_rate = 0;
  bool ecm = false;
  int pages_tx = 0;
  int pages_rx = 0;
  int pages_in_file = 0;
  int bad_rows = 0;
  int current_status = 0;
};

class FaxSession {
 public:
  static Result<std::unique_ptr<FaxSession>> NewTransmitter(const TxSessionOptions& options);
  static Result<std::unique_ptr<FaxSession>> NewReceiver(const RxSessionOptions& options);
  ~FaxSession();
  FaxSession(const FaxSession&) = delete;
  FaxSession& operator=(const FaxSession&) = delete;

  // Generates the next frame of our audio (always a full frame: silence-padded).
  void Transmit(std::span<int16_t, kFrameSamples> out);
  // Feeds a frame of far-end audio (copied: SpanDSP modifies its input) and runs the timers.
  void Receive(std::span<const int16_t, kFrameSamples> in);
  // The line went away: ends T.30 (phase E runs now) unless it already finished.
  void Terminate();

  // Switches the session to T.38 (a SpanDSP t38_terminal with the same T.30 configuration)
  // for a call that carries T.38 (Call::t38()). Call it once, after dialling and before the
  // first Transmit/Receive; `link` must outlive the session's use. From then on Transmit()
  // runs the terminal's 20 ms timer and emits IFP packets through the link (the audio frame
  // is silence) and Receive() ignores the audio and feeds the IFP packets the link received.
  Status UseT38(T38Link& link);
  bool IsT38() const { return t38_ != nullptr; }

  bool Finished() const { return finished_; }
  bool PhaseBSeen() const { return phase_b_seen_; }
  int CompletionCode() const { return completion_code_; }
  int PagesConfirmed() const { return pages_confirmed_; }
  // Status SpanDSP held just before Terminate() overwrote it (CALLDROPPED), for diagnostics.
  int StatusBeforeTerminate() const { return status_before_terminate_; }
  std::string RemoteIdent() const;
  TransferStats Stats() const;

 private:
  FaxSession() = default;
  static int OnPhaseB(t30_state_t* s, void* user_data, int result);
  static int OnPhaseD(t30_state_t* s, void* user_data, int result);
  static void OnPhaseE(t30_state_t* s, void* user_data, int completion_code);
  static void OnFrame(t30_state_t* s, void* user_data, int direction, const uint8_t msg[], int len);
  void ConfigureLogging(const std::string& tag);

  std::string log_tag_;
  FaxStatePtr fax_;
  t30_state_t* t30_ = nullptr;
  bool transmitter_ = false;
  bool finished_ = false;
  bool phase_b_seen_ = false;
  int completion_code_ = -1;
  int pages_confirmed_ = 0;
  int status_before_terminate_ = 0;
  std::function<void(int)> on_page_confirmed_;
  std::function<void(bool, int, std::span<const uint8_t>)> on_frame_;

  // T.38 mode (UseT38).
  struct T38TerminalDeleter {
    void operator()(t38_terminal_state_t* s) const { t38_terminal_free(s); }
  };
  static int OnT38Packet(t38_core_state_t* s, void* user_data, const uint8_t* buf, int len, int count);
  std::unique_ptr<TxSessionOptions> tx_options_;  // kept for UseT38
  std::unique_ptr<RxSessionOptions> rx_options_;
  std::unique_ptr<t38_terminal_state_t, T38TerminalDeleter> t38_;
  T38Link* t38_link_ = nullptr;
  std::string t38_log_tag_;
};

// Validates a TSI/CSI: at most 20 characters, printable ASCII digits, '+' and space are what
// T.30 defines, anything printable is accepted.
Status ValidateIdent(const std::string& ident);

}  // namespace faxflow::modem
