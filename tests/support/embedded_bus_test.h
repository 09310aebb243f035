// A GoogleTest fixture base for in-process worker tests on the real embedded bus: a fresh temp
// directory (TempDir) holding an embedded bus with every catalogue topic, a RocksDB blob store, a
// plain producer, and a reader consumer assigned to the topics the test watches. Used by the
// imaging worker tests (tests/imaging/imaging_fixture.h) and the broadcast driver tests.
//
// Lifecycle: the derived fixture's SetUp() calls OpenEmbeddedBus(); TearDown() closes reader,
// producer, blob store and bus in that order and removes the directory. A derived TearDown that
// owns objects using these (services, stores) resets them first, then calls
// EmbeddedBusTest::TearDown(). Single-threaded: only the test thread touches the members.
//
// Header-only: a test using it links faxflow_bus_embedded, faxflow_storage and
// faxflow_test_support.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "storage/blob_store.h"
#include "tests/support/support.h"
#include "topics/catalogue.h"
#include "topics/embedded/embedded_bus.h"

namespace faxflow::testing {

class EmbeddedBusTest : public ::testing::Test {
 protected:
  struct BusSetup {
    // Topics the reader is assigned (all partitions, from the start).
    std::vector<std::string_view> read = {bus::topic::kJobs, bus::topic::kEvents, bus::topic::kDeadLetter};
    std::string producer = "test";        // the producer's client name
    std::function<int64_t()> blob_clock;  // the blob store's clock; empty: the system clock
  };

  // Call from SetUp(). A fatal failure returns early (GoogleTest then skips the test body); a
  // SetUp that goes on after it wraps the call in ASSERT_NO_FATAL_FAILURE.
  void OpenEmbeddedBus() { OpenEmbeddedBus(BusSetup()); }
  void OpenEmbeddedBus(const BusSetup& setup) {
    temp_ = std::make_unique<TempDir>(::testing::UnitTest::GetInstance()->current_test_info()->name());
    dir_ = temp_->path();
    auto bus = bus::OpenEmbeddedBus((dir_ / "bus").string());
    ASSERT_TRUE(bus.ok()) << bus.status().ToString();
    bus_ = std::move(*bus);
    ASSERT_TRUE(bus_->EnsureTopics(bus::Catalogue()).ok());
    auto clock = setup.blob_clock ? setup.blob_clock : [] { return SystemClock::Instance().NowMillis(); };
    auto blobs = OpenRocksBlobStore((dir_ / "blobs").string(), {}, clock);
    ASSERT_TRUE(blobs.ok()) << blobs.status().ToString();
    blobs_ = std::move(*blobs);
    auto producer = bus_->NewProducer(setup.producer);
    ASSERT_TRUE(producer.ok());
    producer_ = std::move(*producer);
    bus::ConsumerOptions co;
    co.group = "test-reader";
    auto consumer = bus_->NewConsumer(co);
    ASSERT_TRUE(consumer.ok());
    reader_ = std::move(*consumer);
    std::vector<bus::TopicPartition> all;
    for (auto topic : setup.read) {
      auto tps = bus::AllPartitions(*bus_, std::string(topic));
      ASSERT_TRUE(tps.ok());
      all.insert(all.end(), tps->begin(), tps->end());
    }
    ASSERT_TRUE(reader_->Assign(all).ok());
  }

  void TearDown() override {
    reader_.reset();
    producer_.reset();
    blobs_.reset();
    bus_.reset();
    temp_.reset();
  }

  // Stores `content` in the blob store; its id ("" after a failed expectation).
  std::string Put(const std::string& content) {
    auto id = blobs_->Put(content);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.value_or("");
  }

  std::filesystem::path dir_;
  std::unique_ptr<bus::Bus> bus_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<bus::Producer> producer_;
  std::unique_ptr<bus::Consumer> reader_;

 private:
  std::unique_ptr<TempDir> temp_;
};

}  // namespace faxflow::testing
