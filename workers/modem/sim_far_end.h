// The virtual far end of the `sim` line: scripted behaviour per destination number.
//
// For the sim line driver (sim_line.h) and tests. A SimDirectory maps numbers to behaviours:
// built-in test numbers (docs/sim.md) plus the config key `sim.behaviours`
// ("+15551230001=busy;+15551230002=drop_after:2"). A SimFarEnd is the answering side of one
// simulated call: a SpanDSP receiver (answering fax_state_t) fed with the caller's audio, or a
// voice/silence generator, and it decides when to hang up.
//
// Behaviours: answer (default), busy, no_answer, voice, silence, drop_after:N, and the line
// conditions t38 / t38_loss:P (the call carries T.38 over an in-process UDPTL pipe losing P % of
// the datagrams each way), noise:L (AWGN at L dBm0 added to both audio directions),
// slow:9600 / slow:4800 (V.29+V.27ter / V.27ter only) and normal_only (standard resolution only:
// a fine page fails as capability_mismatch, T30_ERR_NORESSUPPORT), train_fail:v17 (a line that
// cannot carry V.17: in a call whose first DCS selects V.17, every training check (TCF) of the
// call fails, so SpanDSP's in-call fallback never rescues it and the call ends training_failed;
// a call that starts at 9600 or below trains) and train_fail:v17+ecm (also fails calls that use
// ECM: only 9600 without ECM gets through). The parser rejects unknown names.
//
// Threading: SimDirectory is immutable after Create (thread-safe reads). A SimFarEnd belongs to
// the thread of its call.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "workers/modem/fax_session.h"
#include "workers/modem/line_driver.h"

namespace faxflow::modem {

enum class FarEndKind {
  kAnswer,
  kBusy,
  kNoAnswer,
  kVoice,
  kSilence,
  kDropAfter,
  kT38,
  kNoise,
  kSlow,
  kNormalOnly,
  kTrainFail
};

struct FarEndBehaviour {
  FarEndKind kind = FarEndKind::kAnswer;
  int drop_after_pages = 0;      // kDropAfter: hang up right after confirming this page
  double t38_loss_percent = 0;   // kT38: datagrams lost each way
  double noise_dbm0 = 0;         // kNoise: AWGN level
  int max_bps = 0;               // kSlow: 9600 or 4800
  bool fail_ecm = false;         // kTrainFail: also fails calls that use ECM (train_fail:v17+ecm)
  std::string ToString() const;  // "answer", "drop_after:2", ...
  bool operator==(const FarEndBehaviour&) const = default;
};

// True for behaviours whose far end answers with a SpanDSP fax receiver.
bool IsFaxReceiver(FarEndKind kind);

// Parses one behaviour ("busy", "drop_after:3"); kInvalidArgument naming the problem.
Result<FarEndBehaviour> ParseBehaviour(std::string_view text);

// Digits of a number ("+1 555-010" -> "1555010"): the directory key and the folder name.
std::string NumberDigits(std::string_view number);

class SimDirectory {
 public:
  // Built-in numbers plus `config` ("number=behaviour;..."; empty entries ignored). Entries
  // in `config` override built-ins. Errors name the offending entry.
  static Result<SimDirectory> Create(std::string_view config);
  // Behaviour for a number (answer when not listed).
  FarEndBehaviour Lookup(std::string_view number) const;
  static const std::vector<std::pair<std::string, FarEndBehaviour>>& BuiltIn();

 private:
  std::map<std::string, FarEndBehaviour> by_digits_;
};

// Tunables of the simulated far end.
struct FarEndOptions {
  std::string ident = "FAXFLOW SIM";  // CSI
  int64_t voice_hangup_ms = 30'000;   // voice: the person hangs up after this long
  int64_t drop_linger_ms = 200;       // drop_after: hang up this long after the MCF ended
};

// The answering side of one call.
class SimFarEnd {
 public:
  // `rx_path`: where a fax far end writes received pages (ignored for voice/silence).
  static Result<std::unique_ptr<SimFarEnd>> Answer(const FarEndBehaviour& behaviour,
                                                   const std::string& rx_path, const FarEndOptions& options);
  // The same, for a call carrying T.38 (behaviour kT38): the far end's receiver runs a
  // t38_terminal on `t38` (which must outlive the far end).
  static Result<std::unique_ptr<SimFarEnd>> Answer(const FarEndBehaviour& behaviour,
                                                   const std::string& rx_path, const FarEndOptions& options,
                                                   T38Link* t38);
  ~SimFarEnd();
  SimFarEnd(const SimFarEnd&) = delete;
  SimFarEnd& operator=(const SimFarEnd&) = delete;

  // One 20 ms frame: consumes the caller's audio, produces the far end's.
  void Process(std::span<const int16_t, kFrameSamples> from_caller,
               std::span<int16_t, kFrameSamples> to_caller);
  bool HungUp() const { return hung_up_; }
  // The caller hung up (or the call ended): the far end closes its document.
  void Finish();
  int PagesReceived() const;
  // Completion of the far end's own T.30 session ("T30_ERR_OK", ...), or "voice"/"silence".
  std::string Completion() const;
  const std::string& ReceivedPath() const { return rx_path_; }
  // The far end's fax receiver (null for voice/silence): remote ident and statistics.
  const FaxSession* session() const { return fax_.get(); }

 private:
  SimFarEnd() = default;
  void HangUpNow();

  FarEndBehaviour behaviour_;
  FarEndOptions options_;
  std::string rx_path_;
  std::unique_ptr<FaxSession> fax_;
  int64_t line_ms_ = 0;
  bool hung_up_ = false;
  bool finished_ = false;
  int pages_at_finish_ = 0;
  // train_fail state: the call is doomed (its first DCS matched)
  bool train_doomed_ = false;
  bool first_dcs_seen_ = false;
  int64_t garble_from_ms_ = -1;  // the current TCF's zeros: noise added from..until
  int64_t garble_until_ms_ = -2;
  uint64_t noise_state_ = 0x9e3779b97f4a7c15ULL;
  // drop_after state
  bool drop_armed_ = false;       // MCF for the last page to accept is being sent
  bool mcf_audio_seen_ = false;   // its audio started
  int64_t silent_since_ms_ = -1;  // its audio ended at
  // voice generator state
  double phase_ = 0;
};

}  // namespace faxflow::modem
