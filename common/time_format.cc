#include "common/time_format.h"

#include <cstdio>
#include <ctime>
#include <string_view>

namespace faxflow {

std::string FormatUtc(int64_t ms, const char* format) {
  const std::string_view fmt(format);
  const bool millis = fmt.size() >= 3 && fmt.substr(fmt.size() - 3) == ".%f";
  const std::string head(millis ? fmt.substr(0, fmt.size() - 3) : fmt);
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  const size_t n = std::strftime(buf, sizeof buf, head.c_str(), &tm);
  std::string out(buf, n);
  if (millis) {
    char frac[8];
    std::snprintf(frac, sizeof frac, ".%03d", static_cast<int>(ms % 1000));
    out += frac;
  }
  return out;
}

}  // namespace faxflow
