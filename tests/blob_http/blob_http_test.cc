// BlobServer + OpenHttpBlobStore against a real RocksBlobStore in a temp dir, on free loopback
// ports. What a worker cares about: the bytes it gets are the bytes that were put, errors come
// back typed (so retry/permanent/fatal handling works), and a faulty server cannot hand it the
// wrong page.
#include "storage/blob_http.h"

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>

#include "common/metrics.h"
#include "storage/rocks_blob_store.h"

namespace faxflow {
namespace {

using namespace std::chrono_literals;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "faxflow-blobhttp-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

// A running BlobServer over a RocksBlobStore, plus client options pointing at it.
class BlobServerFixture {
 public:
  explicit BlobServerFixture(BlobServerOptions server_options = {}, RocksBlobStoreOptions store_options = {}) {
    auto store = RocksBlobStore::Open(dir_.Sub("blobs"), store_options, [] { return int64_t{1000}; });
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    if (!store.ok()) return;
    store_ = std::move(*store);
    server_ = std::make_unique<BlobServer>(*store_, std::move(server_options), &registry_);
    Status s = server_->Start("127.0.0.1", 0);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }

  HttpBlobStoreOptions ClientOptions() const {
    HttpBlobStoreOptions o;
    o.url = "http://127.0.0.1:" + std::to_string(server_->port());
    o.retries = 2;
    o.backoff_initial_ms = 10;
    o.connect_timeout_ms = 1000;
    o.io_timeout_ms = 10000;
    return o;
  }

  std::unique_ptr<BlobStore> Client(const std::string& token = "") const {
    HttpBlobStoreOptions o = ClientOptions();
    o.token = token;
    auto c = OpenHttpBlobStore(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }

  httplib::Client Raw() const { return httplib::Client("127.0.0.1", server_->port()); }

  RocksBlobStore& store() { return *store_; }
  BlobServer& server() { return *server_; }
  MetricsRegistry& registry() { return registry_; }

 private:
  TempDir dir_;
  MetricsRegistry registry_;
  std::unique_ptr<RocksBlobStore> store_;
  std::unique_ptr<BlobServer> server_;
};

TEST(BlobHttpTest, BinaryContentRoundTripsAndLandsInTheServersStore) {
  BlobServerFixture f;
  auto client = f.Client();
  ASSERT_NE(client, nullptr);

  std::string with_nuls("\0a\0\0b\xff\x00\r\n", 9);
  for (int i = 0; i < 256; ++i) with_nuls.push_back(static_cast<char>(i));
  const std::vector<std::string> contents = {with_nuls, RandomBytes(50 * 1024, 1), RandomBytes(5 * 1024 * 1024, 2),
                                             std::string()};
  for (const std::string& content : contents) {
    auto id = client->Put(content);
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    EXPECT_EQ(*id, BlobId(content));
    auto got = client->Get(*id);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->size(), content.size());
    EXPECT_TRUE(*got == content) << "content differs after the round trip (" << content.size() << " bytes)";
    // The server really stored it in its RocksDB store.
    auto direct = f.store().Get(*id);
    ASSERT_TRUE(direct.ok()) << direct.status().ToString();
    EXPECT_TRUE(*direct == content);
  }
}

TEST(BlobHttpTest, IdenticalContentIsStoredOnce) {
  BlobServerFixture f;
  auto client = f.Client();
  ASSERT_NE(client, nullptr);
  const std::string page = RandomBytes(50 * 1024, 7);

  // The wire answer tells new (201) from already stored (200).
  auto raw = f.Raw();
  auto first = raw.Put("/v1/blobs", page, "application/octet-stream");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 201);
  auto second = raw.Put("/v1/blobs", page, "application/octet-stream");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 200);
  EXPECT_EQ(first->body, second->body);
  EXPECT_NE(first->body.find(BlobId(page)), std::string::npos) << first->body;

  auto a = client->Put(page);
  auto b = client->Put(page);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  auto stats = f.store().Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->blobs, 1);
  EXPECT_EQ(stats->content_bytes, static_cast<int64_t>(page.size()));
}

TEST(BlobHttpTest, ExistsAndNotFound) {
  BlobServerFixture f;
  auto client = f.Client();
  ASSERT_NE(client, nullptr);
  auto id = client->Put("present");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  auto yes = client->Exists(*id);
  ASSERT_TRUE(yes.ok()) << yes.status().ToString();
  EXPECT_TRUE(*yes);

  const std::string absent = BlobId("never put");
  auto no = client->Exists(absent);
  ASSERT_TRUE(no.ok()) << no.status().ToString();
  EXPECT_FALSE(*no);

  auto missing = client->Get(absent);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_TRUE(missing.status().permanent());
}

TEST(BlobHttpTest, MalformedIdIsInvalidArgument) {
  BlobServerFixture f;
  auto client = f.Client();
  ASSERT_NE(client, nullptr);
  std::string upper = BlobId("x");
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const std::string& bad : {std::string("abc"), upper, std::string("../../etc/passwd"), std::string()}) {
    auto got = client->Get(bad);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), Code::kInvalidArgument) << bad;
    EXPECT_TRUE(got.status().permanent());
    auto exists = client->Exists(bad);
    ASSERT_FALSE(exists.ok());
    EXPECT_EQ(exists.status().code(), Code::kInvalidArgument) << bad;
  }
  // The server refuses them too (for clients that do not check).
  auto raw = f.Raw();
  auto get = raw.Get("/v1/blobs/" + upper);
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 400);
  auto head = raw.Head("/v1/blobs/abc");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 400);
}

TEST(BlobHttpTest, TokenIsRequiredWhenConfigured) {
  BlobServerOptions so;
  so.token = "s3cret-token";
  BlobServerFixture f(so);

  for (const std::string& token : {std::string(), std::string("wrong"), std::string("s3cret-token-and-more")}) {
    auto client = f.Client(token);
    ASSERT_NE(client, nullptr);
    auto put = client->Put("needs auth");
    ASSERT_FALSE(put.ok()) << "token '" << token << "'";
    EXPECT_EQ(put.status().code(), Code::kUnauthenticated);
    EXPECT_TRUE(put.status().permanent());
    auto get = client->Get(BlobId("needs auth"));
    ASSERT_FALSE(get.ok());
    EXPECT_EQ(get.status().code(), Code::kUnauthenticated);
    auto exists = client->Exists(BlobId("needs auth"));
    ASSERT_FALSE(exists.ok());
    EXPECT_EQ(exists.status().code(), Code::kUnauthenticated);
  }
  auto exists_direct = f.store().Exists(BlobId("needs auth"));
  ASSERT_TRUE(exists_direct.ok());
  EXPECT_FALSE(*exists_direct) << "an unauthenticated Put reached the store";

  auto client = f.Client("s3cret-token");
  auto id = client->Put("needs auth");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  auto got = client->Get(*id);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, "needs auth");

  // A refused upload must not poison a kept-alive connection for the next request.
  auto raw_keep_alive = f.Raw();
  raw_keep_alive.set_keep_alive(true);
  auto refused = raw_keep_alive.Put("/v1/blobs", "tiny", "application/octet-stream");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 401);
  auto after = raw_keep_alive.Get("/healthz");
  ASSERT_TRUE(after) << httplib::to_string(after.error());
  EXPECT_EQ(after->status, 200) << after->body << " " << refused->get_header_value("Connection");

  // Default deny: any other path needs the token too.
  auto other = f.Raw().Get("/v2/anything");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 401);

  // Health checks do not need the token.
  auto health = f.Raw().Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_TRUE(PingBlobServer(f.ClientOptions()).ok());
}

TEST(BlobHttpTest, ServerDownIsUnavailableAfterBoundedRetries) {
  int port = 0;
  {
    BlobServerFixture f;
    port = f.server().port();
  }  // server stopped: nothing listens on `port` any more
  HttpBlobStoreOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(port);
  o.retries = 3;
  o.backoff_initial_ms = 20;
  o.backoff_max_ms = 50;
  o.connect_timeout_ms = 500;
  std::vector<int64_t> waits;
  o.sleep = [&](std::chrono::milliseconds d) {
    waits.push_back(d.count());
    std::this_thread::sleep_for(d);
  };
  auto client = OpenHttpBlobStore(o);
  ASSERT_TRUE(client.ok()) << client.status().ToString();

  const auto start = std::chrono::steady_clock::now();
  auto put = (*client)->Put("nobody home");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.status().code(), Code::kUnavailable);
  EXPECT_TRUE(put.status().retryable());
  EXPECT_LT(elapsed, 3s);
  EXPECT_EQ(waits, (std::vector<int64_t>{20, 40, 50}));  // 3 retries, doubling, capped

  auto get = (*client)->Get(BlobId("x"));
  ASSERT_FALSE(get.ok());
  EXPECT_EQ(get.status().code(), Code::kUnavailable);
  auto exists = (*client)->Exists(BlobId("x"));
  ASSERT_FALSE(exists.ok());
  EXPECT_EQ(exists.status().code(), Code::kUnavailable);
  EXPECT_FALSE(PingBlobServer(o).ok());
}

TEST(BlobHttpTest, RetriesBridgeAServerRestart) {
  TempDir dir;
  auto store = RocksBlobStore::Open(dir.Sub("blobs"), {}, [] { return int64_t{1}; });
  ASSERT_TRUE(store.ok());
  int port = 0;
  {
    BlobServer probe(**store, {}, nullptr);
    ASSERT_TRUE(probe.Start("127.0.0.1", 0).ok());
    port = probe.port();
  }
  // The server comes (back) up while the client waits before its first retry.
  BlobServer server(**store, {}, nullptr);
  HttpBlobStoreOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(port);
  o.retries = 2;
  o.sleep = [&](std::chrono::milliseconds) {
    if (server.port() < 0) {
      EXPECT_TRUE(server.Start("127.0.0.1", port).ok());
    }
  };
  auto client = OpenHttpBlobStore(o);
  ASSERT_TRUE(client.ok());
  auto id = (*client)->Put("after restart");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, BlobId("after restart"));
}

// A server that lies: wrong ids for PUT, wrong bytes for GET, and 503 on HEAD.
class TamperingServer {
 public:
  TamperingServer() {
    srv_.Put("/v1/blobs", [](const httplib::Request&, httplib::Response& res) {
      res.status = 201;
      res.set_content("{\"id\": \"" + BlobId("something else") + "\"}", "application/json");
    });
    srv_.Get(R"(/v1/blobs/([0-9a-f]+))", [this](const httplib::Request& req, httplib::Response& res) {
      if (req.method == "HEAD") {
        ++heads_;
        res.status = 503;
        return;
      }
      if (req.matches[1] == BlobId("flagged")) {
        res.status = 500;
        res.set_content(R"({"code":"corruption","severity":"fatal","message":"checksum mismatch"})",
                        "application/json");
        return;
      }
      res.set_content(std::string("tampered\0bytes", 14), "application/octet-stream");
    });
    port_ = srv_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { srv_.listen_after_bind(); });
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!srv_.is_running() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  }
  ~TamperingServer() {
    srv_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  int heads() const { return heads_.load(); }

 private:
  httplib::Server srv_;
  std::thread thread_;
  int port_ = -1;
  std::atomic<int> heads_{0};
};

TEST(BlobHttpTest, TamperingServerIsCorruption) {
  TamperingServer liar;
  HttpBlobStoreOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(liar.port());
  o.retries = 2;
  o.sleep = [](std::chrono::milliseconds) {};
  auto client = OpenHttpBlobStore(o);
  ASSERT_TRUE(client.ok());

  auto put = (*client)->Put("my page");
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.status().code(), Code::kCorruption);
  EXPECT_TRUE(put.status().fatal());

  auto get = (*client)->Get(BlobId("my page"));
  ASSERT_FALSE(get.ok());
  EXPECT_EQ(get.status().code(), Code::kCorruption);
  EXPECT_TRUE(get.status().fatal());

  auto flagged = (*client)->Get(BlobId("flagged"));
  ASSERT_FALSE(flagged.ok());
  EXPECT_EQ(flagged.status().code(), Code::kCorruption) << flagged.status().ToString();
  EXPECT_TRUE(flagged.status().fatal());

  // 503 is retried (1 + 2 retries), then reported as retryable.
  auto exists = (*client)->Exists(BlobId("my page"));
  ASSERT_FALSE(exists.ok());
  EXPECT_EQ(exists.status().code(), Code::kUnavailable);
  EXPECT_TRUE(exists.status().retryable());
  EXPECT_EQ(liar.heads(), 3);
}

TEST(BlobHttpTest, DamagedContentInTheServersStoreIsCaughtByTheClient) {
  BlobServerFixture f;  // the store does not verify on Get: the client must
  auto client = f.Client();
  auto id = client->Put("original page");
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(f.store().OverwriteContentForTest(*id, "bit rot").ok());
  auto got = client->Get(*id);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Code::kCorruption);
  EXPECT_TRUE(got.status().fatal());
}

TEST(BlobHttpTest, OversizedPutIsResourceExhausted) {
  BlobServerOptions so;
  so.max_body_bytes = 1 << 20;
  BlobServerFixture f(so);
  auto client = f.Client();
  auto put = client->Put(RandomBytes(2 << 20, 3));
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.status().code(), Code::kResourceExhausted) << put.status().ToString();
  EXPECT_TRUE(put.status().permanent());
  auto small = client->Put(RandomBytes(512 << 10, 4));
  EXPECT_TRUE(small.ok()) << small.status().ToString();
}

TEST(BlobHttpTest, ConcurrentPutGetFromEightThreads) {
  BlobServerFixture f;
  auto client = f.Client();
  ASSERT_NE(client, nullptr);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Half the content is shared by all threads (a broadcast's pages), half is private.
        const uint32_t seed = (i % 2 == 0) ? static_cast<uint32_t>(i) : static_cast<uint32_t>(1000 + t * 100 + i);
        const std::string content = RandomBytes(20 * 1024 + static_cast<size_t>(i), seed);
        auto id = client->Put(content);
        if (!id.ok() || *id != BlobId(content)) {
          ++failures;
          ADD_FAILURE() << "put: " << id.status().ToString();
          continue;
        }
        auto got = client->Get(*id);
        if (!got.ok() || *got != content) {
          ++failures;
          ADD_FAILURE() << "get: " << got.status().ToString();
        }
        auto exists = client->Exists(*id);
        if (!exists.ok() || !*exists) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  auto stats = f.store().Stats();
  ASSERT_TRUE(stats.ok());
  // 13 shared contents (even i < 25) + 8 threads x 12 private ones.
  EXPECT_EQ(stats->blobs, 13 + kThreads * 12);
}

TEST(BlobHttpTest, MetricsCountRequestsByMethodAndCode) {
  BlobServerFixture f;
  auto client = f.Client();
  ASSERT_TRUE(client->Put("m").ok());
  ASSERT_TRUE(client->Put("m").ok());
  ASSERT_FALSE(client->Get(BlobId("absent")).ok());
  // httplib counts a request (its logger hook) just after the answer went out: await it.
  const std::vector<std::string> expected = {
      R"(faxflow_blob_server_requests_total{code="201",method="PUT"} 1)",
      R"(faxflow_blob_server_requests_total{code="200",method="PUT"} 1)",
      R"(faxflow_blob_server_requests_total{code="404",method="GET"} 1)"};
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  auto all_present = [&] {
    text = SerializeMetrics(f.registry());
    return std::all_of(expected.begin(), expected.end(),
                       [&](const std::string& line) { return text.find(line) != std::string::npos; });
  };
  while (!all_present() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(all_present()) << text;
}

TEST(BlobHttpTest, PooledConnectionClosedByServerIsReplacedWithoutARetry) {
  BlobServerOptions so;
  so.keep_alive_timeout_seconds = 1;
  BlobServerFixture f(so);
  HttpBlobStoreOptions o = f.ClientOptions();
  std::atomic<int> waits{0};
  o.sleep = [&](std::chrono::milliseconds) { ++waits; };
  auto client = OpenHttpBlobStore(o);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE((*client)->Put("first").ok());
  // Outlive the server's keep-alive timeout: it closes the pooled connection (no condition to
  // await from here; the close happens inside the server).
  std::this_thread::sleep_for(1500ms);
  auto id = (*client)->Put("second");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(waits.load(), 0) << "a stale pooled connection cost a retry";
}

TEST(BlobHttpTest, SmallPutIsNotDelayedByNagle) {
  // Regression: without TCP_NODELAY each Put waited for a delayed ACK (>= 40 ms on Linux), which
  // caps a render worker at ~20 pages/s. Store fsync is off here so only the transport counts.
  RocksBlobStoreOptions no_sync;
  no_sync.sync = false;
  BlobServerFixture f({}, no_sync);
  auto client = f.Client();
  ASSERT_NE(client, nullptr);
  std::vector<double> ms;
  for (int i = 0; i < 21; ++i) {
    const std::string page = RandomBytes(50 * 1024, 300 + static_cast<uint32_t>(i));
    const auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(client->Put(page).ok());
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(ms.begin(), ms.end());
  EXPECT_LT(ms[ms.size() / 2], 25.0) << "median Put of a 50 KB page over loopback";
}

TEST(BlobHttpTest, GarbageCollectionBelongsToTheServer) {
  BlobServerFixture f;
  auto client = f.Client();
  auto gc = client->CollectGarbage(1 << 30, [](std::string_view) { return false; });
  ASSERT_FALSE(gc.ok());
  EXPECT_EQ(gc.status().code(), Code::kFailedPrecondition);
}

TEST(BlobHttpTest, UrlIsValidated) {
  for (const std::string& url : {std::string("127.0.0.1:9470"), std::string("ftp://host/"), std::string(""),
                                 std::string("http://"), std::string("http://u:p@host:1/"), std::string("http://host:1/?q=1")}) {
    HttpBlobStoreOptions o;
    o.url = url;
    auto c = OpenHttpBlobStore(o);
    ASSERT_FALSE(c.ok()) << url;
    EXPECT_EQ(c.status().code(), Code::kInvalidArgument);
  }
  HttpBlobStoreOptions o;
  o.url = "http://blobs.internal:9470/";
  EXPECT_TRUE(OpenHttpBlobStore(o).ok());
}

TEST(BlobHttpTest, PathPrefixInUrlIsHonoured) {
  // A reverse proxy mounting the server under /blobs is emulated by a tiny server at that path.
  httplib::Server proxy;
  std::atomic<int> hits{0};
  proxy.Get(R"(/blobs/v1/blobs/([0-9a-f]{64}))", [&](const httplib::Request& req, httplib::Response& res) {
    ++hits;
    res.status = req.matches[1] == BlobId("via proxy") ? 200 : 404;
  });
  const int port = proxy.bind_to_any_port("127.0.0.1");
  std::thread th([&] { proxy.listen_after_bind(); });
  while (!proxy.is_running()) std::this_thread::sleep_for(1ms);
  HttpBlobStoreOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(port) + "/blobs/";
  auto c = OpenHttpBlobStore(o);
  ASSERT_TRUE(c.ok());
  std::unique_ptr<BlobStore> store = std::move(*c);
  auto e = store->Exists(BlobId("via proxy"));
  store.reset();  // closes the kept-alive connection so stop() need not wait for its timeout
  proxy.stop();
  th.join();
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_TRUE(*e);
  EXPECT_EQ(hits.load(), 1);
}

}  // namespace
}  // namespace faxflow
