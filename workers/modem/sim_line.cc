#include "workers/modem/sim_line.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/log.h"
#include "pages/pages.h"
#include "workers/modem/t38_link.h"

namespace faxflow::modem {
namespace {

std::string JsonEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string SafeFileName(std::string_view s) {
  std::string out;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.';
    out += ok ? c : '_';
  }
  if (out.empty() || out == "." || out == "..") out = "_" + out;
  return out;
}

struct AwgnDeleter {
  void operator()(awgn_state_t* s) const { awgn_free(s); }
};
using AwgnPtr = std::unique_ptr<awgn_state_t, AwgnDeleter>;

// Adds noise to a frame (saturating).
void AddNoise(awgn_state_t* noise, std::span<int16_t, kFrameSamples> frame) {
  for (auto& v : frame) {
    const int sum = static_cast<int>(v) + static_cast<int>(awgn(noise));
    v = static_cast<int16_t>(std::clamp(sum, -32768, 32767));
  }
}

// Per-call seed from the driver's seed, the job id and the attempt (reproducible per call).
uint64_t CallSeed(uint64_t base, const CallRequest& r) {
  uint64_t h = base ^ 0xcbf29ce484222325ULL;
  for (char c : r.job_id) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  return h ^ (static_cast<uint64_t>(r.attempt) << 32);
}

// A call answered by a SimFarEnd.
class SimCall final : public Call {
 public:
  SimCall(SimLineDriver& line, CallRequest request, std::string behaviour, std::unique_ptr<SimFarEnd> far_end,
          Clock& clock, bool realtime)
      : line_(line),
        request_(std::move(request)),
        behaviour_(std::move(behaviour)),
        far_(std::move(far_end)),
        realtime_(realtime),
        start_(clock.Monotonic()) {}
  // A call with line conditions: a T.38 pipe (the far end uses its answering side) and/or AWGN
  // on both audio directions. `far_end` must have been built on `pipe`.
  SimCall(SimLineDriver& line, CallRequest request, std::string behaviour, std::unique_ptr<T38Pipe> pipe,
          std::unique_ptr<SimFarEnd> far_end, AwgnPtr noise_to_far, AwgnPtr noise_to_caller, Clock& clock,
          bool realtime)
      : line_(line),
        request_(std::move(request)),
        behaviour_(std::move(behaviour)),
        pipe_(std::move(pipe)),
        far_(std::move(far_end)),
        noise_to_far_(std::move(noise_to_far)),
        noise_to_caller_(std::move(noise_to_caller)),
        realtime_(realtime),
        start_(clock.Monotonic()) {}
  ~SimCall() override { Hangup(); }

  T38Link* t38() override { return pipe_ ? &pipe_->caller() : nullptr; }

  Status Exchange(std::span<const int16_t, kFrameSamples> tx, std::span<int16_t, kFrameSamples> rx) override {
    line_ms_ += kFrameMillis;
    if (hung_up_ || far_->HungUp()) {
      std::fill(rx.begin(), rx.end(), int16_t{0});
    } else if (noise_to_far_) {
      std::array<int16_t, kFrameSamples> noisy;
      std::copy(tx.begin(), tx.end(), noisy.begin());
      AddNoise(noise_to_far_.get(), noisy);
      far_->Process(noisy, rx);
      AddNoise(noise_to_caller_.get(), rx);
    } else {
      far_->Process(tx, rx);
    }
    if (realtime_) line_.Pace(start_, line_ms_);
    return Status::Ok();
  }
  bool Hungup() const override { return hung_up_ || far_->HungUp(); }
  void Hangup() override {
    if (logged_) return;
    hung_up_ = true;
    logged_ = true;
    far_->Finish();
    SimCallRecord rec;
    rec.number = request_.number;
    rec.job_id = request_.job_id;
    rec.attempt = request_.attempt;
    rec.behaviour = behaviour_;
    rec.pages_received = far_->PagesReceived();
    if (rec.pages_received > 0) rec.received_path = far_->ReceivedPath();
    rec.completion = far_->Completion();
    rec.line_ms = line_ms_;
    Status st =
        request_.documents.empty() ? line_.AppendCallRecord(rec) : line_.AppendSharedCall(request_, rec);
    if (!st.ok()) {
      static const auto logger = Logger("modem");
      FF_LOG_ERROR(logger, "sim line: cannot append call record: {}", st.ToString());
    }
  }
  int64_t LineMillis() const override { return line_ms_; }

 private:
  SimLineDriver& line_;
  CallRequest request_;
  std::string behaviour_;
  std::unique_ptr<T38Pipe> pipe_;  // outlives far_ (declared first)
  std::unique_ptr<SimFarEnd> far_;
  AwgnPtr noise_to_far_;
  AwgnPtr noise_to_caller_;
  bool realtime_;
  Clock::MonoTime start_;
  int64_t line_ms_ = 0;
  bool hung_up_ = false;
  bool logged_ = false;
};

}  // namespace

std::string ToJsonLine(const SimCallRecord& r) {
  return "{\"number\":" + JsonEscape(r.number) + ",\"job_id\":" + JsonEscape(r.job_id) +
         ",\"attempt\":" + std::to_string(r.attempt) + ",\"behaviour\":" + JsonEscape(r.behaviour) +
         ",\"pages_received\":" + std::to_string(r.pages_received) +
         ",\"received_path\":" + JsonEscape(r.received_path) + ",\"completion\":" + JsonEscape(r.completion) +
         ",\"line_ms\":" + std::to_string(r.line_ms) +
         (r.call.empty() ? std::string()
                         : ",\"call\":" + JsonEscape(r.call) +
                               ",\"call_documents\":" + std::to_string(r.call_documents)) +
         "}\n";
}

SimLineDriver::SimLineDriver(const SimLineOptions& options, SimDirectory directory, Clock& clock)
    : options_(options), directory_(std::move(directory)), clock_(clock) {}

Result<std::unique_ptr<SimLineDriver>> SimLineDriver::Create(const SimLineOptions& options,
                                                             SimDirectory directory, Clock& clock) {
  if (options.received_dir.empty())
    return Status::Permanent(Code::kInvalidArgument, "sim line: received_dir is empty");
  std::error_code ec;
  std::filesystem::create_directories(options.received_dir, ec);
  if (ec)
    return Status::Retryable(Code::kIoError,
                             "sim line: cannot create " + options.received_dir + ": " + ec.message());
  return std::unique_ptr<SimLineDriver>(new SimLineDriver(options, std::move(directory), clock));
}

std::string SimLineDriver::CallLogPath() const { return options_.received_dir + "/calls.jsonl"; }

std::string SimLineDriver::ReceivedPath(const CallRequest& r) const {
  std::string digits = NumberDigits(r.number);
  if (digits.empty()) digits = "unknown";
  return options_.received_dir + "/" + digits + "/" + SafeFileName(r.job_id) + "-a" +
         std::to_string(r.attempt) + (r.documents.empty() ? ".tif" : "-call.tif");
}

Status SimLineDriver::AppendSharedCall(const CallRequest& request, const SimCallRecord& call) {
  // The far end received one file: split it into each job's pages (in call order).
  std::vector<std::string> received;
  if (!call.received_path.empty()) {
    std::ifstream in(call.received_path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto pages = pages::SplitPages(bytes);
    if (!pages.ok()) return pages.status().WithContext("sim line: splitting " + call.received_path);
    received = std::move(*pages);
  }
  size_t offset = 0;
  Status result = Status::Ok();
  for (const auto& doc : request.documents) {
    SimCallRecord rec = call;
    rec.job_id = doc.job_id;
    rec.attempt = doc.attempt;
    rec.call = request.job_id + "-a" + std::to_string(request.attempt);
    rec.call_documents = static_cast<int>(request.documents.size());
    rec.received_path.clear();
    const size_t begin = std::min(offset, received.size());
    const size_t end = std::min(offset + static_cast<size_t>(std::max(doc.pages, 0)), received.size());
    offset += static_cast<size_t>(std::max(doc.pages, 0));
    rec.pages_received = static_cast<int>(end - begin);
    if (end > begin) {
      CallRequest one = request;
      one.documents.clear();
      one.job_id = doc.job_id;
      one.attempt = doc.attempt;
      rec.received_path = ReceivedPath(one);
      auto joined =
          pages::JoinPages(std::vector<std::string>(received.begin() + static_cast<std::ptrdiff_t>(begin),
                                                    received.begin() + static_cast<std::ptrdiff_t>(end)));
      if (!joined.ok()) return joined.status().WithContext("sim line: " + rec.received_path);
      std::ofstream out(rec.received_path, std::ios::binary | std::ios::trunc);
      out.write(joined->data(), static_cast<std::streamsize>(joined->size()));
      out.close();
      if (!out) return Status::Retryable(Code::kIoError, "sim line: cannot write " + rec.received_path);
    }
    if (Status st = AppendCallRecord(rec); !st.ok()) result = st;
  }
  return result;
}

Status SimLineDriver::AppendCallRecord(const SimCallRecord& record) {
  const std::string line = ToJsonLine(record);
  std::lock_guard<std::mutex> lock(log_mu_);
  const std::string path = CallLogPath();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Retryable(Code::kIoError, "open " + path + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(fd, line.data() + done, line.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return Status::Retryable(Code::kIoError, "write " + path + ": " + std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    return Status::Retryable(Code::kIoError, "fsync " + path + ": " + std::strerror(err));
  }
  ::close(fd);
  return Status::Ok();
}

void SimLineDriver::Pace(Clock::MonoTime start, int64_t line_ms) {
  clock_.SleepUntil(start + std::chrono::milliseconds(line_ms));
}

void SimLineDriver::PaceUnlessAborted(Clock::MonoTime start, int64_t line_ms,
                                      const std::function<bool()>& should_abort) {
  const auto until = start + std::chrono::milliseconds(line_ms);
  if (!should_abort) {
    clock_.SleepUntil(until);
    return;
  }
  // Long waits (ringing for 60 s) in slices, so that a shutdown does not wait for them.
  while (clock_.Monotonic() < until && !should_abort())
    clock_.SleepUntil(std::min(until, clock_.Monotonic() + std::chrono::milliseconds(100)));
}

Result<DialResult> SimLineDriver::Dial(const CallRequest& request) {
  const FarEndBehaviour behaviour = directory_.Lookup(request.number);
  DialResult result;
  auto not_answered = [&](CallSetup setup, int64_t ms, std::string detail,
                          std::string completion) -> Result<DialResult> {
    if (options_.realtime) PaceUnlessAborted(clock_.Monotonic(), ms, request.should_abort);
    SimCallRecord rec;
    rec.number = request.number;
    rec.job_id = request.job_id;
    rec.attempt = request.attempt;
    rec.behaviour = behaviour.ToString();
    rec.completion = std::move(completion);
    rec.line_ms = ms;
    if (request.documents.empty()) {
      FF_RETURN_IF_ERROR(AppendCallRecord(rec));
    } else {
      FF_RETURN_IF_ERROR(AppendSharedCall(request, rec));
    }
    result.setup = setup;
    result.setup_millis = ms;
    result.detail = std::move(detail);
    return std::move(result);
  };
  switch (behaviour.kind) {
    case FarEndKind::kBusy:
      return not_answered(CallSetup::kBusy, options_.busy_ms, "busy", "busy");
    case FarEndKind::kNoAnswer:
      return not_answered(CallSetup::kNoAnswer, options_.ring_timeout_ms,
                          "no answer after " + std::to_string(options_.ring_timeout_ms / 1000) + " s",
                          "no_answer");
    default:
      break;
  }
  const std::string rx_path = ReceivedPath(request);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(rx_path).parent_path(), ec);
  if (ec) return Status::Retryable(Code::kIoError, "sim line: cannot create folder for " + rx_path);
  if (behaviour.kind == FarEndKind::kT38 || behaviour.kind == FarEndKind::kNoise) {
    std::unique_ptr<T38Pipe> pipe;
    AwgnPtr to_far;
    AwgnPtr to_caller;
    const uint64_t seed = CallSeed(options_.loss_seed, request);
    if (behaviour.kind == FarEndKind::kT38) {
      pipe = std::make_unique<T38Pipe>(options_.t38, behaviour.t38_loss_percent, seed);
    } else {
      const auto level = static_cast<float>(behaviour.noise_dbm0);
      to_far.reset(awgn_init_dbm0(nullptr, static_cast<int>(seed & 0x7fffffff), level));
      to_caller.reset(awgn_init_dbm0(nullptr, static_cast<int>((seed >> 32) & 0x7fffffff) | 1, level));
      if (!to_far || !to_caller) return Status::Retryable(Code::kResourceExhausted, "awgn_init_dbm0 failed");
    }
    FF_ASSIGN_OR_RETURN(auto far_end, SimFarEnd::Answer(behaviour, rx_path, options_.far_end,
                                                        pipe ? &pipe->answerer() : nullptr));
    if (options_.realtime) PaceUnlessAborted(clock_.Monotonic(), options_.ring_ms, request.should_abort);
    result.setup = CallSetup::kAnswered;
    result.setup_millis = options_.ring_ms;
    result.detail = "answered (" + behaviour.ToString() + ")";
    result.call =
        std::make_unique<SimCall>(*this, request, behaviour.ToString(), std::move(pipe), std::move(far_end),
                                  std::move(to_far), std::move(to_caller), clock_, options_.realtime);
    return result;
  }
  FF_ASSIGN_OR_RETURN(auto far_end, SimFarEnd::Answer(behaviour, rx_path, options_.far_end));
  if (options_.realtime) PaceUnlessAborted(clock_.Monotonic(), options_.ring_ms, request.should_abort);
  result.setup = CallSetup::kAnswered;
  result.setup_millis = options_.ring_ms;
  result.detail = "answered (" + behaviour.ToString() + ")";
  result.call = std::make_unique<SimCall>(*this, request, behaviour.ToString(), std::move(far_end), clock_,
                                          options_.realtime);
  return result;
}

}  // namespace faxflow::modem
