#include "workers/modem/fax_session.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "common/log.h"

namespace faxflow::modem {
namespace {

constexpr int kT30MaxIdentLen = 20;
constexpr int kCompressions = static_cast<int>(T30_SUPPORT_T4_1D_COMPRESSION) |
                              static_cast<int>(T30_SUPPORT_T4_2D_COMPRESSION) |
                              static_cast<int>(T30_SUPPORT_T6_COMPRESSION);

// SpanDSP's per-state message handler has no user data, so every session logs to the one
// "spandsp" logger; the session's tag (channel name, "farend") identifies the call.
void SpanLogToSpdlog(int level, const char* text) {
  static const auto logger = Logger("spandsp");
  std::string_view line(text ? text : "");
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  // Not FF_LOG_DEBUG: that is compiled out below SPDLOG_ACTIVE_LEVEL, and this is only ever
  // enabled at run time (log.level=debug; see RouteLogging).
  logger->log(spdlog::level::debug, "[{}] {}", level & SPAN_LOG_SEVERITY_MASK, line);
}

void RouteLogging(logging_state_t* log, const std::string& tag) {
  if (!log) return;
  span_log_set_message_handler(log, SpanLogToSpdlog);
  static const auto logger = Logger("spandsp");
  const bool debug = logger->should_log(spdlog::level::debug);
  span_log_set_level(log, debug ? (static_cast<int>(SPAN_LOG_FLOW) | static_cast<int>(SPAN_LOG_SHOW_TAG) |
                                   static_cast<int>(SPAN_LOG_SHOW_PROTOCOL))
                                : static_cast<int>(SPAN_LOG_NONE));
  span_log_set_tag(log, tag.c_str());
}

}  // namespace

Status ValidateIdent(const std::string& ident) {
  if (ident.size() > kT30MaxIdentLen)
    return Status::Permanent(Code::kInvalidArgument,
                             "fax ident '" + ident + "' is longer than 20 characters (T.30 limit)");
  for (char c : ident) {
    if (c < 0x20 || c > 0x7e)
      return Status::Permanent(Code::kInvalidArgument, "fax ident contains a non-printable character");
  }
  return Status::Ok();
}

void FaxSession::ConfigureLogging(const std::string& tag) {
  log_tag_ = tag;  // SpanDSP keeps the pointer, so the string lives as long as the session
  RouteLogging(fax_get_logging_state(fax_.get()), log_tag_);
  RouteLogging(t30_get_logging_state(t30_), log_tag_);
}

Result<std::unique_ptr<FaxSession>> FaxSession::NewTransmitter(const TxSessionOptions& options) {
  FF_RETURN_IF_ERROR(ValidateIdent(options.ident));
  if (options.tiff_path.empty()) return Status::Permanent(Code::kInvalidArgument, "no TIFF to transmit");
  if (options.start_page < 0) return Status::Permanent(Code::kInvalidArgument, "negative start page");
  std::unique_ptr<FaxSession> s(new FaxSession());
  s->transmitter_ = true;
  s->fax_.reset(fax_init(nullptr, 1 /* calling party */));
  if (!s->fax_) return Status::Retryable(Code::kResourceExhausted, "fax_init failed");
  s->t30_ = fax_get_t30_state(s->fax_.get());
  s->ConfigureLogging(options.log_tag);
  fax_set_transmit_on_idle(s->fax_.get(), 1);
  t30_set_ecm_capability(s->t30_, options.ecm ? 1 : 0);
  t30_set_supported_compressions(s->t30_, kCompressions);
  t30_set_supported_modems(s->t30_, options.modems);
  if (t30_set_tx_ident(s->t30_, options.ident.c_str()) != 0)
    return Status::Permanent(Code::kInvalidArgument, "SpanDSP refused ident '" + options.ident + "'");
  if (!options.header_info.empty()) t30_set_tx_page_header_info(s->t30_, options.header_info.c_str());
  if (options.resolutions != 0) t30_set_supported_resolutions(s->t30_, options.resolutions);
  t30_set_tx_file(s->t30_, options.tiff_path.c_str(), options.start_page, -1);
  s->on_page_confirmed_ = options.on_page_confirmed;
  s->tx_options_ = std::make_unique<TxSessionOptions>(options);
  t30_set_phase_b_handler(s->t30_, &FaxSession::OnPhaseB, s.get());
  t30_set_phase_d_handler(s->t30_, &FaxSession::OnPhaseD, s.get());
  t30_set_phase_e_handler(s->t30_, &FaxSession::OnPhaseE, s.get());
  return s;
}

Result<std::unique_ptr<FaxSession>> FaxSession::NewReceiver(const RxSessionOptions& options) {
  FF_RETURN_IF_ERROR(ValidateIdent(options.ident));
  std::unique_ptr<FaxSession> s(new FaxSession());
  s->fax_.reset(fax_init(nullptr, 0 /* answering party */));
  if (!s->fax_) return Status::Retryable(Code::kResourceExhausted, "fax_init failed");
  s->t30_ = fax_get_t30_state(s->fax_.get());
  s->ConfigureLogging(options.log_tag);
  fax_set_transmit_on_idle(s->fax_.get(), 1);
  t30_set_ecm_capability(s->t30_, options.ecm ? 1 : 0);
  t30_set_supported_compressions(s->t30_, kCompressions);
  t30_set_supported_modems(s->t30_, options.modems);
  if (t30_set_tx_ident(s->t30_, options.ident.c_str()) != 0)
    return Status::Permanent(Code::kInvalidArgument, "SpanDSP refused ident '" + options.ident + "'");
  if (options.resolutions != 0) t30_set_supported_resolutions(s->t30_, options.resolutions);
  t30_set_rx_encoding(s->t30_, T4_COMPRESSION_ITU_T6);
  t30_set_rx_file(s->t30_, options.tiff_path.c_str(), -1);
  s->on_frame_ = options.on_frame;
  s->rx_options_ = std::make_unique<RxSessionOptions>(options);
  t30_set_phase_b_handler(s->t30_, &FaxSession::OnPhaseB, s.get());
  t30_set_phase_e_handler(s->t30_, &FaxSession::OnPhaseE, s.get());
  if (s->on_frame_) t30_set_real_time_frame_handler(s->t30_, &FaxSession::OnFrame, s.get());
  return s;
}

FaxSession::~FaxSession() {
  // A session destroyed mid-call is terminated so the rx file is closed properly.
  if ((fax_ || t38_) && !finished_) Terminate();
}

void FaxSession::Transmit(std::span<int16_t, kFrameSamples> out) {
  if (t38_) {
    t38_terminal_send_timeout(t38_.get(), kFrameSamples);
    std::fill(out.begin(), out.end(), int16_t{0});
    return;
  }
  int n = fax_tx(fax_.get(), out.data(), kFrameSamples);
  if (n < 0) n = 0;
  std::fill(out.begin() + n, out.end(), int16_t{0});
}

void FaxSession::Receive(std::span<const int16_t, kFrameSamples> in) {
  if (t38_) {
    t38_core_state_t* core = t38_terminal_get_t38_core_state(t38_.get());
    t38_link_->ReceiveIfps([core](std::span<const uint8_t> ifp, uint16_t seq) {
      t38_core_rx_ifp_packet(core, ifp.data(), static_cast<int>(ifp.size()), seq);
    });
    return;
  }
  std::array<int16_t, kFrameSamples> copy;
  std::copy(in.begin(), in.end(), copy.begin());
  fax_rx(fax_.get(), copy.data(), kFrameSamples);
}

void FaxSession::Terminate() {
  if (finished_) return;
  t30_stats_t st;
  t30_get_transfer_statistics(t30_, &st);
  status_before_terminate_ = st.current_status;
  t30_terminate(t30_);
  finished_ = true;  // phase E has run (or the engine was idle)
}

std::string FaxSession::RemoteIdent() const {
  const char* id = t30_get_rx_ident(t30_);
  return id ? std::string(id) : std::string();
}

TransferStats FaxSession::Stats() const {
  t30_stats_t st;
  std::memset(&st, 0, sizeof(st));
  t30_get_transfer_statistics(t30_, &st);
  TransferStats out;
  out.bit_rate = st.bit_rate;
  out.ecm = st.error_correcting_mode != 0;
  out.pages_tx = st.pages_tx;
  out.pages_rx = st.pages_rx;
  out.pages_in_file = st.pages_in_file;
  out.bad_rows = st.bad_rows;
  out.current_status = st.current_status;
  return out;
}

int FaxSession::OnPhaseB(t30_state_t*, void* user_data, int) {
  static_cast<FaxSession*>(user_data)->phase_b_seen_ = true;
  return T30_ERR_OK;
}

int FaxSession::OnPhaseD(t30_state_t*, void* user_data, int result) {
  auto* self = static_cast<FaxSession*>(user_data);
  if (self->transmitter_ && (result == T30_MCF || result == T30_RTP || result == T30_PIP)) {
    ++self->pages_confirmed_;
    if (self->on_page_confirmed_) self->on_page_confirmed_(self->pages_confirmed_);
  }
  return T30_ERR_OK;
}

void FaxSession::OnPhaseE(t30_state_t*, void* user_data, int completion_code) {
  auto* self = static_cast<FaxSession*>(user_data);
  self->completion_code_ = completion_code;
  self->finished_ = true;
}

void FaxSession::OnFrame(t30_state_t*, void* user_data, int direction, const uint8_t msg[], int len) {
  auto* self = static_cast<FaxSession*>(user_data);
  if (!self->on_frame_ || len < 3) return;
  self->on_frame_(direction == 0 /* FALSE = outgoing */, msg[2] & 0xFE,
                  std::span<const uint8_t>(msg, static_cast<size_t>(len)));
}

int FaxSession::OnT38Packet(t38_core_state_t*, void* user_data, const uint8_t* buf, int len, int count) {
  auto* self = static_cast<FaxSession*>(user_data);
  if (!self->t38_link_ || len < 0) return -1;
  Status st = self->t38_link_->SendIfp(std::span<const uint8_t>(buf, static_cast<size_t>(len)), count);
  if (!st.ok()) {
    static const auto logger = Logger("modem");
    FF_LOG_WARN(logger, "[{}] T.38 send failed: {}", self->log_tag_, st.ToString());
    return -1;
  }
  return 0;
}

Status FaxSession::UseT38(T38Link& link) {
  if (t38_) return Status::Permanent(Code::kFailedPrecondition, "session already uses T.38");
  if (!tx_options_ && !rx_options_) return Status::Permanent(Code::kFailedPrecondition, "session not set up");
  const bool calling = transmitter_;
  t38_link_ = &link;
  t38_.reset(t38_terminal_init(nullptr, calling ? 1 : 0, &FaxSession::OnT38Packet, this));
  if (!t38_) return Status::Retryable(Code::kResourceExhausted, "t38_terminal_init failed");
  t30_state_t* t30 = t38_terminal_get_t30_state(t38_.get());
  t38_log_tag_ = log_tag_ + "/t38";
  RouteLogging(t38_terminal_get_logging_state(t38_.get()), t38_log_tag_);
  RouteLogging(t38_core_get_logging_state(t38_terminal_get_t38_core_state(t38_.get())), t38_log_tag_);
  RouteLogging(t30_get_logging_state(t30), t38_log_tag_);
  t38_terminal_set_config(t38_.get(), link.Paced() ? 0 : static_cast<int>(T38_TERMINAL_OPTION_NO_PACING));
  const bool ecm = calling ? tx_options_->ecm : rx_options_->ecm;
  const int modems = calling ? tx_options_->modems : rx_options_->modems;
  const int resolutions = calling ? tx_options_->resolutions : rx_options_->resolutions;
  const std::string& ident = calling ? tx_options_->ident : rx_options_->ident;
  t30_set_ecm_capability(t30, ecm ? 1 : 0);
  t30_set_supported_compressions(t30, kCompressions);
  t30_set_supported_modems(t30, modems);
  if (resolutions != 0) t30_set_supported_resolutions(t30, resolutions);
  if (t30_set_tx_ident(t30, ident.c_str()) != 0)
    return Status::Permanent(Code::kInvalidArgument, "SpanDSP refused ident '" + ident + "'");
  if (calling) {
    if (!tx_options_->header_info.empty()) t30_set_tx_page_header_info(t30, tx_options_->header_info.c_str());
    t30_set_tx_file(t30, tx_options_->tiff_path.c_str(), tx_options_->start_page, -1);
    t30_set_phase_d_handler(t30, &FaxSession::OnPhaseD, this);
  } else {
    t30_set_rx_encoding(t30, T4_COMPRESSION_ITU_T6);
    t30_set_rx_file(t30, rx_options_->tiff_path.c_str(), -1);
    if (on_frame_) t30_set_real_time_frame_handler(t30, &FaxSession::OnFrame, this);
  }
  t30_set_phase_b_handler(t30, &FaxSession::OnPhaseB, this);
  t30_set_phase_e_handler(t30, &FaxSession::OnPhaseE, this);
  // The audio engine is not used any more; its T.30 never started, so it is freed.
  t30_ = t30;
  fax_.reset();
  return Status::Ok();
}

}  // namespace faxflow::modem
