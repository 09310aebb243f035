// bus_bench: throughput of faxflow's bus backends and blob store against the raw libraries they
// wrap, measured in the same run with the same options, sizes and concurrency.
//
//   embedded.*  EmbeddedBus Produce/ProduceBatch/Poll  vs  rocksdb::DB Put/Write/Iterator
//   blob.*      RocksBlobStore Put/Get of 50 KB pages  vs  rocksdb::DB Put/Get (same CF options)
//   kafka.*     Kafka backend Produce/ProduceBatch/Poll vs librdkafka producev/consumer_poll
//               (skipped, with a JSON "skipped" line, when no broker answers)
//
// Output: one JSON line per result on stdout,
//   {"bench":"...","faxflow":x,"raw":y,"unit":"msg/s","ratio":x/y,"target":0.8,...}
// progress on stderr. bench/run collects the lines into one table.
//
// Each comparison runs raw and faxflow alternately `reps` times (2 with --quick, 3 otherwise;
// fresh directories/topics each time) and keeps the best figure of each side, which filters out
// interference from other processes on a shared machine.
//
// Usage: bus_bench [--quick] [--only SUBSTRING] [--reps N] [--dir DIR] [--bootstrap HOST:PORT]
//                  [--no-kafka] [--kafka-property KEY=VALUE]...
// --kafka-property sets a librdkafka producer property on both sides (faxflow through
// KafkaBusOptions::properties, raw directly), e.g. linger.ms=0 to test a tuning.
#include <librdkafka/rdkafka.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "storage/rocks_blob_store.h"
#include "topics/bus.h"
#include "topics/embedded/codec.h"
#include "topics/embedded/embedded_bus.h"
#include "topics/kafka/kafka_bus.h"

namespace faxflow::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;
namespace fs = std::filesystem;

struct Config {
  bool quick = false;
  std::string only;
  int reps = 0;  // 0: 1 with --quick, 3 otherwise
  std::string dir;
  std::string bootstrap;
  bool kafka = true;
  // Extra librdkafka producer properties for both sides (e.g. linger.ms=0), for experiments.
  std::vector<std::pair<std::string, std::string>> kafka_props;
};

Config g_config;

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "bus_bench: " << what << "\n";
  std::exit(2);
}

void Check(const Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.ToString());
}

void CheckRocks(const rocksdb::Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.ToString());
}

template <typename T>
T Take(Result<T> r, const std::string& what) {
  if (!r.ok()) Die(what + ": " + r.status().ToString());
  return std::move(r).value();
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out;
}

bool Selected(const std::string& name) {
  return g_config.only.empty() || name.find(g_config.only) != std::string::npos;
}

int Reps() { return g_config.reps > 0 ? g_config.reps : (g_config.quick ? 2 : 3); }

// One comparison: faxflow figure, raw figure, same unit, higher is better.
void Emit(const std::string& bench, double faxflow, double raw, const std::string& unit, size_t n,
          size_t bytes, int threads, const std::string& note = "") {
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(1);
  o << "{\"bench\":\"" << JsonEscape(bench) << "\",\"faxflow\":" << faxflow << ",\"raw\":" << raw
    << ",\"unit\":\"" << unit << "\"";
  o.precision(3);
  o << ",\"ratio\":" << (raw > 0 ? faxflow / raw : 0.0) << ",\"target\":0.8";
  o << ",\"n\":" << n << ",\"bytes\":" << bytes << ",\"threads\":" << threads;
  if (!note.empty()) o << ",\"note\":\"" << JsonEscape(note) << "\"";
  o << "}";
  std::cout << o.str() << std::endl;
}

void EmitSkipped(const std::string& bench, const std::string& why) {
  std::cout << "{\"bench\":\"" << JsonEscape(bench) << "\",\"skipped\":\"" << JsonEscape(why) << "\"}"
            << std::endl;
}

// Runs both sides of one repetition; even repetitions start with raw, odd ones with faxflow, so
// that neither side always runs right after the other (broker log flushes, compactions).
void BothSides(int rep, const std::function<void()>& raw, const std::function<void()>& faxflow) {
  if (rep % 2 == 0) {
    raw();
    faxflow();
  } else {
    faxflow();
    raw();
  }
}

// Runs faxflow and raw alternately, keeps the best rate of each, emits one line.
void Compare(const std::string& bench, size_t n, size_t bytes, int threads, const std::function<double()>& faxflow,
             const std::function<double()>& raw, const std::string& note = "") {
  if (!Selected(bench)) return;
  double best_ff = 0, best_raw = 0;
  for (int r = 0; r < Reps(); ++r) {
    double rw = 0, ff = 0;
    BothSides(r, [&] { rw = raw(); }, [&] { ff = faxflow(); });
    std::cerr << "  " << bench << " rep " << r + 1 << ": faxflow " << ff << " raw " << rw << "\n";
    best_ff = std::max(best_ff, ff);
    best_raw = std::max(best_raw, rw);
  }
  Emit(bench, best_ff, best_raw, "msg/s", n, bytes, threads, note);
}

double Seconds(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

// Fresh scratch directory; removed by the destructor.
class ScratchDir {
 public:
  ScratchDir() {
    static int counter = 0;
    path_ = (fs::path(g_config.dir) / ("run-" + std::to_string(getpid()) + "-" + std::to_string(counter++))).string();
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Incompressible payload bytes; Payload(i, size) are distinct for distinct i.
class Payloads {
 public:
  explicit Payloads(size_t max_size, size_t count) : buf_(max_size + count * 8 + 64) {
    std::mt19937_64 rng(42);
    for (auto& c : buf_) c = static_cast<char>(rng());
  }
  std::string Payload(size_t i, size_t size) const { return std::string(buf_.data() + (i * 8) % (buf_.size() - size), size); }

 private:
  std::vector<char> buf_;
};

std::string Key(size_t thread, size_t i) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "key-%02zu-%010zu", thread, i);
  return buf;
}

// Runs body(t) on `threads` threads released together; returns wall seconds.
double RunThreads(int threads, const std::function<void(int)>& body) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      body(t);
    });
  while (ready.load() < threads) std::this_thread::yield();
  const auto start = SteadyClock::now();
  go = true;
  for (auto& th : ts) th.join();
  return Seconds(start);
}

// ------------------------------------------------------------------------------------------
// Embedded bus vs raw RocksDB
// ------------------------------------------------------------------------------------------

constexpr int kEmbeddedPartitions = 4;
const std::string kTopic = "bench";

// The options EmbeddedBus::Open uses (topics/embedded/embedded_bus.cc).
rocksdb::Options EmbeddedRocksOptions() {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.keep_log_file_num = 3;
  o.max_log_file_size = 8 << 20;
  return o;
}

std::unique_ptr<bus::EmbeddedBus> OpenBenchBus(const std::string& dir, bool sync) {
  bus::EmbeddedBusOptions opts;
  opts.sync = sync;
  auto b = Take(bus::EmbeddedBus::Open(dir, opts), "open embedded bus");
  bus::TopicSpec spec;
  spec.name = kTopic;
  spec.partitions = kEmbeddedPartitions;
  spec.max_message_bytes = 16 << 20;
  Check(b->EnsureTopics({spec}), "ensure topics");
  return b;
}

std::unique_ptr<rocksdb::DB> OpenRawDb(const std::string& dir) {
  rocksdb::DB* raw = nullptr;
  CheckRocks(rocksdb::DB::Open(EmbeddedRocksOptions(), dir, &raw), "open raw rocksdb");
  return std::unique_ptr<rocksdb::DB>(raw);
}

// Thread t writes its records to partition t % 4 (single producer: partition 0).
double EmbeddedProduce(const Payloads& p, size_t size, bool sync, int threads, size_t n, size_t batch) {
  ScratchDir dir;
  auto b = OpenBenchBus(dir.path(), sync);
  const size_t per = n / static_cast<size_t>(threads);
  std::vector<std::vector<bus::Message>> msgs(static_cast<size_t>(threads));
  std::vector<std::unique_ptr<bus::Producer>> producers;
  for (int t = 0; t < threads; ++t) {
    producers.push_back(Take(b->NewProducer("bench-" + std::to_string(t)), "new producer"));
    for (size_t i = 0; i < per; ++i) {
      bus::Message m;
      m.topic = kTopic;
      m.key = Key(static_cast<size_t>(t), i);
      m.value = p.Payload(static_cast<size_t>(t) * per + i, size);
      m.partition = t % kEmbeddedPartitions;
      msgs[static_cast<size_t>(t)].push_back(std::move(m));
    }
  }
  const double secs = RunThreads(threads, [&](int t) {
    auto& mine = msgs[static_cast<size_t>(t)];
    auto& producer = *producers[static_cast<size_t>(t)];
    if (batch <= 1) {
      for (const auto& m : mine) Take(producer.Produce(m), "embedded produce");
    } else {
      for (size_t i = 0; i < mine.size(); i += batch) {
        std::vector<bus::Message> chunk(mine.begin() + static_cast<std::ptrdiff_t>(i),
                                        mine.begin() + static_cast<std::ptrdiff_t>(std::min(mine.size(), i + batch)));
        Check(producer.ProduceBatch(chunk), "embedded produce batch");
      }
    }
  });
  return static_cast<double>(per * static_cast<size_t>(threads)) / secs;
}

// Same keys and value bytes as the bus writes (record key r/<topic>/<p><offset>, value = the
// encoded record of the same size), prepared before timing; same WAL sync and concurrency.
double RawProduce(const Payloads& p, size_t size, bool sync, int threads, size_t n, size_t batch) {
  ScratchDir dir;
  auto db = OpenRawDb(dir.path());
  const size_t per = n / static_cast<size_t>(threads);
  std::vector<std::vector<std::pair<std::string, std::string>>> kvs(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    for (size_t i = 0; i < per; ++i) {
      const auto part = t % kEmbeddedPartitions;
      std::string value = bus::embedded::EncodeRecord(1700000000000, Key(static_cast<size_t>(t), i),
                                                      p.Payload(static_cast<size_t>(t) * per + i, size), {});
      kvs[static_cast<size_t>(t)].emplace_back(bus::embedded::RecordKey(kTopic, part, static_cast<int64_t>(i)),
                                               std::move(value));
    }
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  const double secs = RunThreads(threads, [&](int t) {
    auto& mine = kvs[static_cast<size_t>(t)];
    if (batch <= 1) {
      for (const auto& [k, v] : mine) CheckRocks(db->Put(wo, k, v), "raw put");
    } else {
      for (size_t i = 0; i < mine.size(); i += batch) {
        rocksdb::WriteBatch wb;
        for (size_t j = i; j < std::min(mine.size(), i + batch); ++j) wb.Put(mine[j].first, mine[j].second);
        CheckRocks(db->Write(wo, &wb), "raw write batch");
      }
    }
  });
  return static_cast<double>(per * static_cast<size_t>(threads)) / secs;
}

// Writes n records to partition 0 (unsynced), reopens, then reads them all back with a consumer.
double EmbeddedConsume(const Payloads& p, size_t size, size_t n) {
  ScratchDir dir;
  {
    auto b = OpenBenchBus(dir.path(), false);
    auto producer = Take(b->NewProducer("fill"), "new producer");
    std::vector<bus::Message> chunk;
    for (size_t i = 0; i < n; ++i) {
      chunk.push_back({kTopic, Key(0, i), p.Payload(i, size), {}, 0});
      if (chunk.size() == 1000 || i + 1 == n) {
        Check(producer->ProduceBatch(chunk), "fill");
        chunk.clear();
      }
    }
  }
  auto b = OpenBenchBus(dir.path(), false);  // reopened: data in SST files, as after a restart
  auto consumer = Take(b->NewConsumer({"bench", "bench", true}), "new consumer");
  Check(consumer->Assign({{kTopic, 0}}), "assign");
  size_t got = 0;
  size_t bytes = 0;
  const auto start = SteadyClock::now();
  while (got < n) {
    auto records = Take(consumer->Poll(std::chrono::milliseconds(1000), 1000), "poll");
    if (records.empty()) Die("embedded consume: no records after 1 s, got " + std::to_string(got));
    for (const auto& r : records) bytes += r.value.size();
    got += records.size();
  }
  const double secs = Seconds(start);
  if (bytes != n * size) Die("embedded consume: wrong byte count");
  return static_cast<double>(n) / secs;
}

// Same data written raw, reopened, read with one iterator over the partition's key range,
// copying key and value out as a consumer would.
double RawScan(const Payloads& p, size_t size, size_t n) {
  ScratchDir dir;
  {
    auto db = OpenRawDb(dir.path());
    rocksdb::WriteBatch wb;
    for (size_t i = 0; i < n; ++i) {
      wb.Put(bus::embedded::RecordKey(kTopic, 0, static_cast<int64_t>(i)),
             bus::embedded::EncodeRecord(1700000000000, Key(0, i), p.Payload(i, size), {}));
      if (wb.Count() == 1000 || i + 1 == n) {
        CheckRocks(db->Write(rocksdb::WriteOptions(), &wb), "raw fill");
        wb.Clear();
      }
    }
  }
  auto db = OpenRawDb(dir.path());
  const std::string prefix = bus::embedded::PartitionPrefix(kTopic, 0);
  size_t got = 0;
  size_t bytes = 0;
  const auto start = SteadyClock::now();
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(1000);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    out.emplace_back(it->key().ToString(), it->value().ToString());
    bytes += out.back().second.size();
    if (out.size() == 1000) out.clear();
    ++got;
  }
  CheckRocks(it->status(), "raw scan");
  const double secs = Seconds(start);
  if (got != n || bytes < n * size) Die("raw scan: wrong count");
  return static_cast<double>(n) / secs;
}

void RunEmbedded() {
  const bool q = g_config.quick;
  const Payloads p(51200, 200000);
  struct SizeCase {
    size_t size;
    size_t n_sync;
    size_t n_nosync;
  };
  const std::vector<SizeCase> sizes = {
      {100, q ? 300u : 1500u, q ? 100000u : 300000u},
      {1024, q ? 300u : 1500u, q ? 50000u : 150000u},
      {51200, q ? 200u : 1000u, q ? 2000u : 6000u},
  };
  for (const auto& sc : sizes) {
    for (bool sync : {true, false}) {
      for (int threads : {1, 4}) {
        const size_t n = sync ? sc.n_sync * static_cast<size_t>(threads == 1 ? 1 : 2) : sc.n_nosync;
        const std::string name = "embedded.produce." + std::to_string(sc.size) + "B." +
                                 (sync ? "sync" : "nosync") + "." + std::to_string(threads) + "p";
        Compare(name, n, sc.size, threads, [&] { return EmbeddedProduce(p, sc.size, sync, threads, n, 1); },
                [&] { return RawProduce(p, sc.size, sync, threads, n, 1); });
      }
      const size_t n = sync ? sc.n_sync * 20 : sc.n_nosync;
      const std::string name = "embedded.produce_batch100." + std::to_string(sc.size) + "B." + (sync ? "sync" : "nosync");
      Compare(name, n, sc.size, 1, [&] { return EmbeddedProduce(p, sc.size, sync, 1, n, 100); },
              [&] { return RawProduce(p, sc.size, sync, 1, n, 100); });
    }
    const std::string name = "embedded.consume." + std::to_string(sc.size) + "B";
    const size_t n = sc.n_nosync;
    Compare(name, n, sc.size, 1, [&] { return EmbeddedConsume(p, sc.size, n); }, [&] { return RawScan(p, sc.size, n); },
            "raw = rocksdb iterator scan copying key+value");
  }
}

// ------------------------------------------------------------------------------------------
// Blob store vs raw RocksDB (same DB and column family options as storage/rocks_blob_store.cc)
// ------------------------------------------------------------------------------------------

struct RawBlobDb {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  ~RawBlobDb() {
    for (auto* h : cfs) db->DestroyColumnFamilyHandle(h);
  }
};

std::unique_ptr<RawBlobDb> OpenRawBlobDb(const std::string& dir, const RocksBlobStoreOptions& options) {
  // Exactly the store's options and layout, so the ratio measures the store's own work.
  const rocksdb::DBOptions db_options = BlobStoreDbOptions();
  const std::vector<rocksdb::ColumnFamilyDescriptor> families = BlobStoreColumnFamilies(options);
  auto out = std::make_unique<RawBlobDb>();
  rocksdb::DB* raw = nullptr;
  CheckRocks(rocksdb::DB::Open(db_options, dir, families, &out->cfs, &raw), "open raw blob db");
  out->db.reset(raw);
  return out;
}

struct BlobRates {
  double put = 0;
  double get = 0;
};

BlobRates BlobStoreRun(const std::vector<std::string>& pages, bool sync, int threads) {
  ScratchDir dir;
  RocksBlobStoreOptions opts;
  opts.sync = sync;
  auto store = Take(RocksBlobStore::Open(dir.path(), opts, [] { return int64_t{1700000000000}; }), "open blob store");
  std::vector<std::string> ids(pages.size());
  const size_t per = pages.size() / static_cast<size_t>(threads);
  double secs = RunThreads(threads, [&](int t) {
    for (size_t i = static_cast<size_t>(t) * per; i < static_cast<size_t>(t + 1) * per; ++i)
      ids[i] = Take(store->Put(pages[i]), "blob put");
  });
  BlobRates r;
  r.put = static_cast<double>(per * static_cast<size_t>(threads)) / secs;
  Check(store->Flush(), "blob flush");
  std::vector<size_t> order(per * static_cast<size_t>(threads));
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(7));
  size_t bytes = 0;
  const auto start = SteadyClock::now();
  for (size_t i : order) bytes += Take(store->Get(ids[i]), "blob get").size();
  secs = Seconds(start);
  if (bytes != order.size() * pages[0].size()) Die("blob get: wrong bytes");
  r.get = static_cast<double>(order.size()) / secs;
  return r;
}

BlobRates RawBlobRun(const std::vector<std::string>& pages, const std::vector<std::string>& ids, bool sync,
                     int threads) {
  ScratchDir dir;
  RocksBlobStoreOptions opts;
  opts.sync = sync;
  auto db = OpenRawBlobDb(dir.path(), opts);
  rocksdb::ColumnFamilyHandle* blobs = db->cfs[2];
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  const size_t per = pages.size() / static_cast<size_t>(threads);
  double secs = RunThreads(threads, [&](int t) {
    for (size_t i = static_cast<size_t>(t) * per; i < static_cast<size_t>(t + 1) * per; ++i)
      CheckRocks(db->db->Put(wo, blobs, ids[i], pages[i]), "raw blob put");
  });
  BlobRates r;
  r.put = static_cast<double>(per * static_cast<size_t>(threads)) / secs;
  CheckRocks(db->db->Flush(rocksdb::FlushOptions(), db->cfs), "raw flush");
  std::vector<size_t> order(per * static_cast<size_t>(threads));
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(7));
  size_t bytes = 0;
  std::string value;
  const auto start = SteadyClock::now();
  for (size_t i : order) {
    CheckRocks(db->db->Get(rocksdb::ReadOptions(), blobs, ids[i], &value), "raw blob get");
    bytes += value.size();
  }
  secs = Seconds(start);
  if (bytes != order.size() * pages[0].size()) Die("raw blob get: wrong bytes");
  r.get = static_cast<double>(order.size()) / secs;
  return r;
}

void RunBlob() {
  const bool q = g_config.quick;
  const size_t kPage = 51200;
  struct Case {
    bool sync;
    int threads;
    size_t n;
  };
  const std::vector<Case> cases = {{true, 1, q ? 200u : 1000u}, {true, 4, q ? 400u : 2000u}, {false, 1, q ? 2000u : 10000u}};
  const Payloads p(kPage, 20000);
  for (const auto& c : cases) {
    const std::string suffix = std::string(c.sync ? "sync" : "nosync") + "." + std::to_string(c.threads) + "p";
    const std::string put_name = "blob.put.50KB." + suffix;
    const std::string get_name = "blob.get.50KB." + suffix;
    if (!Selected(put_name) && !Selected(get_name)) continue;
    std::vector<std::string> pages;
    std::vector<std::string> ids;
    for (size_t i = 0; i < c.n; ++i) {
      pages.push_back(p.Payload(i, kPage));
      ids.push_back(BlobId(pages.back()));
    }
    BlobRates best_ff, best_raw;
    for (int r = 0; r < Reps(); ++r) {
      BlobRates rw, ff;
      BothSides(r, [&] { rw = RawBlobRun(pages, ids, c.sync, c.threads); },
                [&] { ff = BlobStoreRun(pages, c.sync, c.threads); });
      std::cerr << "  blob." << suffix << " rep " << r + 1 << ": put " << ff.put << "/" << rw.put << " get " << ff.get
                << "/" << rw.get << "\n";
      best_ff.put = std::max(best_ff.put, ff.put);
      best_ff.get = std::max(best_ff.get, ff.get);
      best_raw.put = std::max(best_raw.put, rw.put);
      best_raw.get = std::max(best_raw.get, rw.get);
    }
    if (Selected(put_name))
      Emit(put_name, best_ff.put, best_raw.put, "msg/s", c.n, kPage, c.threads, "raw = Put of precomputed id, same CF options");
    if (Selected(get_name) && c.threads == 1)
      Emit(get_name, best_ff.get, best_raw.get, "msg/s", c.n, kPage, 1, "random order, after flush");
  }
}

// ------------------------------------------------------------------------------------------
// Kafka backend vs raw librdkafka
// ------------------------------------------------------------------------------------------

struct RdKafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using RdKafkaPtr = std::unique_ptr<rd_kafka_t, RdKafkaDeleter>;
struct ConfDeleter {
  void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
};
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const { rd_kafka_topic_partition_list_destroy(l); }
};
using PartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;
struct MessageDeleter {
  void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
};
using MessagePtr = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;

struct DeliveryCounter {
  std::atomic<size_t> ok{0};
  std::atomic<size_t> failed{0};
};

void RawDeliveryCallback(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* c = static_cast<DeliveryCounter*>(opaque);
  (m->err == RD_KAFKA_RESP_ERR_NO_ERROR ? c->ok : c->failed).fetch_add(1);
}

ConfPtr RawConf(const std::vector<std::pair<std::string, std::string>>& props) {
  ConfPtr conf(rd_kafka_conf_new());
  char errstr[512];
  for (const auto& [k, v] : props)
    if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
      Die("rdkafka conf " + k + ": " + errstr);
  return conf;
}

// The producer configuration the backend uses (topics/kafka/kafka_bus.cc NewProducer):
// idempotent, acks=all, librdkafka defaults for linger.ms/batch settings.
RdKafkaPtr RawProducer(DeliveryCounter* counter) {
  std::vector<std::pair<std::string, std::string>> props = {{"bootstrap.servers", g_config.bootstrap},
                                                            {"client.id", "bench-raw-producer"},
                                                            {"message.timeout.ms", "60000"},
                                                            {"message.max.bytes", "25165824"}};
  props.insert(props.end(), g_config.kafka_props.begin(), g_config.kafka_props.end());
  props.push_back({"enable.idempotence", "true"});
  props.push_back({"acks", "all"});
  ConfPtr conf = RawConf(props);
  rd_kafka_conf_set_dr_msg_cb(conf.get(), RawDeliveryCallback);
  rd_kafka_conf_set_opaque(conf.get(), counter);
  char errstr[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), errstr, sizeof errstr);
  if (rk == nullptr) Die(std::string("rd_kafka_new: ") + errstr);
  conf.release();
  return RdKafkaPtr(rk);
}

void RawEnqueue(rd_kafka_t* rk, const std::string& topic, const std::string& key, const std::string& value) {
  while (true) {
// librdkafka's RD_KAFKA_V_* macros use C casts.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
    const rd_kafka_resp_err_t err = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key.data(), key.size()), RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_END);
#pragma GCC diagnostic pop
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) Die(std::string("producev: ") + rd_kafka_err2str(err));
    rd_kafka_poll(rk, 10);
  }
  rd_kafka_poll(rk, 0);  // serve delivery reports as rdkafka_performance does
}

// rdkafka_performance style: enqueue everything, then wait for every delivery report.
double RawKafkaProduceAsync(const std::string& topic, const std::vector<bus::Message>& msgs) {
  DeliveryCounter counter;
  auto rk = RawProducer(&counter);
  const auto start = SteadyClock::now();
  for (const auto& m : msgs) RawEnqueue(rk.get(), topic, m.key, m.value);
  if (rd_kafka_flush(rk.get(), 120000) != RD_KAFKA_RESP_ERR_NO_ERROR) Die("raw flush timed out");
  const double secs = Seconds(start);
  if (counter.ok.load() != msgs.size()) Die("raw produce: delivery failures");
  return static_cast<double>(msgs.size()) / secs;
}

// Same semantics as bus Produce: one record, wait for its delivery report, next record.
double RawKafkaProducePerRecord(const std::string& topic, const std::vector<bus::Message>& msgs) {
  DeliveryCounter counter;
  auto rk = RawProducer(&counter);
  const auto start = SteadyClock::now();
  for (const auto& m : msgs) {
    RawEnqueue(rk.get(), topic, m.key, m.value);
    if (rd_kafka_flush(rk.get(), 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) Die("raw flush timed out");
  }
  const double secs = Seconds(start);
  if (counter.ok.load() != msgs.size()) Die("raw produce: delivery failures");
  return static_cast<double>(msgs.size()) / secs;
}

// Transactions of one record each, committed one after the other (what the imaging worker does
// per run): begin, producev, commit_transaction. Returns transactions/s.
double RawKafkaTransactions(const std::string& topic, const std::vector<bus::Message>& msgs, const std::string& id) {
  std::vector<std::pair<std::string, std::string>> props = {{"bootstrap.servers", g_config.bootstrap},
                                                            {"client.id", "bench-raw-txn"},
                                                            {"transactional.id", id},
                                                            {"message.max.bytes", "25165824"},
                                                            {"linger.ms", "0"},  // as the backend
                                                            {"retry.backoff.ms", "5"}};
  props.insert(props.end(), g_config.kafka_props.begin(), g_config.kafka_props.end());
  ConfPtr conf = RawConf(props);
  // As the backend: a report callback lets commit_transaction's flush wake on the last
  // acknowledgement instead of sleeping out 10 ms poll slices (docs/performance.md, K1).
  DeliveryCounter deliveries;
  rd_kafka_conf_set_dr_msg_cb(conf.get(), RawDeliveryCallback);
  rd_kafka_conf_set_opaque(conf.get(), &deliveries);
  char errstr[512];
  rd_kafka_t* raw = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), errstr, sizeof errstr);
  if (raw == nullptr) Die(std::string("rd_kafka_new txn: ") + errstr);
  conf.release();
  RdKafkaPtr rk(raw);
  auto check = [](rd_kafka_error_t* e, const char* what) {
    if (e != nullptr) {
      const std::string msg = std::string(what) + ": " + rd_kafka_error_string(e);
      rd_kafka_error_destroy(e);
      Die(msg);
    }
  };
  check(rd_kafka_init_transactions(rk.get(), 30000), "init_transactions");
  // Warm: the first transaction also fetches the topic's metadata.
  check(rd_kafka_begin_transaction(rk.get()), "begin");
  RawEnqueue(rk.get(), topic, msgs[0].key, msgs[0].value);
  check(rd_kafka_commit_transaction(rk.get(), 30000), "commit");
  const auto start = SteadyClock::now();
  for (const auto& m : msgs) {
    check(rd_kafka_begin_transaction(rk.get()), "begin");
    RawEnqueue(rk.get(), topic, m.key, m.value);
    check(rd_kafka_commit_transaction(rk.get(), 30000), "commit");
  }
  const double rate = static_cast<double>(msgs.size()) / Seconds(start);
  if (deliveries.failed.load() != 0) Die("raw transactions: delivery failures");
  return rate;
}

std::vector<bus::Message> KafkaMessages(const Payloads& p, const std::string& topic, size_t size, size_t n) {
  std::vector<bus::Message> msgs;
  msgs.reserve(n);
  for (size_t i = 0; i < n; ++i) msgs.push_back({topic, Key(0, i), p.Payload(i, size), {}, 0});
  return msgs;
}

std::vector<bus::Message> Retopic(std::vector<bus::Message> msgs, const std::string& topic) {
  for (auto& m : msgs) m.topic = topic;
  return msgs;
}

// Raw consumer with the backend's consumer settings (read_committed, no auto commit, no EOF).
double RawKafkaConsume(const std::string& topic, size_t n, size_t size, int rep) {
  ConfPtr conf = RawConf({{"bootstrap.servers", g_config.bootstrap},
                          {"client.id", "bench-raw-consumer"},
                          {"group.id", topic + "-raw-" + std::to_string(rep)},
                          {"enable.auto.commit", "false"},
                          {"enable.auto.offset.store", "false"},
                          {"enable.partition.eof", "false"},
                          {"isolation.level", "read_committed"},
                          {"auto.offset.reset", "earliest"}});
  char errstr[512];
  rd_kafka_t* raw = rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), errstr, sizeof errstr);
  if (raw == nullptr) Die(std::string("rd_kafka_new consumer: ") + errstr);
  conf.release();
  RdKafkaPtr rk(raw);
  rd_kafka_poll_set_consumer(rk.get());
  PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), 0)->offset = RD_KAFKA_OFFSET_INVALID;
  const auto start = SteadyClock::now();
  if (rd_kafka_assign(rk.get(), list.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) Die("raw assign");
  size_t got = 0, bytes = 0, header_count = 0;
  while (got < n) {
    MessagePtr m(rd_kafka_consumer_poll(rk.get(), 1000));
    if (!m) {
      if (Seconds(start) > 60) Die("raw consume: timed out at " + std::to_string(got));
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) Die(std::string("raw consume: ") + rd_kafka_message_errstr(m.get()));
    // What any consumer that hands whole records to its application does, and Consumer::Poll
    // does: ask for the headers. For a record without headers librdkafka 2.0 still wraps the
    // one-byte header section in a buffer to read its count, about 1.7 µs per record here
    // (docs/performance.md, B3).
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(m.get(), &headers) == RD_KAFKA_RESP_ERR_NO_ERROR && headers != nullptr)
      header_count += rd_kafka_header_cnt(headers);
    bytes += m->len;
    ++got;
  }
  const double secs = Seconds(start);
  rd_kafka_consumer_close(rk.get());
  if (bytes != n * size) Die("raw consume: wrong bytes");
  if (header_count != 0) Die("raw consume: the bench's records have no headers");
  return static_cast<double>(n) / secs;
}

double FaxflowKafkaConsume(bus::Bus& b, const std::string& topic, size_t n, size_t size, int rep) {
  auto consumer = Take(b.NewConsumer({topic + "-ff-" + std::to_string(rep), "bench-consumer", true}), "kafka consumer");
  const auto start = SteadyClock::now();
  Check(consumer->Assign({{topic, 0}}), "kafka assign");
  size_t got = 0, bytes = 0;
  while (got < n) {
    auto records = Take(consumer->Poll(std::chrono::milliseconds(1000), 1000), "kafka poll");
    if (records.empty() && Seconds(start) > 60) Die("faxflow consume: timed out at " + std::to_string(got));
    for (const auto& r : records) bytes += r.value.size();
    got += records.size();
  }
  const double secs = Seconds(start);
  if (bytes != n * size) Die("faxflow consume: wrong bytes");
  return static_cast<double>(n) / secs;
}

void RunKafka() {
  const std::vector<std::string> names = {"kafka.produce_batch", "kafka.produce", "kafka.consume", "kafka.txn"};
  bool any = Selected("kafka.txn.1024B");
  for (const char* kind : {"produce_batch", "produce", "consume"})
    for (const char* size : {"100B", "1024B", "51200B"})
      any = any || Selected(std::string("kafka.") + kind + "." + size);
  if (!any) return;
  if (!g_config.kafka) {
    for (const auto& n : names) EmitSkipped(n, "disabled with --no-kafka");
    return;
  }
  bus::KafkaBusOptions opts;
  opts.bootstrap = g_config.bootstrap;
  opts.connect_timeout = std::chrono::milliseconds(5000);
  opts.client_id_prefix = "bench";
  for (const auto& [k, v] : g_config.kafka_props) opts.properties[k] = v;
  auto opened = bus::OpenKafkaBus(opts);
  if (!opened.ok()) {
    for (const auto& n : names)
      EmitSkipped(n, "no Kafka broker at " + g_config.bootstrap + " (" + opened.status().message().substr(0, 120) + ")");
    return;
  }
  std::unique_ptr<bus::Bus> b = std::move(opened).value();
  const bool q = g_config.quick;
  const Payloads p(51200, 600000);
  const std::string run = "ffbench-" + std::to_string(getpid()) + "-" +
                          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
  int topic_no = 0;
  auto new_topic = [&](const std::string& label) {
    bus::TopicSpec spec;
    spec.name = run + "-" + label + "-" + std::to_string(topic_no++);
    spec.partitions = 1;
    spec.max_message_bytes = 1 << 20;
    spec.retention_ms = 3600 * 1000;
    Check(b->EnsureTopics({spec}), "create topic " + spec.name);
    return spec.name;
  };
  struct SizeCase {
    size_t size;
    size_t n_async;
    size_t n_per_record;
  };
  const std::vector<SizeCase> sizes = {
      {100, q ? 100000u : 500000u, q ? 200u : 1000u},
      {1024, q ? 50000u : 200000u, q ? 200u : 1000u},
      {51200, q ? 2000u : 10000u, q ? 100u : 500u},
  };
  for (const auto& sc : sizes) {
    const std::string sz = std::to_string(sc.size) + "B";
    // Throughput path: ProduceBatch of everything vs producev + flush at the end.
    std::string consume_topic;
    const std::string batch_name = "kafka.produce_batch." + sz;
    const std::string consume_name = "kafka.consume." + sz;
    if (Selected(batch_name) || Selected(consume_name)) {
      auto base = KafkaMessages(p, "", sc.size, sc.n_async);
      auto producer = Take(b->NewProducer("bench-producer"), "kafka producer");
      double best_ff = 0, best_raw = 0;
      for (int r = 0; r < Reps(); ++r) {
        const std::string raw_topic = new_topic("raw" + sz);
        const std::string ff_topic = new_topic("ff" + sz);
        auto raw_msgs = Retopic(base, raw_topic);
        auto msgs = Retopic(base, ff_topic);
        double rw = 0, ff = 0;
        BothSides(r, [&] { rw = RawKafkaProduceAsync(raw_topic, raw_msgs); },
                  [&] {
                    const auto start = SteadyClock::now();
                    Check(producer->ProduceBatch(msgs), "kafka produce batch");
                    ff = static_cast<double>(msgs.size()) / Seconds(start);
                  });
        std::cerr << "  " << batch_name << " rep " << r + 1 << ": faxflow " << ff << " raw " << rw << "\n";
        best_ff = std::max(best_ff, ff);
        best_raw = std::max(best_raw, rw);
        consume_topic = ff_topic;
      }
      if (Selected(batch_name))
        Emit(batch_name, best_ff, best_raw, "msg/s", sc.n_async, sc.size, 1,
             "ProduceBatch(all) vs producev+flush; acks=all, idempotent, 1 partition");
    }
    if (Selected(consume_name)) {
      double best_ff = 0, best_raw = 0;
      for (int r = 0; r < Reps(); ++r) {
        double rw = 0, ff = 0;
        BothSides(r, [&] { rw = RawKafkaConsume(consume_topic, sc.n_async, sc.size, r); },
                  [&] { ff = FaxflowKafkaConsume(*b, consume_topic, sc.n_async, sc.size, r); });
        std::cerr << "  " << consume_name << " rep " << r + 1 << ": faxflow " << ff << " raw " << rw << "\n";
        best_ff = std::max(best_ff, ff);
        best_raw = std::max(best_raw, rw);
      }
      Emit(consume_name, best_ff, best_raw, "msg/s", sc.n_async, sc.size, 1,
           "Consumer::Poll(1000) vs rd_kafka_consumer_poll + rd_kafka_message_headers; from assign to last record");
    }
    // Blocking path: Produce per record vs producev + wait for its report.
    const std::string per_name = "kafka.produce." + sz;
    if (Selected(per_name)) {
      auto base = KafkaMessages(p, "", sc.size, sc.n_per_record);
      auto producer = Take(b->NewProducer("bench-producer-1"), "kafka producer");
      double best_ff = 0, best_raw = 0;
      for (int r = 0; r < Reps(); ++r) {
        const std::string raw_topic = new_topic("rawp" + sz);
        const std::string ff_topic = new_topic("ffp" + sz);
        auto raw_msgs = Retopic(base, raw_topic);
        auto msgs = Retopic(base, ff_topic);
        double rw = 0, ff = 0;
        BothSides(r, [&] { rw = RawKafkaProducePerRecord(raw_topic, raw_msgs); },
                  [&] {
                    const auto start = SteadyClock::now();
                    for (const auto& m : msgs) Take(producer->Produce(m), "kafka produce");
                    ff = static_cast<double>(msgs.size()) / Seconds(start);
                  });
        std::cerr << "  " << per_name << " rep " << r + 1 << ": faxflow " << ff << " raw " << rw << "\n";
        best_ff = std::max(best_ff, ff);
        best_raw = std::max(best_raw, rw);
      }
      Emit(per_name, best_ff, best_raw, "msg/s", sc.n_per_record, sc.size, 1,
           "Produce (blocking per record) vs producev+flush per record");
    }
  }
  // One-record transactions: TransactionalProducer Begin/Send/Commit vs the same librdkafka calls.
  const std::string txn_name = "kafka.txn.1024B";
  if (Selected(txn_name)) {
    auto base = KafkaMessages(p, "", 1024, q ? 100u : 300u);
    double best_ff = 0, best_raw = 0;
    for (int r = 0; r < Reps(); ++r) {
      const std::string raw_topic = new_topic("rawtxn");
      const std::string ff_topic = new_topic("fftxn");
      auto raw_msgs = Retopic(base, raw_topic);
      auto msgs = Retopic(base, ff_topic);
      double rw = 0, ff = 0;
      BothSides(r, [&] { rw = RawKafkaTransactions(raw_topic, raw_msgs, raw_topic + "-raw"); },
                [&] {
                  auto tx = Take(b->NewTransactionalProducer(ff_topic + "-ff"), "kafka transactional producer");
                  Check(tx->Begin(), "begin");  // warm, as on the raw side
                  Check(tx->Send(msgs[0]), "send");
                  Check(tx->Commit(), "commit");
                  const auto start = SteadyClock::now();
                  for (const auto& m : msgs) {
                    Check(tx->Begin(), "begin");
                    Check(tx->Send(m), "send");
                    Check(tx->Commit(), "commit");
                  }
                  ff = static_cast<double>(msgs.size()) / Seconds(start);
                });
      std::cerr << "  " << txn_name << " rep " << r + 1 << ": faxflow " << ff << " raw " << rw << "\n";
      best_ff = std::max(best_ff, ff);
      best_raw = std::max(best_raw, rw);
    }
    Emit(txn_name, best_ff, best_raw, "txn/s", base.size(), 1024, 1,
         "one-record transactions: Begin/Send/Commit vs begin/producev/commit_transaction");
  }
}

int Main(int argc, char** argv) {
  const char* env_bootstrap = std::getenv("FAXFLOW_KAFKA_BOOTSTRAP");
  g_config.bootstrap = env_bootstrap != nullptr && *env_bootstrap != 0 ? env_bootstrap : "127.0.0.1:9092";
  const char* tmp = std::getenv("TMPDIR");
  g_config.dir = (fs::path(tmp != nullptr && *tmp != 0 ? tmp : "/tmp") / "faxflow-bench").string();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--quick") {
      g_config.quick = true;
    } else if (a == "--only") {
      g_config.only = next();
    } else if (a == "--reps") {
      g_config.reps = std::atoi(next().c_str());
    } else if (a == "--dir") {
      g_config.dir = next();
    } else if (a == "--bootstrap") {
      g_config.bootstrap = next();
    } else if (a == "--kafka-property") {
      const std::string kv = next();
      const auto eq = kv.find('=');
      if (eq == std::string::npos) Die("--kafka-property wants KEY=VALUE");
      g_config.kafka_props.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    } else if (a == "--no-kafka") {
      g_config.kafka = false;
    } else {
      std::cerr << "usage: bus_bench [--quick] [--only SUBSTRING] [--reps N] [--dir DIR] [--bootstrap HOST:PORT] "
                   "[--no-kafka] [--kafka-property KEY=VALUE]...\n";
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  fs::create_directories(g_config.dir);
  std::cerr << "bus_bench: " << (g_config.quick ? "quick" : "full") << " run, " << Reps() << " rep(s), scratch "
            << g_config.dir << "\n";
  RunEmbedded();
  RunBlob();
  RunKafka();
  return 0;
}

}  // namespace
}  // namespace faxflow::bench

int main(int argc, char** argv) { return faxflow::bench::Main(argc, argv); }
