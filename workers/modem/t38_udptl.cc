#include "workers/modem/t38_udptl.h"

#include <algorithm>

namespace faxflow::modem {
namespace {

void PutLength(std::vector<uint8_t>& out, size_t len) {
  if (len < 0x80) {
    out.push_back(static_cast<uint8_t>(len));
  } else {
    out.push_back(static_cast<uint8_t>(0x80 | ((len >> 8) & 0x3F)));
    out.push_back(static_cast<uint8_t>(len & 0xFF));
  }
}

void PutOpenType(std::vector<uint8_t>& out, std::span<const uint8_t> bytes) {
  PutLength(out, bytes.size());
  out.insert(out.end(), bytes.begin(), bytes.end());
}

// Reads a length determinant at `pos`; false when truncated or fragmented (>= 16384).
bool GetLength(std::span<const uint8_t> in, size_t& pos, size_t& len) {
  if (pos >= in.size()) return false;
  const uint8_t b = in[pos++];
  if ((b & 0x80) == 0) {
    len = b;
    return true;
  }
  if ((b & 0xC0) == 0xC0) return false;  // fragmented encoding: not used for IFPs this small
  if (pos >= in.size()) return false;
  len = (static_cast<size_t>(b & 0x3F) << 8) | in[pos++];
  return true;
}

bool GetOpenType(std::span<const uint8_t> in, size_t& pos, std::span<const uint8_t>& out) {
  size_t len = 0;
  if (!GetLength(in, pos, len) || len > in.size() - pos) return false;
  out = in.subspan(pos, len);
  pos += len;
  return true;
}

}  // namespace

Result<std::vector<uint8_t>> UdptlEncoder::Encode(std::span<const uint8_t> ifp) {
  if (ifp.size() > kUdptlMaxIfp)
    return Status::Permanent(Code::kInvalidArgument,
                             "IFP of " + std::to_string(ifp.size()) + " bytes is too long");
  std::vector<uint8_t> out;
  size_t reserve = 8 + ifp.size();
  for (const auto& h : history_) reserve += 2 + h.size();
  out.reserve(reserve);
  out.push_back(static_cast<uint8_t>(next_seq_ >> 8));
  out.push_back(static_cast<uint8_t>(next_seq_ & 0xFF));
  PutOpenType(out, ifp);
  out.push_back(0x00);  // error recovery: secondary IFP packets
  PutLength(out, history_.size());
  for (const auto& h : history_) PutOpenType(out, h);
  ++next_seq_;
  if (redundancy_ > 0) {
    history_.emplace_front(ifp.begin(), ifp.end());
    while (history_.size() > static_cast<size_t>(redundancy_)) history_.pop_back();
  }
  return out;
}

Status UdptlDecoder::Decode(std::span<const uint8_t> in, const Deliver& deliver) {
  auto malformed = [&](const char* what) {
    ++stats_.malformed;
    return Status::Permanent(Code::kInvalidArgument, std::string("malformed UDPTL datagram: ") + what);
  };
  if (in.size() < 4) return malformed("too short");
  const uint16_t seq = static_cast<uint16_t>((in[0] << 8) | in[1]);
  size_t pos = 2;
  std::span<const uint8_t> primary;
  if (!GetOpenType(in, pos, primary)) return malformed("primary IFP");
  if (pos >= in.size()) return malformed("no error recovery field");
  if (in[pos++] & 0x80) return malformed("FEC error recovery is not supported");
  size_t count = 0;
  if (!GetLength(in, pos, count) || count > 64) return malformed("secondary count");
  std::vector<std::span<const uint8_t>> secondary(count);
  for (size_t i = 0; i < count; ++i)
    if (!GetOpenType(in, pos, secondary[i])) return malformed("secondary IFP");
  ++stats_.datagrams;

  if (!started_) {
    started_ = true;
    expected_ = seq;  // a call starts wherever the peer's numbering starts
  }
  const int16_t ahead = static_cast<int16_t>(static_cast<uint16_t>(seq - expected_));
  if (ahead < 0) {
    ++stats_.duplicates;
    return Status::Ok();
  }
  // Sequence numbers expected_ .. seq-1 are missing: recover those the redundancy carries.
  if (ahead > 0) ++stats_.gaps;
  for (int gap = ahead; gap >= 1; --gap) {
    const uint16_t missing = static_cast<uint16_t>(seq - gap);
    if (static_cast<size_t>(gap) <= count) {
      ++stats_.recovered;
      ++stats_.delivered;
      deliver(secondary[static_cast<size_t>(gap - 1)], missing);
    } else {
      ++stats_.lost;
    }
  }
  ++stats_.delivered;
  deliver(primary, seq);
  expected_ = static_cast<uint16_t>(seq + 1);
  return Status::Ok();
}

}  // namespace faxflow::modem
