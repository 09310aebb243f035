// The bus contract suite (bus_contract.cc) against the embedded RocksDB backend.
#include <cstdlib>
#include <filesystem>

#include "tests/bus/bus_contract.h"
#include "topics/embedded/embedded_bus.h"

namespace faxflow::bus::contract {
namespace {

// One temp root per test process; an instance is a directory below it.
const std::filesystem::path& Root() {
  static const std::filesystem::path root = [] {
    std::string pattern = (std::filesystem::temp_directory_path() / "faxflow-bus-contract-XXXXXX").string();
    char* made = mkdtemp(pattern.data());
    if (made == nullptr) std::abort();
    return std::filesystem::path(made);
  }();
  return root;
}

// Removes the (by then empty) temp root when the test program ends.
class RootCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(Root(), ec);
  }
};
[[maybe_unused]] ::testing::Environment* const kRootCleanup = ::testing::AddGlobalTestEnvironment(new RootCleanup);

BusFactory EmbeddedFactory() {
  BusFactory f;
  f.name = "Embedded";
  f.open = [](const std::string& instance) { return OpenEmbeddedBus((Root() / instance).string()); };
  f.cleanup = [](const std::string& instance) {
    std::error_code ec;
    std::filesystem::remove_all(Root() / instance, ec);
  };
  f.patience = std::chrono::seconds(10);
  return f;
}

INSTANTIATE_TEST_SUITE_P(Embedded, BusContract, ::testing::Values(EmbeddedFactory()), BusFactoryName);

}  // namespace
}  // namespace faxflow::bus::contract
