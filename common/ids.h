// Identifiers shown to users: a prefix, then 20 lowercase base32 characters (48 bits of
// milliseconds since the epoch, so ids sort by creation time, and 52 random bits).
// Example: "fax_01hgw2m3k8x9q4r7t6yz". Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace faxflow {

std::string NewId(std::string_view prefix, int64_t now_ms);

// True if `id` has the given prefix and only id characters after it (used to reject junk ids
// before they reach a store).
bool LooksLikeId(std::string_view id, std::string_view prefix);

}  // namespace faxflow
