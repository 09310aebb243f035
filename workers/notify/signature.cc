#include "workers/notify/signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstdlib>

namespace faxflow::notify {

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Result<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0)
    return Status::Permanent(Code::kInvalidArgument, "base64: length is not a multiple of 4");
  std::string out(3 * text.size() / 4, '\0');
  const int n =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return Status::Permanent(Code::kInvalidArgument, "base64: invalid characters");
  size_t len = static_cast<size_t>(n);
  if (!text.empty() && text.back() == '=') --len;  // EVP_DecodeBlock counts padding as zero bytes
  if (text.size() >= 2 && text[text.size() - 2] == '=') --len;
  out.resize(len);
  return out;
}

std::string NewSecret() {
  unsigned char raw[24];
  if (RAND_bytes(raw, sizeof(raw)) != 1) std::abort();  // no entropy: never sign with a weak key
  return std::string(kSecretPrefix) +
         Base64Encode(std::string_view(reinterpret_cast<const char*>(raw), sizeof(raw)));
}

Result<std::string> SecretKey(std::string_view secret) {
  if (secret.substr(0, kSecretPrefix.size()) == kSecretPrefix) secret.remove_prefix(kSecretPrefix.size());
  FF_ASSIGN_OR_RETURN(std::string key, Base64Decode(secret));
  if (key.size() < 16)
    return Status::Permanent(Code::kInvalidArgument, "webhook secret is shorter than 16 bytes");
  return key;
}

Result<std::string> Sign(std::string_view secret, std::string_view id, int64_t timestamp_s,
                         std::string_view body) {
  FF_ASSIGN_OR_RETURN(std::string key, SecretKey(secret));
  std::string content;
  content.reserve(id.size() + body.size() + 24);
  content.append(id).append(".").append(std::to_string(timestamp_s)).append(".").append(body);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac, &len) == nullptr)
    return Status::Fatal(Code::kInternal, "HMAC-SHA256 failed");
  return "v1," + Base64Encode(std::string_view(reinterpret_cast<const char*>(mac), len));
}

Result<std::string> SignatureHeader(const std::vector<std::string>& secrets, std::string_view id,
                                    int64_t timestamp_s, std::string_view body) {
  std::string out;
  for (const auto& s : secrets) {
    FF_ASSIGN_OR_RETURN(std::string sig, Sign(s, id, timestamp_s, body));
    if (!out.empty()) out += ' ';
    out += sig;
  }
  if (out.empty()) return Status::Permanent(Code::kFailedPrecondition, "no webhook secret to sign with");
  return out;
}

Status Verify(const std::vector<std::string>& secrets, std::string_view id, std::string_view timestamp_header,
              std::string_view signature_header, std::string_view body, int64_t now_s,
              std::chrono::seconds tolerance) {
  auto denied = [](const std::string& why) {
    return Status::Permanent(Code::kPermissionDenied, "webhook rejected: " + why);
  };
  if (timestamp_header.empty() || timestamp_header.size() > 12 ||
      timestamp_header.find_first_not_of("0123456789") != std::string_view::npos)
    return denied("bad webhook-timestamp");
  const int64_t ts = std::stoll(std::string(timestamp_header));
  if (ts < now_s - tolerance.count() || ts > now_s + tolerance.count())
    return denied("timestamp outside tolerance");
  std::vector<std::string> expected;
  for (const auto& s : secrets) {
    auto sig = Sign(s, id, ts, body);
    if (sig.ok()) expected.push_back(*sig);
  }
  size_t start = 0;
  while (start < signature_header.size()) {
    size_t end = signature_header.find(' ', start);
    if (end == std::string_view::npos) end = signature_header.size();
    const std::string_view candidate = signature_header.substr(start, end - start);
    for (const auto& e : expected) {
      if (candidate.size() == e.size() && CRYPTO_memcmp(candidate.data(), e.data(), e.size()) == 0)
        return Status::Ok();
    }
    start = end + 1;
  }
  return denied("no matching signature");
}

}  // namespace faxflow::notify
