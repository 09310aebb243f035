#include "producers/gateway/png.h"

#include <array>
#include <cstdint>

namespace faxflow {
namespace {

const std::array<uint32_t, 256>& CrcTable() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  return table;
}

uint32_t Crc(const std::string& data, size_t from) {
  uint32_t c = 0xffffffffu;
  for (size_t i = from; i < data.size(); ++i)
    c = CrcTable()[(c ^ static_cast<uint8_t>(data[i])) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

void Put32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

void Chunk(std::string& out, const char* type, const std::string& data) {
  Put32(out, static_cast<uint32_t>(data.size()));
  const size_t start = out.size();
  out.append(type, 4);
  out += data;
  Put32(out, Crc(out, start));
}

}  // namespace

std::string EncodePng(const pages::Bitmap& page) {
  // Raw scanlines: filter byte 0 + inverted bits.
  std::string raw;
  raw.reserve((page.stride + 1) * page.length);
  for (uint32_t y = 0; y < page.length; ++y) {
    raw.push_back('\0');
    for (size_t x = 0; x < page.stride; ++x)
      raw.push_back(static_cast<char>(~page.bits[y * page.stride + x]));
  }
  // zlib stream of stored deflate blocks (<= 65535 bytes each) + Adler-32.
  std::string z = {'\x78', '\x01'};
  uint32_t a = 1, b = 0;
  for (unsigned char c : raw) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  size_t pos = 0;
  do {
    const size_t n = std::min<size_t>(65535, raw.size() - pos);
    const bool last = pos + n == raw.size();
    z.push_back(last ? '\x01' : '\x00');
    z.push_back(static_cast<char>(n & 0xff));
    z.push_back(static_cast<char>(n >> 8));
    z.push_back(static_cast<char>(~n & 0xff));
    z.push_back(static_cast<char>((~n >> 8) & 0xff));
    z.append(raw, pos, n);
    pos += n;
  } while (pos < raw.size());
  Put32(z, (b << 16) | a);

  std::string out = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  Put32(ihdr, page.width);
  Put32(ihdr, page.length);
  ihdr += std::string{'\x01', '\x00', '\x00', '\x00',
                      '\x00'};  // depth 1, grayscale, deflate, filter 0, no interlace
  Chunk(out, "IHDR", ihdr);
  Chunk(out, "IDAT", z);
  Chunk(out, "IEND", "");
  return out;
}

}  // namespace faxflow
