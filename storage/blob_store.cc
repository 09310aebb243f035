#include "storage/blob_store.h"

#include <cstdlib>

#include <openssl/evp.h>

#include "storage/rocks_blob_store.h"

namespace faxflow {

std::string Sha256Hex(std::string_view content) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  // One-shot digest: no context handle to own. SHA-256 over memory cannot fail short of
  // allocation failure inside OpenSSL, which we treat as fatal.
  if (EVP_Digest(content.data(), content.size(), digest, &length, EVP_sha256(), nullptr) != 1 || length != 32) {
    std::abort();
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(64, '0');
  for (unsigned int i = 0; i < length; ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 0x0f];
  }
  return out;
}

bool IsBlobId(std::string_view id) {
  if (id.size() != 64) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Result<std::unique_ptr<BlobStore>> OpenRocksBlobStore(const std::string& path, const RocksBlobStoreOptions& options,
                                                      std::function<int64_t()> now_ms) {
  FF_ASSIGN_OR_RETURN(std::unique_ptr<RocksBlobStore> store, RocksBlobStore::Open(path, options, std::move(now_ms)));
  return std::unique_ptr<BlobStore>(std::move(store));
}

}  // namespace faxflow
