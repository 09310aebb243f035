// Unit: UDPTL framing with redundancy (workers/modem/t38_udptl.h) and the in-process T.38 pipe:
// wire format, in-order delivery, recovery of lost datagrams up to the redundancy depth,
// duplicates dropped, malformed datagrams rejected.
#include "workers/modem/t38_udptl.h"

#include <gtest/gtest.h>

#include <vector>

#include "workers/modem/t38_link.h"

namespace faxflow::modem {
namespace {

std::vector<uint8_t> Ifp(int n, size_t len = 5) {
  std::vector<uint8_t> v(len);
  for (size_t i = 0; i < len; ++i) v[i] = static_cast<uint8_t>(n + static_cast<int>(i));
  return v;
}

struct Got {
  std::vector<std::vector<uint8_t>> ifps;
  std::vector<uint16_t> seqs;
  UdptlDecoder::Deliver Fn() {
    return [this](std::span<const uint8_t> ifp, uint16_t seq) {
      ifps.emplace_back(ifp.begin(), ifp.end());
      seqs.push_back(seq);
    };
  }
};

TEST(Udptl, WireFormatMatchesT38Redundancy) {
  UdptlEncoder enc(2);
  auto d0 = enc.Encode(Ifp(1, 3));
  ASSERT_TRUE(d0.ok());
  // seq 0, primary length 3 + bytes, recovery choice 0, zero secondaries.
  EXPECT_EQ(*d0, (std::vector<uint8_t>{0x00, 0x00, 0x03, 1, 2, 3, 0x00, 0x00}));
  auto d1 = enc.Encode(Ifp(9, 2));
  ASSERT_TRUE(d1.ok());
  EXPECT_EQ(*d1, (std::vector<uint8_t>{0x00, 0x01, 0x02, 9, 10, 0x00, 0x01, 0x03, 1, 2, 3}));
  // Long IFPs use the two-byte length determinant.
  auto d2 = enc.Encode(Ifp(0, 300));
  ASSERT_TRUE(d2.ok());
  EXPECT_EQ((*d2)[2], 0x81);
  EXPECT_EQ((*d2)[3], 300 - 256);
}

TEST(Udptl, RecoversLossesUpToTheRedundancyDepth) {
  UdptlEncoder enc(3);
  UdptlDecoder dec;
  Got got;
  std::vector<std::vector<uint8_t>> sent;
  for (int i = 0; i < 12; ++i) sent.push_back(*enc.Encode(Ifp(i * 10)));
  // Lose 1, then 2-3-4 (three in a row), then 7..10 (four in a row: one is unrecoverable).
  for (int i : {0, 5, 6, 11}) ASSERT_TRUE(dec.Decode(sent[static_cast<size_t>(i)], got.Fn()).ok());
  EXPECT_EQ(got.seqs, (std::vector<uint16_t>{0, 2, 3, 4, 5, 6, 8, 9, 10, 11}));
  for (size_t k = 0; k < got.seqs.size(); ++k) EXPECT_EQ(got.ifps[k], Ifp(got.seqs[k] * 10));
  EXPECT_EQ(dec.stats().lost, 2u);  // seq 1 (four behind 5) and 7 (four behind 11)
  EXPECT_EQ(dec.stats().recovered, 6u);
}

TEST(Udptl, DropsDuplicatesAndOldDatagrams) {
  UdptlEncoder enc(1);
  UdptlDecoder dec;
  Got got;
  auto a = *enc.Encode(Ifp(1));
  auto b = *enc.Encode(Ifp(2));
  ASSERT_TRUE(dec.Decode(b, got.Fn()).ok());
  ASSERT_TRUE(dec.Decode(b, got.Fn()).ok());
  ASSERT_TRUE(dec.Decode(a, got.Fn()).ok());
  EXPECT_EQ(got.seqs, (std::vector<uint16_t>{1}));
  EXPECT_EQ(dec.stats().duplicates, 2u);
}

TEST(Udptl, SequenceNumbersWrap) {
  UdptlEncoder enc(2);
  UdptlDecoder dec;
  Got got;
  std::vector<std::vector<uint8_t>> sent;
  for (int i = 0; i < 65540; ++i) {
    auto d = enc.Encode(Ifp(i & 0x7f, 1));
    if (i >= 65530) sent.push_back(*d);
  }
  for (size_t i = 0; i < sent.size(); i += 2) ASSERT_TRUE(dec.Decode(sent[i], got.Fn()).ok());
  ASSERT_EQ(got.seqs.size(), 9u);
  EXPECT_EQ(got.seqs.front(), 65530);
  EXPECT_EQ(got.seqs[6], 0);
  EXPECT_EQ(dec.stats().lost, 0u);
}

TEST(Udptl, RejectsMalformedDatagrams) {
  UdptlDecoder dec;
  Got got;
  EXPECT_FALSE(dec.Decode(std::vector<uint8_t>{0, 1}, got.Fn()).ok());
  EXPECT_FALSE(dec.Decode(std::vector<uint8_t>{0, 1, 9, 1, 2}, got.Fn()).ok());           // truncated primary
  EXPECT_FALSE(dec.Decode(std::vector<uint8_t>{0, 1, 1, 7, 0x80, 0}, got.Fn()).ok());     // FEC
  EXPECT_FALSE(dec.Decode(std::vector<uint8_t>{0, 1, 1, 7, 0, 2, 1, 5}, got.Fn()).ok());  // missing secondary
  EXPECT_TRUE(got.seqs.empty());
  EXPECT_EQ(dec.stats().malformed, 4u);
}

TEST(T38Pipe, LosesAboutTheConfiguredShareAndRecoversIt) {
  T38Pipe pipe({.redundancy = 3, .paced = true}, 10.0, 42);
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE(pipe.caller().SendIfp(Ifp(i & 0x7f), 1).ok());
  Got got;
  pipe.answerer().ReceiveIfps(got.Fn());
  EXPECT_GT(pipe.dropped(), 120u);
  EXPECT_LT(pipe.dropped(), 280u);
  // With 10 % independent loss, four losses in a row are rare: almost everything arrives.
  EXPECT_GE(got.seqs.size(), 1995u);
  for (size_t k = 1; k < got.seqs.size(); ++k) EXPECT_LT(got.seqs[k - 1], got.seqs[k]);
}

}  // namespace
}  // namespace faxflow::modem
