// The `t38` line driver: fax calls as T.38 (SpanDSP t38_terminal on our side) over UDPTL with
// redundancy on UDP, to a remote T.38 endpoint such as `faxflow sink` (docs/t38.md).
//
// Signalling: there is no SIP here. A call is set up with small text datagrams on the same UDP
// flow as the UDPTL packets (T38Control below): the caller sends SETUP (repeated every 500 ms)
// until the endpoint answers ANSWER or BUSY (none within t38.answer_timeout_seconds: no_answer;
// ICMP port unreachable: the endpoint is down, a setup error); either side ends the call with
// BYE. Each call uses its own UDP socket (ephemeral port) so the endpoint tells calls apart by
// source address. The endpoint for a number is t38.routes (number=host:port;...) or t38.remote.
//
// Timing: Exchange() paces line time in real time through the injected Clock (20 ms per frame)
// and drains the socket; the channel's watchdog (line time and wall-clock cap) applies as for
// every driver, and a call with no datagram from the peer for t38.idle_timeout_seconds hangs up.
//
// Media `audio` (t38.media=audio): instead of T.38 the call carries the audio frames themselves,
// lock-step: each Exchange() sends our 160 samples (AudioFrame) and waits for the endpoint's
// frame of the same index (re-sent after 200 ms without an answer), so line time is virtual
// and both sides stay in step whatever the scheduling; `faxflow sink` answers such calls with
// the sim far end of the number's behaviour (docs/sim.md). Real-time pacing is optional
// (t38.audio_realtime).
//
// Threading: T38LineDriver is thread-safe (Dial only reads its options); a T38Call belongs to
// its channel thread.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/config.h"
#include "common/status.h"
#include "workers/modem/line_driver.h"
#include "workers/modem/t38_link.h"

namespace faxflow::modem {

// An IPv4/IPv6 UDP address.
struct UdpAddress {
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::string ToString() const;
  bool operator<(const UdpAddress& o) const;
};
// Resolves "host:port" (numeric or by name; "[v6]:port").
Result<UdpAddress> ResolveUdp(std::string_view host_port);

// The call-setup datagrams of the t38 driver and `faxflow sink`.
namespace t38ctl {
inline constexpr std::string_view kMagic = "FFT38/1 ";
struct Message {
  std::string verb;           // SETUP, ANSWER, BUSY, BYE
  std::string call_id;        // chosen by the caller
  std::string number;         // SETUP: E.164 destination
  std::string job_id;         // SETUP: for the endpoint's records
  int32_t attempt = 0;        // SETUP
  std::string media = "t38";  // SETUP: t38 | audio
  std::string Encode() const;
};
// A message naming only a verb and the call (ANSWER, BUSY, BYE).
Message Reply(std::string verb, std::string call_id);
bool IsControl(std::span<const uint8_t> datagram);

// An audio frame of the `audio` media: 'A', 4-byte big-endian frame index, 160 little-endian
// 16-bit samples.
inline constexpr size_t kAudioFrameBytes = 5 + 2 * kFrameSamples;
void EncodeAudio(uint32_t index, std::span<const int16_t, kFrameSamples> samples, std::vector<uint8_t>& out);
// False when `datagram` is not an audio frame.
bool DecodeAudio(std::span<const uint8_t> datagram, uint32_t& index,
                 std::span<int16_t, kFrameSamples> samples);
std::optional<Message> Parse(std::span<const uint8_t> datagram);
}  // namespace t38ctl

struct T38LineOptions {
  std::string remote = "127.0.0.1:4560";
  std::map<std::string, std::string> routes;  // digits of a number -> host:port
  T38LinkOptions link;
  double answer_timeout_seconds = 30;
  double idle_timeout_seconds = 30;
  std::string site = "local";   // part of call ids (logs on both sides)
  std::string media = "t38";    // t38 | audio
  bool audio_realtime = false;  // audio media: also pace frames in real time

  static Result<T38LineOptions> FromConfig(const Config& config);
};

class T38LineDriver final : public LineDriver {
 public:
  static Result<std::unique_ptr<T38LineDriver>> Create(const T38LineOptions& options, Clock& clock);
  std::string_view Name() const override { return "t38"; }
  bool SharedCalls() const override { return false; }  // SETUP names one job (see LineDriver)
  Result<DialResult> Dial(const CallRequest& request) override;
  // The endpoint a number is routed to.
  std::string EndpointFor(std::string_view number) const;

 private:
  T38LineDriver(T38LineOptions options, Clock& clock) : options_(std::move(options)), clock_(clock) {}
  T38LineOptions options_;
  Clock& clock_;
  std::atomic<uint64_t> next_call_{1};
};

// The driver from config (modem.line=t38).
Result<std::unique_ptr<LineDriver>> MakeT38Line(const Config& config, Clock& clock);

}  // namespace faxflow::modem
