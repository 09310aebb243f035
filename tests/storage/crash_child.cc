// Helper process for the kill -9 tests. Runs storage operations in a loop and prints one line to
// stdout after each one returned OK (an acknowledgement), until it is killed.
//   storage_crash_child dedup <path>  -> BeginAttempt("job-<i>", 1, ...) then prints "job-<i>"
//   storage_crash_child blob <path>   -> Put(ContentFor(i)) then prints "<i>"
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "storage/blob_store.h"
#include "storage/dedup_store.h"

namespace {

// Must match the parent's expectation in blob_store_test.cc.
std::string ContentFor(int i) {
  std::string content(10000 + (i % 7) * 1000, '\0');
  for (size_t k = 0; k < content.size(); ++k) content[k] = static_cast<char>((i * 131 + static_cast<int>(k)) % 251);
  return content;
}

bool Ack(const std::string& line) {
  std::string out = line + "\n";
  return write(STDOUT_FILENO, out.data(), out.size()) == static_cast<ssize_t>(out.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s dedup|blob <path>\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  const std::string path = argv[2];
  if (mode == "dedup") {
    auto store = faxflow::OpenRocksDedupStore(path);
    if (!store.ok()) {
      std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
      return 1;
    }
    for (int i = 0; i < 1000000; ++i) {
      std::string job = "job-" + std::to_string(i);
      faxflow::Status s = (*store)->BeginAttempt(job, 1, 3, 1000 + i);
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.ToString().c_str());
        return 1;
      }
      if (!Ack(job)) return 1;
    }
    return 0;
  }
  if (mode == "blob") {
    auto store = faxflow::OpenRocksBlobStore(path, faxflow::RocksBlobStoreOptions{}, [] { return int64_t{1000}; });
    if (!store.ok()) {
      std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
      return 1;
    }
    for (int i = 0; i < 1000000; ++i) {
      auto id = (*store)->Put(ContentFor(i));
      if (!id.ok()) {
        std::fprintf(stderr, "%s\n", id.status().ToString().c_str());
        return 1;
      }
      if (!Ack(std::to_string(i))) return 1;
    }
    return 0;
  }
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 2;
}
