#include "workers/modem/sim_far_end.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <numbers>

#include "workers/modem/outcome.h"

namespace faxflow::modem {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

Status Invalid(std::string message) { return Status::Permanent(Code::kInvalidArgument, std::move(message)); }

// Training time of the modem a DCS selects (FIF octet 2, bits 0x3C; SpanDSP's fallback table):
// V.17 long training, V.29, V.27ter 4800 / 2400.
int64_t TrainingMs(uint8_t fif2) {
  switch (fif2 & 0x3C) {
    case 0x20:
    case 0x28:
    case 0x24:
    case 0x2C:
      return 1393;
    case 0x04:
    case 0x0C:
      return 253;
    case 0x08:
      return 708;
    default:
      return 943;
  }
}

std::string FormatNumber(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

bool ParseDouble(std::string_view text, double& out) {
  if (text.empty()) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

}  // namespace

bool IsFaxReceiver(FarEndKind kind) {
  switch (kind) {
    case FarEndKind::kAnswer:
    case FarEndKind::kDropAfter:
    case FarEndKind::kT38:
    case FarEndKind::kNoise:
    case FarEndKind::kSlow:
    case FarEndKind::kNormalOnly:
    case FarEndKind::kTrainFail:
      return true;
    default:
      return false;
  }
}

std::string FarEndBehaviour::ToString() const {
  switch (kind) {
    case FarEndKind::kAnswer:
      return "answer";
    case FarEndKind::kBusy:
      return "busy";
    case FarEndKind::kNoAnswer:
      return "no_answer";
    case FarEndKind::kVoice:
      return "voice";
    case FarEndKind::kSilence:
      return "silence";
    case FarEndKind::kDropAfter:
      return "drop_after:" + std::to_string(drop_after_pages);
    case FarEndKind::kT38:
      return t38_loss_percent > 0 ? "t38_loss:" + FormatNumber(t38_loss_percent) : "t38";
    case FarEndKind::kNoise:
      return "noise:" + FormatNumber(noise_dbm0);
    case FarEndKind::kSlow:
      return "slow:" + std::to_string(max_bps);
    case FarEndKind::kNormalOnly:
      return "normal_only";
    case FarEndKind::kTrainFail:
      return fail_ecm ? "train_fail:v17+ecm" : "train_fail:v17";
  }
  return "unknown";
}

Result<FarEndBehaviour> ParseBehaviour(std::string_view text) {
  text = Trim(text);
  if (text == "answer") return FarEndBehaviour{FarEndKind::kAnswer, 0};
  if (text == "busy") return FarEndBehaviour{FarEndKind::kBusy, 0};
  if (text == "no_answer") return FarEndBehaviour{FarEndKind::kNoAnswer, 0};
  if (text == "voice") return FarEndBehaviour{FarEndKind::kVoice, 0};
  if (text == "silence") return FarEndBehaviour{FarEndKind::kSilence, 0};
  constexpr std::string_view kDrop = "drop_after:";
  if (text.substr(0, kDrop.size()) == kDrop) {
    std::string_view n = text.substr(kDrop.size());
    int pages = 0;
    auto [ptr, ec] = std::from_chars(n.data(), n.data() + n.size(), pages);
    if (n.empty() || ec != std::errc() || ptr != n.data() + n.size() || pages < 1)
      return Invalid("sim behaviour '" + std::string(text) + "': drop_after needs a page number >= 1");
    return FarEndBehaviour{FarEndKind::kDropAfter, pages};
  }
  if (text == "t38") return FarEndBehaviour{.kind = FarEndKind::kT38};
  if (text == "normal_only") return FarEndBehaviour{.kind = FarEndKind::kNormalOnly};
  constexpr std::string_view kLoss = "t38_loss:";
  if (text.substr(0, kLoss.size()) == kLoss) {
    double pct = 0;
    if (!ParseDouble(text.substr(kLoss.size()), pct) || pct < 0 || pct > 50)
      return Invalid("sim behaviour '" + std::string(text) + "': t38_loss needs a percentage 0..50");
    return FarEndBehaviour{.kind = FarEndKind::kT38, .t38_loss_percent = pct};
  }
  constexpr std::string_view kNoise = "noise:";
  if (text.substr(0, kNoise.size()) == kNoise) {
    double level = 0;
    if (!ParseDouble(text.substr(kNoise.size()), level) || level > 0 || level < -90)
      return Invalid("sim behaviour '" + std::string(text) + "': noise needs a level in dBm0, -90..0");
    return FarEndBehaviour{.kind = FarEndKind::kNoise, .noise_dbm0 = level};
  }
  if (text == "train_fail:v17") return FarEndBehaviour{.kind = FarEndKind::kTrainFail};
  if (text == "train_fail:v17+ecm") return FarEndBehaviour{.kind = FarEndKind::kTrainFail, .fail_ecm = true};
  if (text == "slow:9600") return FarEndBehaviour{.kind = FarEndKind::kSlow, .max_bps = 9600};
  if (text == "slow:4800") return FarEndBehaviour{.kind = FarEndKind::kSlow, .max_bps = 4800};
  return Invalid("unknown sim behaviour '" + std::string(text) +
                 "' (known: answer, busy, no_answer, voice, silence, drop_after:N, t38, t38_loss:P, noise:L, "
                 "slow:9600, slow:4800, normal_only, train_fail:v17, train_fail:v17+ecm)");
}

std::string NumberDigits(std::string_view number) {
  std::string out;
  for (char c : number)
    if (c >= '0' && c <= '9') out += c;
  return out;
}

const std::vector<std::pair<std::string, FarEndBehaviour>>& SimDirectory::BuiltIn() {
  static const std::vector<std::pair<std::string, FarEndBehaviour>> kBuiltIn = {
      {"+15550100000", {FarEndKind::kAnswer, 0}},
      {"+15550100001", {FarEndKind::kBusy, 0}},
      {"+15550100002", {FarEndKind::kNoAnswer, 0}},
      {"+15550100003", {FarEndKind::kVoice, 0}},
      {"+15550100004", {FarEndKind::kSilence, 0}},
      {"+15550100005", {FarEndKind::kDropAfter, 2}},
      {"+15550100006", {FarEndKind::kDropAfter, 1}},
      // Line conditions (docs/sim.md, docs/t38.md).
      {"+15550100100", {.kind = FarEndKind::kT38}},
      {"+15550100101", {.kind = FarEndKind::kT38, .t38_loss_percent = 1}},
      {"+15550100102", {.kind = FarEndKind::kT38, .t38_loss_percent = 10}},
      {"+15550100103", {.kind = FarEndKind::kNormalOnly}},
      {"+15550100104", {.kind = FarEndKind::kSlow, .max_bps = 9600}},
      {"+15550100105", {.kind = FarEndKind::kSlow, .max_bps = 4800}},
      {"+15550100106", {.kind = FarEndKind::kNoise, .noise_dbm0 = -50}},
      {"+15550100107", {.kind = FarEndKind::kNoise, .noise_dbm0 = -30}},
      {"+15550100108", {.kind = FarEndKind::kTrainFail}},
      {"+15550100109", {.kind = FarEndKind::kTrainFail, .fail_ecm = true}},
  };
  return kBuiltIn;
}

Result<SimDirectory> SimDirectory::Create(std::string_view config) {
  SimDirectory dir;
  for (const auto& [number, behaviour] : BuiltIn()) dir.by_digits_[NumberDigits(number)] = behaviour;
  size_t index = 0;
  while (!config.empty()) {
    size_t semi = config.find(';');
    std::string_view entry = Trim(config.substr(0, semi));
    config = semi == std::string_view::npos ? std::string_view() : config.substr(semi + 1);
    ++index;
    if (entry.empty()) continue;
    size_t eq = entry.find('=');
    if (eq == std::string_view::npos)
      return Invalid("sim.behaviours entry " + std::to_string(index) + " '" + std::string(entry) +
                     "': expected number=behaviour");
    std::string_view number = Trim(entry.substr(0, eq));
    std::string digits = NumberDigits(number);
    bool only_number_chars = !number.empty();
    for (size_t i = 0; i < number.size(); ++i) {
      char c = number[i];
      if (!((c >= '0' && c <= '9') || (c == '+' && i == 0) || c == '-' || c == ' '))
        only_number_chars = false;
    }
    if (digits.empty() || !only_number_chars)
      return Invalid("sim.behaviours entry " + std::to_string(index) + " '" + std::string(entry) + "': '" +
                     std::string(number) + "' is not a phone number");
    auto behaviour = ParseBehaviour(entry.substr(eq + 1));
    if (!behaviour.ok())
      return behaviour.status().WithContext("sim.behaviours entry " + std::to_string(index));
    dir.by_digits_[digits] = *behaviour;
  }
  return dir;
}

FarEndBehaviour SimDirectory::Lookup(std::string_view number) const {
  auto it = by_digits_.find(NumberDigits(number));
  return it == by_digits_.end() ? FarEndBehaviour{} : it->second;
}

Result<std::unique_ptr<SimFarEnd>> SimFarEnd::Answer(const FarEndBehaviour& behaviour,
                                                     const std::string& rx_path,
                                                     const FarEndOptions& options) {
  return Answer(behaviour, rx_path, options, nullptr);
}

Result<std::unique_ptr<SimFarEnd>> SimFarEnd::Answer(const FarEndBehaviour& behaviour,
                                                     const std::string& rx_path, const FarEndOptions& options,
                                                     T38Link* t38) {
  std::unique_ptr<SimFarEnd> f(new SimFarEnd());
  f->behaviour_ = behaviour;
  f->options_ = options;
  if (behaviour.kind == FarEndKind::kT38 && t38 == nullptr)
    return Status::Permanent(Code::kInvalidArgument, "a T.38 far end needs a T.38 link");
  if (IsFaxReceiver(behaviour.kind)) {
    f->rx_path_ = rx_path;
    RxSessionOptions rx;
    rx.tiff_path = rx_path;
    rx.ident = options.ident;
    rx.log_tag = "farend";
    if (behaviour.kind == FarEndKind::kSlow)
      rx.modems = behaviour.max_bps >= 9600 ? (kModemV29 | kModemV27ter) : kModemV27ter;
    if (behaviour.kind == FarEndKind::kNormalOnly) rx.resolutions = T30_SUPPORT_STANDARD_RESOLUTION;
    SimFarEnd* self = f.get();
    if (behaviour.kind == FarEndKind::kDropAfter) {
      rx.on_frame = [self](bool sent, int fcf, std::span<const uint8_t>) {
        if (!sent || fcf != T30_MCF || self->drop_armed_) return;
        if (self->fax_ && self->fax_->Stats().pages_rx >= self->behaviour_.drop_after_pages)
          self->drop_armed_ = true;
      };
    }
    if (behaviour.kind == FarEndKind::kTrainFail) {
      rx.on_frame = [self](bool sent, int fcf, std::span<const uint8_t> frame) {
        if (sent || fcf != T30_DCS) return;
        if (!self->first_dcs_seen_) {
          self->first_dcs_seen_ = true;
          // DCS FIF octet 2 (frame[4]) bit 0x20: V.17; octet 4 (frame[6]) bit 0x04: ECM.
          const bool v17 = frame.size() > 4 && (frame[4] & 0x20) != 0;
          const bool ecm = frame.size() > 6 && (frame[6] & 0x04) != 0;
          self->train_doomed_ = v17 || (self->behaviour_.fail_ecm && ecm);
        }
        // The TCF follows the DCS: 75 ms gap, the modem's training, 1.5 s of zeros. The
        // training succeeds but the zeros arrive with heavy noise, so the far end's check
        // fails and it answers FTT (SpanDSP then tries the next lower rate).
        if (self->train_doomed_ && frame.size() > 4) {
          const int64_t start = self->line_ms_ + 75 + TrainingMs(frame[4]) + 200;
          self->garble_from_ms_ = start;
          self->garble_until_ms_ = start + 1000;
        }
      };
    }
    FF_ASSIGN_OR_RETURN(f->fax_, FaxSession::NewReceiver(rx));
    if (behaviour.kind == FarEndKind::kT38) FF_RETURN_IF_ERROR(f->fax_->UseT38(*t38));
  } else if (behaviour.kind != FarEndKind::kVoice && behaviour.kind != FarEndKind::kSilence) {
    return Status::Permanent(Code::kInvalidArgument,
                             "behaviour " + behaviour.ToString() + " does not answer");
  }
  return f;
}

SimFarEnd::~SimFarEnd() { Finish(); }

void SimFarEnd::HangUpNow() {
  hung_up_ = true;
  Finish();
}

void SimFarEnd::Process(std::span<const int16_t, kFrameSamples> from_caller,
                        std::span<int16_t, kFrameSamples> to_caller) {
  std::fill(to_caller.begin(), to_caller.end(), int16_t{0});
  if (hung_up_) return;
  line_ms_ += kFrameMillis;
  switch (behaviour_.kind) {
    case FarEndKind::kAnswer:
    case FarEndKind::kDropAfter:
    case FarEndKind::kT38:
    case FarEndKind::kNoise:
    case FarEndKind::kSlow:
    case FarEndKind::kNormalOnly:
    case FarEndKind::kTrainFail: {
      if (line_ms_ >= garble_from_ms_ && line_ms_ <= garble_until_ms_) {
        // A line that cannot carry this modem: the TCF's zeros arrive with heavy noise.
        std::array<int16_t, kFrameSamples> garbled;
        for (size_t i = 0; i < garbled.size(); ++i) {
          noise_state_ = noise_state_ * 6364136223846793005ULL + 1442695040888963407ULL;
          const int noise = static_cast<int>(static_cast<int64_t>(noise_state_ >> 48) % 16001) - 8000;
          garbled[i] = static_cast<int16_t>(std::clamp(from_caller[i] + noise, -32768, 32767));
        }
        fax_->Receive(garbled);
      } else {
        fax_->Receive(from_caller);
      }
      fax_->Transmit(to_caller);
      if (fax_->Finished()) {
        // The far end's T.30 ended (DCN): it hangs up once its last frame has been sent.
        bool silent = std::all_of(to_caller.begin(), to_caller.end(), [](int16_t v) { return v == 0; });
        if (silent) HangUpNow();
        return;
      }
      if (drop_armed_) {
        bool silent = std::all_of(to_caller.begin(), to_caller.end(), [](int16_t v) { return v == 0; });
        if (!silent) {
          mcf_audio_seen_ = true;
          silent_since_ms_ = -1;
        } else if (mcf_audio_seen_) {
          if (silent_since_ms_ < 0) silent_since_ms_ = line_ms_;
          if (line_ms_ - silent_since_ms_ >= options_.drop_linger_ms) HangUpNow();
        }
      }
      return;
    }
    case FarEndKind::kVoice: {
      // Speech-like: 250 ms "syllables" of a harmonic tone gliding between 180 and 700 Hz,
      // separated by 150 ms pauses, about -14 dBm0. Nothing near 1100 Hz (CNG) or 2100 Hz (CED).
      if (line_ms_ >= options_.voice_hangup_ms) {
        HangUpNow();
        return;
      }
      const int64_t in_cycle = line_ms_ % 400;
      if (in_cycle < 250) {
        const int64_t syllable = line_ms_ / 400;
        const double base = 180.0 + static_cast<double>((syllable * 37) % 520);
        for (int i = 0; i < kFrameSamples; ++i) {
          const double t = static_cast<double>(in_cycle) / 1000.0 + i / static_cast<double>(kSampleRate);
          const double f = base * (1.0 + 0.3 * t);
          phase_ += 2.0 * std::numbers::pi * f / kSampleRate;
          const double v =
              3000.0 * std::sin(phase_) + 1500.0 * std::sin(2 * phase_) + 700.0 * std::sin(3 * phase_);
          to_caller[static_cast<size_t>(i)] = static_cast<int16_t>(v);
        }
      }
      return;
    }
    case FarEndKind::kSilence:
    case FarEndKind::kBusy:
    case FarEndKind::kNoAnswer:
      return;
  }
}

void SimFarEnd::Finish() {
  if (finished_) return;
  finished_ = true;
  if (fax_) {
    fax_->Terminate();
    pages_at_finish_ = fax_->Stats().pages_rx;
  }
}

int SimFarEnd::PagesReceived() const {
  if (!fax_) return 0;
  return finished_ ? pages_at_finish_ : fax_->Stats().pages_rx;
}

std::string SimFarEnd::Completion() const {
  if (behaviour_.kind == FarEndKind::kVoice) return "voice";
  if (behaviour_.kind == FarEndKind::kSilence) return "silence";
  if (!fax_ || fax_->CompletionCode() < 0) return "in_progress";
  return CompletionCodeName(fax_->CompletionCode());
}

}  // namespace faxflow::modem
