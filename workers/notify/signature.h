// Webhook signatures in the Standard Webhooks style (https://www.standardwebhooks.com):
//
//   webhook-id:        msg_...            (stable across retries of one delivery)
//   webhook-timestamp: 1700000000         (seconds since the epoch, new for every attempt)
//   webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")> [space v1,<...>]
//
// A secret is "whsec_" + base64(24 random bytes); the HMAC key is the decoded bytes. During a
// rotation an endpoint has two secrets and every message carries both signatures, so a receiver
// verifying with either the old or the new secret accepts it.
//
// Verify() is the receiver side (also used by tests and `faxflow webhooks verify`): constant-time
// comparison, timestamp tolerance (default 300 s) against replays.
//
// Threading: free functions, thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace faxflow::notify {

inline constexpr std::string_view kSecretPrefix = "whsec_";

// A fresh random secret ("whsec_...").
std::string NewSecret();

// The HMAC key of a secret: base64-decoded after the prefix. Errors for malformed secrets.
Result<std::string> SecretKey(std::string_view secret);

// "v1,<base64>" for one secret.
Result<std::string> Sign(std::string_view secret, std::string_view id, int64_t timestamp_s,
                         std::string_view body);

// The webhook-signature header value: one "v1,<sig>" per secret, space-separated.
Result<std::string> SignatureHeader(const std::vector<std::string>& secrets, std::string_view id,
                                    int64_t timestamp_s, std::string_view body);

// Receiver-side check. OK when any v1 signature in `signature_header` matches any of `secrets`
// and the timestamp is within `tolerance` of `now_s`; kPermissionDenied otherwise.
Status Verify(const std::vector<std::string>& secrets, std::string_view id, std::string_view timestamp_header,
              std::string_view signature_header, std::string_view body, int64_t now_s,
              std::chrono::seconds tolerance = std::chrono::seconds(300));

std::string Base64Encode(std::string_view bytes);
Result<std::string> Base64Decode(std::string_view text);

}  // namespace faxflow::notify
