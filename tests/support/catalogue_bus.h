// An embedded bus holding every catalogue topic (topics/catalogue.h) in a test's directory, for the
// in-process tests whose components talk to each other through the bus (owner directory, broadcast
// and webhook replicas, claims). A fixture with a blob store, a producer and a reader as well is
// embedded_bus_test.h.
//
// Header-only: a test using it links faxflow_bus_embedded. The caller owns the bus and closes it
// after every component using it (declare it before them).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "topics/catalogue.h"
#include "topics/embedded/embedded_bus.h"

namespace faxflow::testing {

// Opens the bus in `dir` and creates the catalogue's topics. On failure it records a test failure
// with the reason and returns null: callers ASSERT_TRUE(bus) before using it.
inline std::unique_ptr<bus::EmbeddedBus> OpenCatalogueBus(const std::string& dir) {
  auto bus = bus::EmbeddedBus::Open(dir);
  if (!bus.ok()) {
    ADD_FAILURE() << "embedded bus in " << dir << ": " << bus.status().ToString();
    return nullptr;
  }
  const Status topics = (*bus)->EnsureTopics(bus::Catalogue());
  if (!topics.ok()) {
    ADD_FAILURE() << "catalogue topics in " << dir << ": " << topics.ToString();
    return nullptr;
  }
  return std::move(*bus);
}

}  // namespace faxflow::testing
