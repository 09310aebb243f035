#include "workers/modem/t38_line.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "common/log.h"
#include "workers/modem/sim_far_end.h"

namespace faxflow::modem {
namespace {

constexpr size_t kMaxDatagram = 2048;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

std::string Token(std::string_view s) {
  std::string out;
  for (char c : s) out += (c == ' ' || c < 0x21 || c > 0x7e) ? '_' : c;
  return out.empty() ? "-" : out;
}

// Owns a socket descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// One answered call on its own connected UDP socket.
class T38Call final : public Call {
 public:
  T38Call(int fd, std::string call_id, const T38LineOptions& options, Clock& clock)
      : fd_(fd),
        call_id_(std::move(call_id)),
        idle_timeout_ms_(static_cast<int64_t>(options.idle_timeout_seconds * 1000)),
        clock_(clock),
        start_(clock.Monotonic()),
        link_(options.link, [this](std::span<const uint8_t> d) { return SendDatagram(d); }) {}
  ~T38Call() override { Hangup(); }

  Status Exchange(std::span<const int16_t, kFrameSamples>, std::span<int16_t, kFrameSamples> rx) override {
    std::fill(rx.begin(), rx.end(), int16_t{0});
    line_ms_ += kFrameMillis;
    Status st = Status::Ok();
    if (!hung_up_) {
      st = Drain();
      if (line_ms_ - last_rx_ms_ > idle_timeout_ms_) {
        static const auto logger = Logger("modem");
        FF_LOG_WARN(logger, "t38 call {}: nothing from the peer for {} ms, hanging up", call_id_,
                    line_ms_ - last_rx_ms_);
        Hangup();
      }
    }
    clock_.SleepUntil(start_ + std::chrono::milliseconds(line_ms_));
    return st;
  }
  bool Hungup() const override { return hung_up_; }
  void Hangup() override {
    if (fd_.get() < 0) return;
    hung_up_ = true;
    if (!peer_bye_) {
      t38ctl::Message bye = t38ctl::Reply("BYE", call_id_);
      const std::string m = bye.Encode();
      for (int i = 0; i < 3; ++i) (void)::send(fd_.get(), m.data(), m.size(), MSG_DONTWAIT);
    }
    fd_.Reset();
  }
  int64_t LineMillis() const override { return line_ms_; }
  T38Link* t38() override { return &link_; }

 private:
  Status SendDatagram(std::span<const uint8_t> d) {
    if (fd_.get() < 0) return Status::Retryable(Code::kIoError, "t38 call " + call_id_ + " is hung up");
    if (::send(fd_.get(), d.data(), d.size(), MSG_DONTWAIT) < 0) {
      // A full socket buffer loses the datagram like the network would: redundancy covers it.
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return Status::Ok();
      return Status::Retryable(Code::kIoError, Errno("t38 send"));
    }
    return Status::Ok();
  }
  Status Drain() {
    std::array<uint8_t, kMaxDatagram> buf;
    while (true) {
      const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::Ok();
        const std::string err = Errno("t38 recv");
        hung_up_ = true;
        return Status::Retryable(Code::kIoError, err);
      }
      last_rx_ms_ = line_ms_;
      std::span<const uint8_t> d(buf.data(), static_cast<size_t>(n));
      if (t38ctl::IsControl(d)) {
        auto m = t38ctl::Parse(d);
        if (m && m->verb == "BYE" && m->call_id == call_id_) {
          peer_bye_ = true;
          hung_up_ = true;
        }
        continue;
      }
      link_.Push(d);
    }
  }

  Fd fd_;
  std::string call_id_;
  int64_t idle_timeout_ms_;
  Clock& clock_;
  Clock::MonoTime start_;
  UdptlLink link_;
  int64_t line_ms_ = 0;
  int64_t last_rx_ms_ = 0;
  bool hung_up_ = false;
  bool peer_bye_ = false;
};

// An answered call of the `audio` media: lock-step frames with the endpoint.
class AudioUdpCall final : public Call {
 public:
  AudioUdpCall(int fd, std::string call_id, const T38LineOptions& options, Clock& clock)
      : fd_(fd),
        call_id_(std::move(call_id)),
        idle_timeout_ms_(static_cast<int64_t>(options.idle_timeout_seconds * 1000)),
        realtime_(options.audio_realtime),
        clock_(clock),
        start_(clock.Monotonic()) {}
  ~AudioUdpCall() override { Hangup(); }

  Status Exchange(std::span<const int16_t, kFrameSamples> tx, std::span<int16_t, kFrameSamples> rx) override {
    std::fill(rx.begin(), rx.end(), int16_t{0});
    line_ms_ += kFrameMillis;
    if (hung_up_) return Status::Ok();
    t38ctl::EncodeAudio(index_, tx, out_);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(idle_timeout_ms_);
    std::array<uint8_t, 2048> buf;
    while (!hung_up_) {
      if (::send(fd_.get(), out_.data(), out_.size(), 0) < 0 && errno != ENOBUFS && errno != EAGAIN) {
        const std::string err = Errno("audio send");
        hung_up_ = true;
        return Status::Retryable(Code::kIoError, err);
      }
      // Wait for the endpoint's frame of this index; re-send after 200 ms.
      const auto resend = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
      bool got = false;
      while (!got && !hung_up_ && std::chrono::steady_clock::now() < resend) {
        pollfd p{fd_.get(), POLLIN, 0};
        const int rc = ::poll(&p, 1, 50);
        if (rc <= 0) continue;
        const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), MSG_DONTWAIT);
        if (n < 0) {
          if (errno == EAGAIN || errno == EINTR) continue;
          const std::string err = Errno("audio recv");
          hung_up_ = true;
          return Status::Retryable(Code::kIoError, err);
        }
        std::span<const uint8_t> d(buf.data(), static_cast<size_t>(n));
        if (t38ctl::IsControl(d)) {
          auto m = t38ctl::Parse(d);
          if (m && m->verb == "BYE" && m->call_id == call_id_) {
            peer_bye_ = true;
            hung_up_ = true;
          }
          continue;
        }
        uint32_t index = 0;
        if (t38ctl::DecodeAudio(d, index, rx) && index == index_) got = true;
      }
      if (got) break;
      if (std::chrono::steady_clock::now() >= give_up) {
        static const auto logger = Logger("modem");
        FF_LOG_WARN(logger, "audio call {}: no frame from the endpoint for {} ms, hanging up", call_id_,
                    idle_timeout_ms_);
        std::fill(rx.begin(), rx.end(), int16_t{0});
        Hangup();
        break;
      }
    }
    ++index_;
    if (realtime_) clock_.SleepUntil(start_ + std::chrono::milliseconds(line_ms_));
    return Status::Ok();
  }
  bool Hungup() const override { return hung_up_; }
  void Hangup() override {
    if (fd_.get() < 0) return;
    hung_up_ = true;
    if (!peer_bye_) {
      const std::string m = t38ctl::Reply("BYE", call_id_).Encode();
      for (int i = 0; i < 3; ++i) (void)::send(fd_.get(), m.data(), m.size(), MSG_DONTWAIT);
    }
    fd_.Reset();
  }
  int64_t LineMillis() const override { return line_ms_; }

 private:
  Fd fd_;
  std::string call_id_;
  int64_t idle_timeout_ms_;
  bool realtime_;
  Clock& clock_;
  Clock::MonoTime start_;
  std::vector<uint8_t> out_;
  uint32_t index_ = 0;
  int64_t line_ms_ = 0;
  bool hung_up_ = false;
  bool peer_bye_ = false;
};

}  // namespace

std::string UdpAddress::ToString() const {
  char host[INET6_ADDRSTRLEN] = {0};
  int port = 0;
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
  inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
  port = ntohs(a->sin6_port);
  return "[" + std::string(host) + "]:" + std::to_string(port);
}

bool UdpAddress::operator<(const UdpAddress& o) const {
  if (len != o.len) return len < o.len;
  return std::memcmp(&addr, &o.addr, len) < 0;
}

Result<UdpAddress> ResolveUdp(std::string_view host_port) {
  std::string host;
  std::string port;
  if (!host_port.empty() && host_port.front() == '[') {
    const size_t close = host_port.find(']');
    if (close == std::string_view::npos || close + 1 >= host_port.size() || host_port[close + 1] != ':')
      return Status::Permanent(Code::kInvalidArgument, "bad address '" + std::string(host_port) + "'");
    host = std::string(host_port.substr(1, close - 1));
    port = std::string(host_port.substr(close + 2));
  } else {
    const size_t colon = host_port.rfind(':');
    if (colon == std::string_view::npos)
      return Status::Permanent(Code::kInvalidArgument,
                               "address '" + std::string(host_port) + "' is not host:port");
    host = std::string(host_port.substr(0, colon));
    port = std::string(host_port.substr(colon + 1));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr)
    return Status::Retryable(Code::kUnavailable,
                             "cannot resolve '" + std::string(host_port) + "': " + gai_strerror(rc));
  UdpAddress out;
  std::memcpy(&out.addr, res->ai_addr, res->ai_addrlen);
  out.len = res->ai_addrlen;
  ::freeaddrinfo(res);
  return out;
}

namespace t38ctl {

std::string Message::Encode() const {
  std::string m = std::string(kMagic) + Token(verb) + " " + Token(call_id);
  if (verb == "SETUP")
    m += " " + Token(number) + " " + Token(job_id) + " " + std::to_string(attempt) + " " + Token(media);
  return m;
}

Message Reply(std::string verb, std::string call_id) {
  Message m;
  m.verb = std::move(verb);
  m.call_id = std::move(call_id);
  return m;
}

bool IsControl(std::span<const uint8_t> d) {
  return d.size() >= kMagic.size() && std::memcmp(d.data(), kMagic.data(), kMagic.size()) == 0;
}

std::optional<Message> Parse(std::span<const uint8_t> d) {
  if (!IsControl(d) || d.size() > 512) return std::nullopt;
  std::string_view rest(reinterpret_cast<const char*>(d.data()) + kMagic.size(), d.size() - kMagic.size());
  std::vector<std::string> parts;
  while (!rest.empty()) {
    const size_t sp = rest.find(' ');
    parts.emplace_back(rest.substr(0, sp));
    rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
  }
  if (parts.size() < 2) return std::nullopt;
  Message m;
  m.verb = parts[0];
  m.call_id = parts[1];
  if (m.verb == "SETUP") {
    if (parts.size() != 5 && parts.size() != 6) return std::nullopt;
    if (parts.size() == 6) m.media = parts[5];
    m.number = parts[2];
    m.job_id = parts[3];
    m.attempt = std::atoi(parts[4].c_str());
  }
  return m;
}

void EncodeAudio(uint32_t index, std::span<const int16_t, kFrameSamples> samples, std::vector<uint8_t>& out) {
  out.resize(kAudioFrameBytes);
  out[0] = 'A';
  out[1] = static_cast<uint8_t>(index >> 24);
  out[2] = static_cast<uint8_t>(index >> 16);
  out[3] = static_cast<uint8_t>(index >> 8);
  out[4] = static_cast<uint8_t>(index);
  for (size_t i = 0; i < kFrameSamples; ++i) {
    const auto v = static_cast<uint16_t>(samples[i]);
    out[5 + 2 * i] = static_cast<uint8_t>(v & 0xFF);
    out[6 + 2 * i] = static_cast<uint8_t>(v >> 8);
  }
}

bool DecodeAudio(std::span<const uint8_t> d, uint32_t& index, std::span<int16_t, kFrameSamples> samples) {
  if (d.size() != kAudioFrameBytes || d[0] != 'A') return false;
  index = (static_cast<uint32_t>(d[1]) << 24) | (static_cast<uint32_t>(d[2]) << 16) |
          (static_cast<uint32_t>(d[3]) << 8) | d[4];
  for (size_t i = 0; i < kFrameSamples; ++i)
    samples[i] = static_cast<int16_t>(static_cast<uint16_t>(d[5 + 2 * i] | (d[6 + 2 * i] << 8)));
  return true;
}

}  // namespace t38ctl

Result<T38LineOptions> T38LineOptions::FromConfig(const Config& config) {
  T38LineOptions o;
  o.remote = config.t38_remote;
  o.link.redundancy = static_cast<int>(config.t38_redundancy);
  o.link.paced = config.t38_paced;
  o.answer_timeout_seconds = config.t38_answer_timeout_seconds;
  o.idle_timeout_seconds = config.t38_idle_timeout_seconds;
  o.site = config.site.empty() ? "local" : config.site;
  o.media = config.t38_media;
  o.audio_realtime = config.t38_audio_realtime;
  if (o.media != "t38" && o.media != "audio")
    return Status::Permanent(Code::kInvalidArgument, "t38.media must be t38 or audio, not '" + o.media + "'");
  if (o.link.redundancy < 0 || o.link.redundancy > kUdptlMaxRedundancy)
    return Status::Permanent(Code::kInvalidArgument, "t38.redundancy must be 0..8");
  if (o.answer_timeout_seconds <= 0 || o.idle_timeout_seconds <= 0)
    return Status::Permanent(Code::kInvalidArgument, "t38 timeouts must be > 0");
  std::string_view routes = config.t38_routes;
  size_t index = 0;
  while (!routes.empty()) {
    const size_t semi = routes.find(';');
    std::string_view entry = routes.substr(0, semi);
    routes = semi == std::string_view::npos ? std::string_view() : routes.substr(semi + 1);
    ++index;
    while (!entry.empty() && entry.front() == ' ') entry.remove_prefix(1);
    while (!entry.empty() && entry.back() == ' ') entry.remove_suffix(1);
    if (entry.empty()) continue;
    const size_t eq = entry.find('=');
    const std::string digits = NumberDigits(entry.substr(0, eq == std::string_view::npos ? 0 : eq));
    if (eq == std::string_view::npos || digits.empty() || entry.find(':', eq) == std::string_view::npos)
      return Status::Permanent(Code::kInvalidArgument, "t38.routes entry " + std::to_string(index) + " '" +
                                                           std::string(entry) +
                                                           "': expected number=host:port");
    o.routes[digits] = std::string(entry.substr(eq + 1));
  }
  return o;
}

Result<std::unique_ptr<T38LineDriver>> T38LineDriver::Create(const T38LineOptions& options, Clock& clock) {
  FF_RETURN_IF_ERROR(ResolveUdp(options.remote).status().WithContext("t38.remote"));
  for (const auto& [digits, endpoint] : options.routes)
    FF_RETURN_IF_ERROR(ResolveUdp(endpoint).status().WithContext("t38.routes " + digits));
  return std::unique_ptr<T38LineDriver>(new T38LineDriver(options, clock));
}

std::string T38LineDriver::EndpointFor(std::string_view number) const {
  auto it = options_.routes.find(NumberDigits(number));
  return it == options_.routes.end() ? options_.remote : it->second;
}

Result<DialResult> T38LineDriver::Dial(const CallRequest& request) {
  static const auto logger = Logger("modem");
  const std::string endpoint = EndpointFor(request.number);
  FF_ASSIGN_OR_RETURN(UdpAddress remote, ResolveUdp(endpoint));
  Fd fd(::socket(remote.addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return Status::Retryable(Code::kIoError, Errno("t38 socket"));
  const int rcvbuf = 1 << 20;
  (void)::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&remote.addr), remote.len) != 0)
    return Status::Retryable(Code::kIoError, Errno("t38 connect " + endpoint));

  const std::string call_id =
      options_.site + "-" + std::to_string(::getpid()) + "-" + std::to_string(next_call_.fetch_add(1));
  t38ctl::Message setup = t38ctl::Reply("SETUP", call_id);
  setup.number = request.number;
  setup.job_id = request.job_id;
  setup.attempt = request.attempt;
  setup.media = options_.media;
  const std::string msg = setup.Encode();
  const auto start = clock_.Monotonic();
  const auto deadline =
      start + std::chrono::milliseconds(static_cast<int64_t>(options_.answer_timeout_seconds * 1000));
  auto elapsed_ms = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.Monotonic() - start).count();
  };
  DialResult result;
  auto next_setup = start;
  std::array<uint8_t, kMaxDatagram> buf;
  while (clock_.Monotonic() < deadline) {
    if (clock_.Monotonic() >= next_setup) {
      if (::send(fd.get(), msg.data(), msg.size(), 0) < 0 && errno != ECONNREFUSED)
        return Status::Retryable(Code::kIoError, Errno("t38 send SETUP to " + endpoint));
      next_setup = clock_.Monotonic() + std::chrono::milliseconds(500);
    }
    pollfd p{fd.get(), POLLIN, 0};
    const int rc = ::poll(&p, 1, 100);
    if (rc < 0 && errno != EINTR) return Status::Retryable(Code::kIoError, Errno("t38 poll"));
    if (rc <= 0) continue;
    const ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      if (errno == ECONNREFUSED) {
        result.setup = CallSetup::kError;
        result.setup_millis = elapsed_ms();
        result.detail = "t38 endpoint " + endpoint + " unreachable (connection refused)";
        FF_LOG_WARN(logger, "job {} attempt {}: {}", request.job_id, request.attempt, result.detail);
        return result;
      }
      return Status::Retryable(Code::kIoError, Errno("t38 recv"));
    }
    auto m = t38ctl::Parse(std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)));
    if (!m || m->call_id != call_id) continue;
    result.setup_millis = elapsed_ms();
    if (m->verb == "BUSY") {
      result.setup = CallSetup::kBusy;
      result.detail = "busy (t38 endpoint " + endpoint + ")";
      return result;
    }
    if (m->verb == "ANSWER") {
      result.setup = CallSetup::kAnswered;
      result.detail = "answered by t38 endpoint " + endpoint;
      FF_LOG_INFO(logger, "t38 call {} to {} ({}) answered after {} ms", call_id, request.number, endpoint,
                  result.setup_millis);
      // The Call takes the descriptor over.
      const int raw = fd.get();
      if (options_.media == "audio") {
        result.call = std::make_unique<AudioUdpCall>(::dup(raw), call_id, options_, clock_);
      } else {
        result.call = std::make_unique<T38Call>(::dup(raw), call_id, options_, clock_);
      }
      return result;
    }
  }
  result.setup = CallSetup::kNoAnswer;
  result.setup_millis = elapsed_ms();
  result.detail = "no answer from t38 endpoint " + endpoint + " after " +
                  std::to_string(static_cast<int>(options_.answer_timeout_seconds)) + " s";
  return result;
}

Result<std::unique_ptr<LineDriver>> MakeT38Line(const Config& config, Clock& clock) {
  FF_ASSIGN_OR_RETURN(T38LineOptions options, T38LineOptions::FromConfig(config));
  FF_ASSIGN_OR_RETURN(auto line, T38LineDriver::Create(options, clock));
  return std::unique_ptr<LineDriver>(std::move(line));
}

}  // namespace faxflow::modem
