// The seam between a modem channel and the telephone line.
//
// A LineDriver places calls; an answered call is a Call that carries G.711-rate audio (8 kHz,
// 16-bit linear) in 20 ms frames of 160 samples. Line time advances by one frame per
// Exchange(), so a simulated line runs as fast as the CPU allows and is deterministic
// (independent of wall time); a real line (t38, sip: later) paces itself in real time. The
// channel drives the SpanDSP session from the frames, whatever the driver.
//
// For whom: workers/modem (Channel) and the line drivers (sim now; t38 and sip later).
//
// Threading: a LineDriver is thread-safe (channels dial concurrently). A Call is used by one
// thread (its channel) from Dial to destruction.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace faxflow::modem {

inline constexpr int kSampleRate = 8000;
inline constexpr int kFrameSamples = 160;  // 20 ms
inline constexpr int64_t kFrameMillis = 20;

// One job's pages in a call that carries several documents (CallRequest::documents).
struct CallDocumentInfo {
  std::string job_id;
  int32_t attempt = 1;
  int32_t first_page = 1;  // 1-based page of that job the call starts at
  int32_t pages = 0;       // pages of that job in this call (consecutive after the previous ones)
};

struct CallRequest {
  std::string number;  // E.164 destination
  // Metadata for the simulated/test far end (which file to write, the call log); real drivers
  // use it only for logs.
  std::string job_id;
  int32_t attempt = 1;
  int32_t first_page = 1;   // 1-based page of the fax this call starts at
  int32_t pages_total = 0;  // pages of the whole fax
  // Set when the call carries several jobs' documents (job_id/attempt are the first one's).
  std::vector<CallDocumentInfo> documents;
  // True once the worker is shutting down: a driver waiting for the far end (ringing, a
  // simulated busy tone) gives up early instead of holding Stop() for the whole wait. Optional.
  std::function<bool()> should_abort;
};

enum class CallSetup { kAnswered, kBusy, kNoAnswer, kRejected, kError };

// The packet side of a call that carries T.38 instead of audio (the `t38` driver and the sim's
// T.38 far ends; workers/modem/t38_link.h). The FaxSession of the call then runs a SpanDSP
// t38_terminal (FaxSession::UseT38) and exchanges IFP packets through the link; the transport
// (UDPTL with redundancy) owns sequence numbers. Used by the call's thread only.
// What a T.38 call's packet side saw (for metrics): datagrams sent and received, IFPs
// recovered from UDPTL redundancy or lost for good, sequence gaps, late/duplicate datagrams.
struct T38CallStats {
  uint64_t datagrams_sent = 0;
  uint64_t datagrams_received = 0;
  uint64_t recovered = 0;
  uint64_t lost = 0;
  uint64_t gaps = 0;
  uint64_t late = 0;
  uint64_t malformed = 0;
};

class T38Link {
 public:
  virtual ~T38Link() = default;
  // Sends one IFP packet; `count` is SpanDSP's repeat count (indicators are sent 3 times).
  virtual Status SendIfp(std::span<const uint8_t> ifp, int count) = 0;
  // Hands every IFP received since the last call to `deliver` in sequence order (lost packets
  // recovered from redundancy where possible), with the IFP's UDPTL sequence number.
  virtual void ReceiveIfps(
      const std::function<void(std::span<const uint8_t> ifp, uint16_t seq)>& deliver) = 0;
  // False: the terminal streams without T.38 pacing (T38_TERMINAL_OPTION_NO_PACING).
  virtual bool Paced() const { return true; }
  // Packet statistics of the call so far (zeros when the transport keeps none).
  virtual T38CallStats Stats() const { return {}; }
};

// An answered call carrying audio. Destroying it hangs up (if not already done).
class Call {
 public:
  virtual ~Call() = default;
  // Sends one frame of our audio and receives one frame from the far end; advances line time
  // by 20 ms. After a hang-up (either side) `rx` is silence and the call stays hung up.
  // Errors: kIoError (retryable) when the transport fails; the channel then treats the call as
  // hung up (T.30 is terminated and the call classified as dropped).
  virtual Status Exchange(std::span<const int16_t, kFrameSamples> tx,
                          std::span<int16_t, kFrameSamples> rx) = 0;
  // True once the far end (or the network) has hung up.
  virtual bool Hungup() const = 0;
  // Hangs up from our side. Idempotent.
  virtual void Hangup() = 0;
  // Line time since the call was answered.
  virtual int64_t LineMillis() const = 0;
  // Non-null when the call carries T.38 (then Exchange() only paces and the audio is silence).
  virtual T38Link* t38() { return nullptr; }
};

struct DialResult {
  CallSetup setup = CallSetup::kError;
  std::unique_ptr<Call> call;  // set only when setup == kAnswered
  int64_t setup_millis = 0;    // line time spent before answer (ringing), or until busy/no answer
  std::string detail;          // e.g. "busy tone", "no answer after 60 s"
};

class LineDriver {
 public:
  virtual ~LineDriver() = default;
  virtual std::string_view Name() const = 0;  // "sim", "t38", "sip"
  // Whether one call may carry several jobs' documents (batching): the far end's records can
  // tell them apart (the sim line splits them per job). The t38 driver's SETUP names one job,
  // so `faxflow sink` would store one fax: it sends one job per call.
  virtual bool SharedCalls() const { return true; }
  // Places a call. Busy/no answer/rejected are results (DialResult::setup), not errors; an
  // error Status means the driver itself failed (no call was placed, or its fate is unknown).
  virtual Result<DialResult> Dial(const CallRequest& request) = 0;
};

}  // namespace faxflow::modem
