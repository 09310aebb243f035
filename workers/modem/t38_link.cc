#include "workers/modem/t38_link.h"

#include "common/log.h"

namespace faxflow::modem {

UdptlLink::UdptlLink(const T38LinkOptions& options, SendFn send)
    : options_(options),
      send_(std::move(send)),
      encoder_(options.redundancy),
      loss_(options.loss_percent, options.loss_seed) {}

Status UdptlLink::SendIfp(std::span<const uint8_t> ifp, int count) {
  FF_ASSIGN_OR_RETURN(std::vector<uint8_t> datagram, encoder_.Encode(ifp));
  // Repeats keep their sequence number: the receiver drops the copies it does not need.
  for (int i = 0; i < std::max(count, 1); ++i) {
    ++sent_;
    if (loss_.DropAndCount()) continue;
    FF_RETURN_IF_ERROR(send_(datagram));
  }
  return Status::Ok();
}

void UdptlLink::Push(std::span<const uint8_t> datagram) {
  inbox_.emplace_back(datagram.begin(), datagram.end());
}

void UdptlLink::ReceiveIfps(const std::function<void(std::span<const uint8_t>, uint16_t)>& deliver) {
  while (!inbox_.empty()) {
    std::vector<uint8_t> d = std::move(inbox_.front());
    inbox_.pop_front();
    if (Status st = decoder_.Decode(d, deliver); !st.ok()) {
      static const auto logger = Logger("modem");
      FF_LOG_DEBUG(logger, "T.38: {}", st.ToString());
    }
  }
}

T38Pipe::T38Pipe(const T38LinkOptions& options, double loss_percent, uint64_t seed)
    : to_answerer_loss_(loss_percent, seed), to_caller_loss_(loss_percent, seed ^ 0x9E3779B97F4A7C15ULL) {
  caller_ = std::make_unique<UdptlLink>(options, [this](std::span<const uint8_t> d) {
    if (!to_answerer_loss_.DropAndCount()) answerer_->Push(d);
    return Status::Ok();
  });
  answerer_ = std::make_unique<UdptlLink>(options, [this](std::span<const uint8_t> d) {
    if (!to_caller_loss_.DropAndCount()) caller_->Push(d);
    return Status::Ok();
  });
}

T38CallStats UdptlLink::Stats() const {
  const UdptlStats& rx = decoder_.stats();
  T38CallStats s;
  s.datagrams_sent = sent_;
  s.datagrams_received = rx.datagrams;
  s.recovered = rx.recovered;
  s.lost = rx.lost;
  s.gaps = rx.gaps;
  s.late = rx.duplicates;
  s.malformed = rx.malformed;
  return s;
}

}  // namespace faxflow::modem
