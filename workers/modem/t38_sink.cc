#include "workers/modem/t38_sink.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "common/log.h"
#include "workers/modem/fax_session.h"
#include "workers/modem/outcome.h"
#include "workers/modem/sim_line.h"

namespace faxflow::modem {
namespace {

std::string Esc(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string SafeName(std::string_view s) {
  std::string out;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.';
    out += ok ? c : '_';
  }
  if (out.empty() || out == "." || out == "..") out = "_" + out;
  return out;
}

Status AppendLine(const std::string& path, const std::string& line) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Retryable(Code::kIoError, "open " + path + ": " + std::strerror(errno));
  const ssize_t n = ::write(fd, line.data(), line.size());
  const bool ok = n == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return Status::Retryable(Code::kIoError, "write " + path);
  return Status::Ok();
}

}  // namespace

std::string ToJson(const SinkFax& f) {
  char secs[32];
  std::snprintf(secs, sizeof(secs), "%.3f", f.seconds);
  return "{\"call_id\":" + Esc(f.call_id) + ",\"peer\":" + Esc(f.peer) + ",\"number\":" + Esc(f.number) +
         ",\"job_id\":" + Esc(f.job_id) + ",\"attempt\":" + std::to_string(f.attempt) +
         ",\"behaviour\":" + Esc(f.behaviour) + ",\"media\":" + Esc(f.media) + ",\"state\":" + Esc(f.state) +
         ",\"result\":" + Esc(f.result) + ",\"pages\":" + std::to_string(f.pages) +
         ",\"csid\":" + Esc(f.remote_ident) + ",\"bit_rate\":" + std::to_string(f.bit_rate) +
         ",\"ecm\":" + (f.ecm ? "true" : "false") + ",\"path\":" + Esc(f.path) + ",\"seconds\":" + secs +
         ",\"datagrams_in\":" + std::to_string(f.datagrams_in) +
         ",\"recovered\":" + std::to_string(f.recovered) + ",\"lost\":" + std::to_string(f.lost) + "}";
}

struct T38Sink::Session {
  UdpAddress peer;
  std::string call_id;
  FarEndBehaviour behaviour;
  bool audio = false;
  std::unique_ptr<UdptlLink> link;  // t38
  std::unique_ptr<FaxSession> fax;  // t38; destroyed before link
  std::unique_ptr<SimFarEnd> far;   // audio
  uint32_t next_index = 0;          // audio: the frame expected next
  std::vector<uint8_t> last_reply;  // audio: answer to frame next_index - 1
  Clock::MonoTime started;
  Clock::MonoTime last_rx;
  uint64_t datagrams = 0;
  bool done = false;
  ~Session() { fax.reset(); }
  const FaxSession* Receiver() const { return audio ? (far ? far->session() : nullptr) : fax.get(); }
};

T38Sink::T38Sink(T38SinkOptions options, SimDirectory directory, Clock& clock)
    : options_(std::move(options)), directory_(std::move(directory)), clock_(clock) {}

Result<std::unique_ptr<T38Sink>> T38Sink::Start(const T38SinkOptions& options, Clock& clock) {
  if (options.dir.empty()) return Status::Permanent(Code::kInvalidArgument, "sink: no directory");
  FF_RETURN_IF_ERROR(ValidateIdent(options.ident).WithContext("sink ident"));
  FF_ASSIGN_OR_RETURN(SimDirectory directory, SimDirectory::Create(options.behaviours));
  FF_ASSIGN_OR_RETURN(UdpAddress listen, ResolveUdp(options.listen));
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec)
    return Status::Retryable(Code::kIoError, "sink: cannot create " + options.dir + ": " + ec.message());
  std::unique_ptr<T38Sink> s(new T38Sink(options, std::move(directory), clock));
  s->fd_ = ::socket(listen.addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s->fd_ < 0)
    return Status::Retryable(Code::kIoError, std::string("sink socket: ") + std::strerror(errno));
  const int rcvbuf = 4 << 20;
  (void)::setsockopt(s->fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  if (::bind(s->fd_, reinterpret_cast<const sockaddr*>(&listen.addr), listen.len) != 0)
    return Status::Fatal(Code::kUnavailable,
                         "sink cannot bind UDP " + options.listen + ": " + std::strerror(errno));
  UdpAddress bound;
  bound.len = sizeof(bound.addr);
  ::getsockname(s->fd_, reinterpret_cast<sockaddr*>(&bound.addr), &bound.len);
  const std::string b = bound.ToString();
  s->port_ = std::atoi(b.substr(b.rfind(':') + 1).c_str());
  T38Sink* self = s.get();
  s->thread_ = std::thread([self] { self->Run(); });
  return s;
}

T38Sink::~T38Sink() {
  Stop();
  if (fd_ >= 0) ::close(fd_);
}

void T38Sink::Stop() {
  if (stop_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
}

void T38Sink::SendTo(const UdpAddress& to, std::span<const uint8_t> d) {
  // A full socket buffer loses the datagram as the network would; redundancy covers it.
  (void)::sendto(fd_, d.data(), d.size(), MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&to.addr), to.len);
}

void T38Sink::Run() {
  static const auto logger = Logger("sink");
  const auto tick = std::chrono::milliseconds(kFrameMillis);
  auto next = clock_.Monotonic() + tick;
  std::array<uint8_t, 2048> buf;
  while (!stop_.load()) {
    const auto now = clock_.Monotonic();
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count();
    pollfd p{fd_, POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::clamp<int64_t>(wait, 0, 20)));
    if (rc > 0) {
      while (true) {
        UdpAddress from;
        from.len = sizeof(from.addr);
        const ssize_t n =
            ::recvfrom(fd_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from.addr), &from.len);
        if (n < 0) {
          if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNREFUSED)
            FF_LOG_WARN(logger, "sink recv: {}", std::strerror(errno));
          break;
        }
        HandleDatagram(from, std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)));
      }
    }
    if (clock_.Monotonic() >= next) {
      Tick();
      next += tick;
      if (clock_.Monotonic() - next > std::chrono::seconds(1))
        next = clock_.Monotonic() + tick;  // overloaded
    }
  }
  for (auto& [addr, s] : sessions_) Finish(*s, true);
  sessions_.clear();
}

void T38Sink::HandleDatagram(const UdpAddress& from, std::span<const uint8_t> d) {
  static const auto logger = Logger("sink");
  auto it = sessions_.find(from);
  if (t38ctl::IsControl(d)) {
    auto m = t38ctl::Parse(d);
    if (!m) return;
    if (m->verb == "SETUP") {
      if (it != sessions_.end() && it->second->call_id == m->call_id) {
        const std::string ans = t38ctl::Reply("ANSWER", m->call_id).Encode();
        SendTo(from, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(ans.data()), ans.size()));
        return;
      }
      if (it != sessions_.end()) {  // a new call from the same address replaces the old one
        Finish(*it->second, false);
        sessions_.erase(it);
      }
      Answer(from, *m);
    } else if (m->verb == "BYE" && it != sessions_.end() && it->second->call_id == m->call_id) {
      FF_LOG_INFO(logger, "call {}: caller hung up", m->call_id);
      Finish(*it->second, false);
      sessions_.erase(it);
    }
    return;
  }
  if (it == sessions_.end()) return;  // stray packet of an ended call
  it->second->last_rx = clock_.Monotonic();
  ++it->second->datagrams;
  if (it->second->audio) {
    if (!HandleAudio(*it->second, d)) {
      Finish(*it->second, true);
      sessions_.erase(it);
    }
    return;
  }
  it->second->link->Push(d);
}

bool T38Sink::HandleAudio(Session& s, std::span<const uint8_t> d) {
  std::array<int16_t, kFrameSamples> in{};
  uint32_t index = 0;
  if (!t38ctl::DecodeAudio(d, index, in)) return true;
  if (index + 1 == s.next_index && !s.last_reply.empty()) {  // our answer was lost: repeat it
    SendTo(s.peer, s.last_reply);
    return true;
  }
  if (index != s.next_index) return true;
  std::array<int16_t, kFrameSamples> out{};
  s.far->Process(in, out);
  t38ctl::EncodeAudio(index, out, s.last_reply);
  SendTo(s.peer, s.last_reply);
  ++s.next_index;
  return !s.far->HungUp();
}

void T38Sink::Answer(const UdpAddress& from, const t38ctl::Message& setup) {
  static const auto logger = Logger("sink");
  const FarEndBehaviour behaviour = directory_.Lookup(setup.number);
  auto reply = [&](std::string_view verb) {
    const std::string m = t38ctl::Reply(std::string(verb), setup.call_id).Encode();
    SendTo(from, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(m.data()), m.size()));
  };
  if (behaviour.kind == FarEndKind::kNoAnswer) return;
  if (behaviour.kind == FarEndKind::kBusy || static_cast<int>(sessions_.size()) >= options_.max_calls) {
    reply("BUSY");
    return;
  }
  auto s = std::make_unique<Session>();
  s->peer = from;
  s->call_id = setup.call_id;
  s->behaviour = behaviour;
  s->started = s->last_rx = clock_.Monotonic();
  std::string digits = NumberDigits(setup.number);
  if (digits.empty()) digits = "unknown";
  const std::string rx_path = options_.dir + "/" + digits + "/" + SafeName(setup.job_id) + "-a" +
                              std::to_string(setup.attempt) + ".tif";
  std::error_code ec;
  std::filesystem::create_directories(options_.dir + "/" + digits, ec);
  RxSessionOptions rx;
  rx.tiff_path = rx_path;
  rx.ident = options_.ident;
  rx.log_tag = "sink";
  if (behaviour.kind == FarEndKind::kSlow)
    rx.modems = behaviour.max_bps >= 9600 ? (kModemV29 | kModemV27ter) : kModemV27ter;
  if (behaviour.kind == FarEndKind::kNormalOnly) rx.resolutions = T30_SUPPORT_STANDARD_RESOLUTION;
  Session* raw = s.get();
  if (setup.media == "audio") {
    s->audio = true;
    FarEndBehaviour fb = behaviour;
    if (fb.kind == FarEndKind::kT38 || fb.kind == FarEndKind::kNoise)
      fb = FarEndBehaviour{};  // in-process only
    FarEndOptions fo;
    fo.ident = options_.ident;
    auto far = SimFarEnd::Answer(fb, rx_path, fo);
    if (!far.ok()) {
      FF_LOG_ERROR(logger, "call {}: cannot set up the far end: {}", setup.call_id, far.status().ToString());
      reply("BUSY");
      return;
    }
    s->far = std::move(*far);
  } else {
    s->link = std::make_unique<UdptlLink>(options_.link, [this, raw](std::span<const uint8_t> d) {
      SendTo(raw->peer, d);
      return Status::Ok();
    });
    auto fax = FaxSession::NewReceiver(rx);
    Status st = fax.ok() ? (*fax)->UseT38(*s->link) : fax.status();
    if (!st.ok()) {
      FF_LOG_ERROR(logger, "call {}: cannot set up the receiver: {}", setup.call_id, st.ToString());
      reply("BUSY");
      return;
    }
    s->fax = std::move(*fax);
  }
  SinkFax rec;
  rec.call_id = setup.call_id;
  rec.peer = from.ToString();
  rec.number = setup.number;
  rec.job_id = setup.job_id;
  rec.attempt = setup.attempt;
  rec.behaviour = behaviour.ToString();
  rec.media = s->audio ? "audio" : "t38";
  rec.state = "receiving";
  rec.result = "in_progress";
  rec.path = rx_path;
  {
    std::lock_guard<std::mutex> lock(mu_);
    index_[rec.call_id] = faxes_.size();
    faxes_.push_back(rec);
  }
  FF_LOG_INFO(logger, "call {} from {} to {} (job {} attempt {}): answered", setup.call_id, rec.peer,
              setup.number, setup.job_id, setup.attempt);
  sessions_[from] = std::move(s);
  reply("ANSWER");
}

void T38Sink::Tick() {
  std::array<int16_t, kFrameSamples> silence{};
  const auto now = clock_.Monotonic();
  const auto idle = std::chrono::milliseconds(static_cast<int64_t>(options_.idle_timeout_seconds * 1000));
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    Session& s = *it->second;
    if (!s.audio) {  // audio sessions advance with the caller's frames (HandleAudio)
      s.fax->Receive(silence);
      s.fax->Transmit(silence);
    }
    if ((!s.audio && s.fax->Finished()) || now - s.last_rx > idle) {
      Finish(s, true);
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
}

void T38Sink::Finish(Session& s, bool send_bye) {
  static const auto logger = Logger("sink");
  if (s.done) return;
  s.done = true;
  if (s.audio) {
    s.far->Finish();
  } else {
    s.fax->Terminate();
  }
  const FaxSession* receiver = s.Receiver();
  if (send_bye) {
    const std::string m = t38ctl::Reply("BYE", s.call_id).Encode();
    for (int i = 0; i < 3; ++i)
      SendTo(s.peer, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(m.data()), m.size()));
  }
  const TransferStats st = receiver ? receiver->Stats() : TransferStats{};
  SinkFax rec;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(s.call_id);
    if (it == index_.end()) return;
    SinkFax& f = faxes_[it->second];
    f.state = "done";
    f.result = s.audio ? s.far->Completion() : CompletionCodeName(s.fax->CompletionCode());
    f.pages = s.audio ? s.far->PagesReceived() : st.pages_rx;
    f.remote_ident = receiver ? receiver->RemoteIdent() : "";
    f.bit_rate = st.bit_rate;
    f.ecm = st.ecm;
    f.seconds = std::chrono::duration<double>(clock_.Monotonic() - s.started).count();
    f.datagrams_in = s.datagrams;
    if (s.link) {
      f.recovered = s.link->rx_stats().recovered;
      f.lost = s.link->rx_stats().lost;
    }
    if (f.pages == 0 || !std::filesystem::exists(f.path)) f.path.clear();
    rec = f;
  }
  SimCallRecord r;
  r.number = rec.number;
  r.job_id = rec.job_id;
  r.attempt = rec.attempt;
  r.behaviour = rec.media + ":" + rec.behaviour;
  r.pages_received = rec.pages;
  r.received_path = rec.path;
  r.completion = rec.result;
  r.line_ms = static_cast<int64_t>(rec.seconds * 1000);
  if (Status w = AppendLine(options_.dir + "/calls.jsonl", ToJsonLine(r)); !w.ok())
    FF_LOG_ERROR(logger, "sink: cannot append the call record: {}", w.ToString());
  FF_LOG_INFO(logger, "call {} done: {} page(s), {}, {} bps, {} recovered / {} lost IFPs", rec.call_id,
              rec.pages, rec.result, rec.bit_rate, rec.recovered, rec.lost);
}

std::vector<SinkFax> T38Sink::Faxes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return faxes_;
}

std::string T38Sink::StatusJson() const {
  std::vector<SinkFax> faxes = Faxes();
  std::string out = "{\"faxes\":[";
  int active = 0;
  int pages = 0;
  for (size_t i = 0; i < faxes.size(); ++i) {
    if (i) out += ",";
    out += ToJson(faxes[i]);
    if (faxes[i].state != "done") ++active;
    pages += faxes[i].pages;
  }
  out += "],\"received\":" + std::to_string(faxes.size() - static_cast<size_t>(active)) +
         ",\"active\":" + std::to_string(active) + ",\"pages\":" + std::to_string(pages) + "}";
  return out;
}

}  // namespace faxflow::modem
