// Formatting of wall-clock times (epoch milliseconds) for people and documents: transmission
// reports, cover pages, webhook timestamps. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace faxflow {

// `ms` in UTC through strftime's `format`. A trailing ".%f" (not strftime's) is replaced by the
// milliseconds: FormatUtc(ms, "%H:%M:%S.%f") == "13:03:03.042".
std::string FormatUtc(int64_t ms, const char* format = "%Y-%m-%d %H:%M:%S UTC");

}  // namespace faxflow
