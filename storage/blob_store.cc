#include "storage/blob_store.h"

#include <openssl/evp.h>

#include "blake3.h"

#include <cstdlib>

#include "storage/rocks_blob_store.h"

namespace faxflow {

namespace {

// SHA-256 fetched from the default provider once per process. EVP_sha256() would make every
// EVP_Digest call look the algorithm up again (OpenSSL 3 implicit fetch: a lock and a hash
// table lookup per call). The fetched method is immutable and shared by all threads; it lives
// until exit on purpose.
const EVP_MD* Sha256Method() {
  static const EVP_MD* const md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched != nullptr ? static_cast<const EVP_MD*>(fetched) : EVP_sha256();
  }();
  return md;
}

}  // namespace

std::string Sha256Hex(std::string_view content) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  // One-shot digest: no context handle to own. SHA-256 over memory cannot fail short of
  // allocation failure inside OpenSSL, which we treat as fatal. OpenSSL picks the SHA-NI code
  // path when the CPU has it (about 2 GB/s; docs/performance.md, B1).
  if (EVP_Digest(content.data(), content.size(), digest, &length, Sha256Method(), nullptr) != 1 ||
      length != 32) {
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

std::string BlobId(std::string_view content) {
  // One-shot BLAKE3 on a stack hasher: no handle to own. The reference implementation picks its
  // widest SIMD kernel (AVX-512, AVX2, SSE4.1) once per process; a 50 KB page hashes in about
  // 7 µs on the CI machine where SHA-256 with SHA-NI takes 25 µs (docs/performance.md, B1), and
  // a put's content address is on its critical path.
  blake3_hasher hasher;
  blake3_hasher_init(&hasher);
  blake3_hasher_update(&hasher, content.data(), content.size());
  uint8_t digest[BLAKE3_OUT_LEN];
  blake3_hasher_finalize(&hasher, digest, BLAKE3_OUT_LEN);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(2 * BLAKE3_OUT_LEN, '0');
  for (size_t i = 0; i < BLAKE3_OUT_LEN; ++i) {
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

Result<std::unique_ptr<BlobStore>> OpenRocksBlobStore(const std::string& path,
                                                      const RocksBlobStoreOptions& options,
                                                      std::function<int64_t()> now_ms) {
  FF_ASSIGN_OR_RETURN(std::unique_ptr<RocksBlobStore> store,
                      RocksBlobStore::Open(path, options, std::move(now_ms)));
  return std::unique_ptr<BlobStore>(std::move(store));
}

}  // namespace faxflow
