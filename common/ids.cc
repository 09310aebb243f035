#include "common/ids.h"

#include <random>

namespace faxflow {
namespace {
constexpr char kAlphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";  // Crockford base32, lowercase
}

std::string NewId(std::string_view prefix, int64_t now_ms) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const uint64_t time_bits = static_cast<uint64_t>(now_ms) & ((uint64_t{1} << 48) - 1);
  const uint64_t rand_bits = rng() & ((uint64_t{1} << 52) - 1);
  std::string out(prefix);
  out += '_';
  for (int i = 9; i >= 0; --i) out += kAlphabet[(time_bits >> (i * 5)) & 31];  // 50 bits, top 2 zero
  for (int i = 9; i >= 0; --i) out += kAlphabet[(rand_bits >> (i * 5 + 2)) & 31];
  return out;
}

bool LooksLikeId(std::string_view id, std::string_view prefix) {
  if (id.size() != prefix.size() + 21 || id.substr(0, prefix.size()) != prefix || id[prefix.size()] != '_')
    return false;
  for (char c : id.substr(prefix.size() + 1)) {
    bool found = false;
    for (const char* a = kAlphabet; *a; ++a) found |= (*a == c);
    if (!found) return false;
  }
  return true;
}

}  // namespace faxflow
