// UDPTL framing of T.38 IFP packets (ITU-T T.38 clause 9.1 / Annex D ASN.1, PER-aligned), with
// the redundancy error-recovery mode: every datagram carries its primary IFP plus the previous
// `redundancy` IFPs, so a receiver recovers up to `redundancy` consecutive lost datagrams.
//
// Wire format of one datagram (what Asterisk and FreeSWITCH exchange with redundancy):
//   seq_number        2 bytes, big endian, +1 per IFP
//   primary_ifp       length determinant (1 byte < 128, else 2 bytes 0x80|hi, lo) + IFP bytes
//   error_recovery    1 byte: 0x00 = secondary IFP packets (0x80 = FEC, rejected here)
//   secondary count   length determinant, then each secondary IFP as primary_ifp; the i-th
//                     (1-based) carries the IFP of seq_number - i
//
// For the T.38 links (t38_link.h): the sim's in-process T.38 far ends, the `t38` UDP driver and
// `faxflow sink`. Threading: an encoder/decoder belongs to one call (one thread).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <vector>

#include "common/status.h"

namespace faxflow::modem {

inline constexpr int kUdptlMaxRedundancy = 8;
inline constexpr size_t kUdptlMaxIfp = 16383;  // one-piece PER length determinant

class UdptlEncoder {
 public:
  explicit UdptlEncoder(int redundancy)
      : redundancy_(redundancy < 0 ? 0 : std::min(redundancy, kUdptlMaxRedundancy)) {}
  // Frames `ifp` as the next sequence number (kInvalidArgument when it is too long).
  Result<std::vector<uint8_t>> Encode(std::span<const uint8_t> ifp);
  uint16_t next_seq() const { return next_seq_; }
  int redundancy() const { return redundancy_; }

 private:
  int redundancy_;
  uint16_t next_seq_ = 0;
  std::deque<std::vector<uint8_t>> history_;  // most recent first
};

struct UdptlStats {
  uint64_t datagrams = 0;   // well-formed datagrams decoded
  uint64_t delivered = 0;   // IFPs handed on (primary + recovered)
  uint64_t recovered = 0;   // IFPs recovered from redundancy
  uint64_t lost = 0;        // sequence numbers never seen nor recovered
  uint64_t duplicates = 0;  // arrived after their sequence number was delivered or skipped (late/dup)
  uint64_t malformed = 0;
  uint64_t gaps = 0;  // datagrams that arrived after a gap in the sequence numbers
};

class UdptlDecoder {
 public:
  using Deliver = std::function<void(std::span<const uint8_t> ifp, uint16_t seq)>;
  // Decodes one datagram and hands on, in sequence order, the IFPs not yet delivered: those of
  // the gap before it that its redundancy carries, then its primary. Older or repeated datagrams
  // deliver nothing. kInvalidArgument for a malformed datagram (nothing delivered).
  Status Decode(std::span<const uint8_t> datagram, const Deliver& deliver);
  const UdptlStats& stats() const { return stats_; }

 private:
  bool started_ = false;
  uint16_t expected_ = 0;  // next sequence number not yet delivered
  UdptlStats stats_;
};

}  // namespace faxflow::modem
