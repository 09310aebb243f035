// Helpers shared by the imaging tests: corpus access.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace faxflow::imaging::testing {

inline std::string DataPath(const std::string& name) {
  const char* src = std::getenv("FAXFLOW_SOURCE_DIR");
  return std::string(src ? src : ".") + "/tests/data/" + name;
}

inline std::string ReadData(const std::string& name) {
  std::string bytes;
  if (std::FILE* f = std::fopen(DataPath(name).c_str(), "rb")) {
    char buf[65536];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.append(buf, n);
    std::fclose(f);
  }
  return bytes;
}

}  // namespace faxflow::imaging::testing
