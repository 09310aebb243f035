// The receiving T.38 fax endpoint behind `faxflow sink` (app/sink.h): answers calls of the `t38`
// line driver (t38_line.h: SETUP/ANSWER/BYE datagrams, UDPTL with redundancy on one UDP port),
// receives each fax with a SpanDSP t38_terminal and stores it as a TIFF per call:
// <dir>/<digits of the number>/<job_id>-a<attempt>.tif (the sim far end's layout), plus one
// JSON line per finished call in <dir>/calls.jsonl (sim_line.h SimCallRecord, fsynced).
//
// The destination number picks a behaviour from the sim directory (docs/sim.md): `busy` answers
// BUSY, `no_answer` never answers, `normal_only` and `slow:N` restrict the receiver; every other
// number answers normally.
//
// Calls of the `audio` media (SETUP ... audio) are answered by the sim far end itself
// (SimFarEnd: answer, voice, silence, drop_after:N, slow, normal_only) fed lock-step: every audio
// frame from the caller is processed at once and answered with the far end's frame of the same
// index (a repeated frame gets the same answer again).
//
// Lifecycle: Start() binds the socket and starts one thread that ticks every 20 ms of real time
// (T.38 timers of every call, packets in and out); Stop() (or the destructor) hangs up every call
// (their received pages are kept) and joins. Faxes() is thread-safe (a snapshot).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "workers/modem/sim_far_end.h"
#include "workers/modem/t38_line.h"
#include "workers/modem/t38_link.h"

namespace faxflow::modem {

struct T38SinkOptions {
  std::string listen = "127.0.0.1:4560";  // UDP host:port (port 0: any free port)
  std::string dir;                        // required
  std::string ident = "FAXFLOW SINK";     // CSI
  std::string behaviours;                 // sim.behaviours syntax, per number
  T38LinkOptions link;                    // our side's redundancy and pacing
  double idle_timeout_seconds = 30;       // a call silent this long is hung up
  int max_calls = 256;                    // more simultaneous calls answer BUSY
};

// One received (or receiving) fax.
struct SinkFax {
  std::string call_id;
  std::string peer;  // host:port of the caller
  std::string number;
  std::string job_id;
  int32_t attempt = 0;
  std::string behaviour;
  std::string media;   // t38, audio
  std::string state;   // receiving, done
  std::string result;  // T.30 completion name (T30_ERR_OK), in_progress while receiving
  int pages = 0;
  std::string remote_ident;  // the sender's TSI
  int bit_rate = 0;
  bool ecm = false;
  std::string path;  // the TIFF (empty when no page arrived)
  double seconds = 0;
  uint64_t datagrams_in = 0;
  uint64_t recovered = 0;  // IFPs recovered from UDPTL redundancy
  uint64_t lost = 0;       // IFPs lost for good
};

class T38Sink {
 public:
  static Result<std::unique_ptr<T38Sink>> Start(const T38SinkOptions& options, Clock& clock);
  ~T38Sink();
  T38Sink(const T38Sink&) = delete;
  T38Sink& operator=(const T38Sink&) = delete;
  void Stop();

  int port() const { return port_; }
  const std::string& dir() const { return options_.dir; }
  // Every fax, oldest first (finished and in progress).
  std::vector<SinkFax> Faxes() const;
  // {"faxes":[...],"active":n,"received":n}: the HTTP status document.
  std::string StatusJson() const;

 private:
  struct Session;
  T38Sink(T38SinkOptions options, SimDirectory directory, Clock& clock);
  void Run();
  void HandleDatagram(const UdpAddress& from, std::span<const uint8_t> d);
  void Answer(const UdpAddress& from, const t38ctl::Message& setup);
  void Tick();
  void Finish(Session& s, bool send_bye);
  // Audio media: processes one frame; false when the far end has hung up (the call is over).
  bool HandleAudio(Session& s, std::span<const uint8_t> d);
  void SendTo(const UdpAddress& to, std::span<const uint8_t> d);

  T38SinkOptions options_;
  SimDirectory directory_;
  Clock& clock_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::map<UdpAddress, std::unique_ptr<Session>> sessions_;  // loop thread only
  mutable std::mutex mu_;
  std::vector<SinkFax> faxes_;           // guarded by mu_
  std::map<std::string, size_t> index_;  // call id -> faxes_ index, guarded by mu_
};

// JSON of one fax (the status endpoint's element).
std::string ToJson(const SinkFax& fax);

}  // namespace faxflow::modem
