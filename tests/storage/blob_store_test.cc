// RocksBlobStore against a real RocksDB in a temporary directory.
#include "storage/blob_store.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "storage/metrics.h"
#include "storage/rocks_blob_store.h"
#include "tests/storage/test_util.h"

namespace faxflow {
namespace {

using storage_test::CrashChild;
using storage_test::TempDir;

std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

// Same generator as crash_child.cc.
std::string ChildContentFor(int i) {
  std::string content(10000 + (i % 7) * 1000, '\0');
  for (size_t k = 0; k < content.size(); ++k) content[k] = static_cast<char>((i * 131 + static_cast<int>(k)) % 251);
  return content;
}

class BlobStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<RocksBlobStore> Open(RocksBlobStoreOptions options = {}, StorageMetrics* metrics = nullptr) {
    auto store = RocksBlobStore::Open(dir_.Sub("blobs"), options, [this] { return now_ms_.load(); }, metrics);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  TempDir dir_;
  std::atomic<int64_t> now_ms_{1'000'000};
};

TEST(Sha256HexTest, MatchesKnownVectors) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Reference values from an independent implementation (the `blake3` Python package, Rust core);
// the 50 KB input crosses the chunk and SIMD-lane boundaries the short ones do not.
TEST(BlobIdTest, IsLowercaseHexBlake3) {
  EXPECT_EQ(BlobId(""), "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
  EXPECT_EQ(BlobId("abc"), "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
  EXPECT_EQ(BlobId(std::string(1000000, 'a')), "616f575a1b58d4c9797d4217b9730ae5e6eb319d76edef6549b46f4efe31ff8b");
  std::string page;
  for (int r = 0; r < 204; ++r) {
    for (int b = 0; b < 251; ++b) page.push_back(static_cast<char>(b));
  }
  ASSERT_EQ(page.size(), 51204u);
  EXPECT_EQ(BlobId(page), "cb2e68cdf37bc5cdf65d99331aacc786ca5d21007bff299fa30016115c9aa0c5");
  EXPECT_NE(BlobId("abc"), Sha256Hex("abc"));
}

TEST_F(BlobStoreTest, PutReturnsTheBlake3IdOfTheContent) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto id = store->Put("%PDF-1.4 tiny");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, BlobId("%PDF-1.4 tiny"));
}

TEST(IsBlobIdTest, AcceptsOnlyLowercaseHex64) {
  EXPECT_TRUE(IsBlobId(BlobId("abc")));
  EXPECT_FALSE(IsBlobId("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
  EXPECT_FALSE(IsBlobId(BlobId("abc").substr(1)));
  EXPECT_FALSE(IsBlobId(BlobId("abc") + "0"));
  EXPECT_FALSE(IsBlobId(std::string(63, 'a') + "g"));
  EXPECT_FALSE(IsBlobId(""));
  EXPECT_FALSE(IsBlobId("../../etc/passwd"));
}

TEST_F(BlobStoreTest, RoundTripsBinaryContentOfEverySize) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  std::string all_bytes;
  for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
  const std::vector<std::string> contents = {
      std::string(),                          // empty
      all_bytes,                              // small, stored inline (below min_blob_size)
      std::string("\0\0\0nul\0", 7),
      RandomBytes(50 * 1024, 1),              // a fax page
      RandomBytes(5 * 1024 * 1024, 2),        // a large source document
  };
  for (const std::string& content : contents) {
    auto id = store->Put(content);
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    EXPECT_EQ(*id, BlobId(content));
    auto exists = store->Exists(*id);
    ASSERT_TRUE(exists.ok());
    EXPECT_TRUE(*exists);
    auto got = store->Get(*id);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->size(), content.size());
    EXPECT_TRUE(*got == content);
  }
  // Still readable once everything is in SST and blob files.
  ASSERT_TRUE(store->Flush().ok());
  for (const std::string& content : contents) {
    auto got = store->Get(BlobId(content));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_TRUE(*got == content);
  }
}

TEST_F(BlobStoreTest, IdenticalContentIsStoredOnce) {
  MetricsRegistry registry;
  StorageMetrics metrics(registry);
  auto store = Open({}, &metrics);
  ASSERT_NE(store, nullptr);
  const std::string page = RandomBytes(1024 * 1024, 3);
  // 20 puts of one page from 4 threads at once (a broadcast's page put by several workers).
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        auto id = store->Put(page);
        if (!id.ok() || *id != BlobId(page)) failures.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(store->Put("other content").ok());

  ASSERT_TRUE(store->Flush().ok());
  auto stats = store->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->blobs, 2);
  EXPECT_EQ(stats->content_bytes, static_cast<int64_t>(page.size() + std::string("other content").size()));
  // One copy on disk, not 20: the blob files hold the page once (plus record headers).
  EXPECT_GE(stats->blob_file_bytes, page.size());
  EXPECT_LT(stats->blob_file_bytes, 2 * page.size());
  EXPECT_EQ(metrics.blob_puts_stored.Value(), 2);
  EXPECT_EQ(metrics.blob_puts_deduplicated.Value(), 19);
  EXPECT_EQ(metrics.blob_stored_bytes.Value(), static_cast<double>(page.size() + 13));
}

TEST_F(BlobStoreTest, InvalidIdsAreRejectedAsPermanentInvalidArgument) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const std::string valid = BlobId("abc");
  std::string upper = valid;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const std::string& bad : {std::string("nope"), upper, valid.substr(0, 63), std::string("../x")}) {
    auto got = store->Get(bad);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), Code::kInvalidArgument) << bad;
    EXPECT_TRUE(got.status().permanent());
    auto exists = store->Exists(bad);
    ASSERT_FALSE(exists.ok());
    EXPECT_EQ(exists.status().code(), Code::kInvalidArgument);
  }
}

TEST_F(BlobStoreTest, MissingBlobIsPermanentNotFound) {
  MetricsRegistry registry;
  StorageMetrics metrics(registry);
  auto store = Open({}, &metrics);
  ASSERT_NE(store, nullptr);
  const std::string id = BlobId("never stored");
  auto got = store->Get(id);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Code::kNotFound);
  EXPECT_TRUE(got.status().permanent());
  auto exists = store->Exists(id);
  ASSERT_TRUE(exists.ok());
  EXPECT_FALSE(*exists);
  EXPECT_EQ(metrics.blob_gets_not_found.Value(), 1);
}

TEST_F(BlobStoreTest, DataSurvivesCloseAndReopen) {
  const std::string page = RandomBytes(50 * 1024, 4);
  std::string id;
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    auto put = store->Put(page);
    ASSERT_TRUE(put.ok());
    id = *put;
  }
  now_ms_ = 2'000'000;
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto got = store->Get(id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(*got == page);
  auto info = store->Info(id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->size, static_cast<int64_t>(page.size()));
  EXPECT_EQ(info->last_put_ms, 1'000'000);
}

TEST_F(BlobStoreTest, SecondOpenOfTheSamePathFailsWhileTheFirstIsOpen) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto second = RocksBlobStore::Open(dir_.Sub("blobs"), {}, [] { return int64_t{0}; });
  ASSERT_FALSE(second.ok());
  EXPECT_FALSE(second.status().message().empty());
}

TEST_F(BlobStoreTest, VerifyOnGetDetectsContentThatDoesNotMatchItsId) {
  RocksBlobStoreOptions options;
  options.verify_on_get = true;
  MetricsRegistry registry;
  StorageMetrics metrics(registry);
  auto store = Open(options, &metrics);
  ASSERT_NE(store, nullptr);
  const std::string page = RandomBytes(50 * 1024, 5);
  auto id = store->Put(page);
  ASSERT_TRUE(id.ok());
  std::string tampered = page;
  tampered[1234] ^= 0x01;
  ASSERT_TRUE(store->OverwriteContentForTest(*id, tampered).ok());
  auto got = store->Get(*id);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Code::kCorruption);
  EXPECT_TRUE(got.status().fatal());
  EXPECT_EQ(metrics.blob_gets_corrupt.Value(), 1);
}

TEST_F(BlobStoreTest, BitRotInABlobFileIsReportedAsCorruption) {
  const std::string page = RandomBytes(50 * 1024, 6);
  std::string id;
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    auto put = store->Put(page);
    ASSERT_TRUE(put.ok());
    id = *put;
    ASSERT_TRUE(store->Flush().ok());
  }
  // Flip one byte in the middle of the (only) blob file, i.e. inside the page's bytes.
  std::vector<std::filesystem::path> blob_files;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.Sub("blobs"))) {
    if (entry.path().extension() == ".blob") blob_files.push_back(entry.path());
  }
  ASSERT_EQ(blob_files.size(), 1u);
  {
    std::fstream file(blob_files[0], std::ios::in | std::ios::out | std::ios::binary);
    const auto size = std::filesystem::file_size(blob_files[0]);
    ASSERT_GT(size, page.size());
    file.seekg(static_cast<std::streamoff>(size / 2));
    char c = 0;
    file.read(&c, 1);
    c = static_cast<char>(c ^ 0x40);
    file.seekp(static_cast<std::streamoff>(size / 2));
    file.write(&c, 1);
  }
  auto store = Open();  // verify_on_get off: RocksDB's blob record checksum still catches it
  ASSERT_NE(store, nullptr);
  auto got = store->Get(id);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Code::kCorruption) << got.status().ToString();
  EXPECT_TRUE(got.status().fatal());
}

TEST_F(BlobStoreTest, GarbageCollectionDeletesOnlyOldUnreferencedBlobs) {
  MetricsRegistry registry;
  StorageMetrics metrics(registry);
  auto store = Open({}, &metrics);
  ASSERT_NE(store, nullptr);
  now_ms_ = 1000;
  const std::string old_unreferenced = RandomBytes(50 * 1024, 10);
  const std::string old_referenced = RandomBytes(50 * 1024, 11);
  const std::string old_but_put_again = RandomBytes(50 * 1024, 12);
  const std::string small_old = "tiny";
  for (const auto* c : {&old_unreferenced, &old_referenced, &old_but_put_again, &small_old}) {
    ASSERT_TRUE(store->Put(*c).ok());
  }
  now_ms_ = 5000;
  const std::string recent = RandomBytes(50 * 1024, 13);
  ASSERT_TRUE(store->Put(recent).ok());
  now_ms_ = 6000;
  ASSERT_TRUE(store->Put(old_but_put_again).ok());  // refreshes its last put time
  auto info = store->Info(BlobId(old_but_put_again));
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->last_put_ms, 6000);

  const std::string referenced_id = BlobId(old_referenced);
  std::set<std::string> asked;
  auto deleted = store->CollectGarbage(3000, [&](std::string_view id) {
    asked.insert(std::string(id));
    return id == referenced_id;
  });
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  EXPECT_EQ(*deleted, 2);  // old_unreferenced and small_old
  // Only blobs older than the cutoff are offered to the predicate.
  EXPECT_EQ(asked, (std::set<std::string>{BlobId(old_unreferenced), referenced_id, BlobId(small_old)}));

  for (const auto* gone : {&old_unreferenced, &small_old}) {
    auto got = store->Get(BlobId(*gone));
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), Code::kNotFound);
    EXPECT_FALSE(store->Exists(BlobId(*gone)).value_or(true));
  }
  for (const auto* kept : {&old_referenced, &old_but_put_again, &recent}) {
    auto got = store->Get(BlobId(*kept));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_TRUE(*got == *kept);
  }
  auto stats = store->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->blobs, 3);
  EXPECT_EQ(metrics.blob_gc_deleted.Value(), 2);

  // Nothing left to collect at the same cutoff; a deleted blob can be stored again.
  auto again = store->CollectGarbage(3000, [&](std::string_view id) { return id == referenced_id; });
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0);
  ASSERT_TRUE(store->Put(old_unreferenced).ok());
  auto got = store->Get(BlobId(old_unreferenced));
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(*got == old_unreferenced);
  ASSERT_TRUE(store->Compact().ok());
  auto after_compaction = store->Get(BlobId(recent));
  ASSERT_TRUE(after_compaction.ok());
  EXPECT_TRUE(*after_compaction == recent);
}

TEST_F(BlobStoreTest, PutRacingGarbageCollectionNeverLosesAnAcknowledgedBlob) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  now_ms_ = 1000;
  std::vector<std::string> contents;
  for (int i = 0; i < 200; ++i) contents.push_back(RandomBytes(8 * 1024, 100 + static_cast<uint32_t>(i)));
  for (const auto& c : contents) ASSERT_TRUE(store->Put(c).ok());
  now_ms_ = 10'000;
  // GC with a cutoff after every existing put, while another thread re-puts the even ones (a
  // new submission of the same document). Every re-put that returned must still be readable.
  std::thread putter([&] {
    for (size_t i = 0; i < contents.size(); i += 2) ASSERT_TRUE(store->Put(contents[i]).ok());
  });
  auto deleted = store->CollectGarbage(5000, [](std::string_view) { return false; });
  putter.join();
  ASSERT_TRUE(deleted.ok());
  EXPECT_GE(*deleted, 100);
  for (size_t i = 0; i < contents.size(); i += 2) {
    auto got = store->Get(BlobId(contents[i]));
    ASSERT_TRUE(got.ok()) << "blob " << i << ": " << got.status().ToString();
  }
}

TEST_F(BlobStoreTest, EveryAcknowledgedPutSurvivesKillMinus9) {
  const std::string path = dir_.Sub("blobs");
  CrashChild child({"blob", path});
  ASSERT_TRUE(child.WaitForLines(150, std::chrono::seconds(60))) << "child acknowledged " << child.lines().size();
  const int status = child.Kill();
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  auto store = Open();
  ASSERT_NE(store, nullptr);
  for (const std::string& line : child.lines()) {
    const int i = std::stoi(line);
    const std::string content = ChildContentFor(i);
    auto got = store->Get(BlobId(content));
    ASSERT_TRUE(got.ok()) << "acknowledged blob " << i << ": " << got.status().ToString();
    EXPECT_TRUE(*got == content);
  }
}

TEST(OpenRocksBlobStoreTest, ReturnsAWorkingInterfaceAndRejectsAMissingClock) {
  TempDir dir;
  auto store = OpenRocksBlobStore(dir.Sub("b"), {}, [] { return int64_t{1}; });
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto id = (*store)->Put("abc");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
  auto no_clock = OpenRocksBlobStore(dir.Sub("c"), {}, nullptr);
  ASSERT_FALSE(no_clock.ok());
  EXPECT_EQ(no_clock.status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace faxflow
