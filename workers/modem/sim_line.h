// The `sim` line driver: calls to a virtual far-end fax machine in the same process.
//
// For `faxflow all` without a trunk, the demo and every modem test. Dial() looks the number up
// in a SimDirectory and either reports busy/no answer (after the line time those take) or
// returns a SimCall whose far end is a SimFarEnd (a SpanDSP receiver, or voice/silence). Audio
// is exchanged lock-step, one 20 ms frame per Exchange(), in the caller's thread: line time is
// simulated and deterministic; with `realtime` each frame is paced through the injected Clock.
//
// Every dial appends one JSON line to <received_dir>/calls.jsonl when the call ends (busy and
// no answer at once), fsynced: {"number","job_id","attempt","behaviour","pages_received",
// "received_path","completion","line_ms"}. A call that carries several jobs' documents
// (CallRequest::documents) appends one line per job, each with that job's pages split out of
// the received file into its own <job_id>-a<attempt>.tif, plus "call" (the shared call's id)
// and "call_documents" (jobs in it): one record per (job, attempt) either way. Tests count dials
// per (job, attempt) from it. Received pages go to <received_dir>/<digits of number>/<job_id>-a<attempt>.tif.
//
// Threading: SimLineDriver is thread-safe (log appends are serialised); a SimCall belongs to
// its channel thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "workers/modem/line_driver.h"
#include "workers/modem/sim_far_end.h"
#include "workers/modem/t38_link.h"

namespace faxflow::modem {

struct SimLineOptions {
  std::string received_dir;          // required
  bool realtime = false;             // pace frames in real time via the Clock
  int64_t ring_ms = 4'000;           // line time before an answering far end picks up
  int64_t busy_ms = 3'000;           // line time until a busy signal is recognised
  int64_t ring_timeout_ms = 60'000;  // no_answer: give up after ringing this long
  FarEndOptions far_end;
  // T.38 far ends (t38, t38_loss:P): UDPTL redundancy depth and pacing of the in-process link;
  // `loss_seed` seeds the loss model (each call mixes in its job id and attempt).
  T38LinkOptions t38;
  uint64_t loss_seed = 1;
};

// One JSON line of calls.jsonl.
struct SimCallRecord {
  std::string number;
  std::string job_id;
  int32_t attempt = 0;
  std::string behaviour;
  int pages_received = 0;
  std::string received_path;  // empty when no page arrived
  std::string completion;     // far end's T.30 completion name, or busy/no_answer/voice/silence
  int64_t line_ms = 0;
  // A call carrying several jobs' documents: the call's id ("<first job>-a<attempt>") and how
  // many jobs it carried; empty/0 for a one-job call.
  std::string call;
  int call_documents = 0;
};
std::string ToJsonLine(const SimCallRecord& record);

class SimLineDriver final : public LineDriver {
 public:
  // Creates received_dir if needed.
  static Result<std::unique_ptr<SimLineDriver>> Create(const SimLineOptions& options, SimDirectory directory,
                                                       Clock& clock);
  std::string_view Name() const override { return "sim"; }
  Result<DialResult> Dial(const CallRequest& request) override;

  const std::string& received_dir() const { return options_.received_dir; }
  std::string CallLogPath() const;
  // Where the far end stores what a call delivers.
  std::string ReceivedPath(const CallRequest& request) const;
  // Appends a line to calls.jsonl and fsyncs it.
  Status AppendCallRecord(const SimCallRecord& record);
  // A call that carried several jobs: one line per job, with its pages split out of the
  // received file (`call` describes the whole call).
  Status AppendSharedCall(const CallRequest& request, const SimCallRecord& call);
  // Paces `line_ms` of line time starting at `start` (realtime mode only).
  void Pace(Clock::MonoTime start, int64_t line_ms);
  void PaceUnlessAborted(Clock::MonoTime start, int64_t line_ms, const std::function<bool()>& should_abort);

 private:
  SimLineDriver(const SimLineOptions& options, SimDirectory directory, Clock& clock);
  SimLineOptions options_;
  SimDirectory directory_;
  Clock& clock_;
  std::mutex log_mu_;
};

}  // namespace faxflow::modem
