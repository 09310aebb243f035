// Publishes "the books" of the status store as gauges: recipients accepted, recipients terminal
// by state, and in flight (accepted minus terminal), so dashboards and the books alert can watch
// accepted = terminal + in_flight. Values come from the durable store (StatusStore::GetBooks),
// so they survive restarts and agree with GET /v1/faxes/{id}.
//
// Lifecycle: Start() spawns a thread that calls Refresh() every `interval`; Stop() joins it.
// Runs in the process that owns the status store (the gateway role). Threading: Refresh() is
// thread-safe; the store is thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "common/heartbeat.h"
#include "monitoring/metrics.h"
#include "storage/status_store.h"

namespace faxflow::monitoring {

class BooksMonitor {
 public:
  // `read_books` reads the books from the status store (StatusStore::GetBooks).
  using BooksSource = std::function<Result<Books>()>;
  BooksMonitor(BooksSource read_books, MetricsRegistry& registry,
               std::chrono::milliseconds interval = std::chrono::seconds(1));
  ~BooksMonitor();
  BooksMonitor(const BooksMonitor&) = delete;
  BooksMonitor& operator=(const BooksMonitor&) = delete;

  Status Start();
  void Stop();
  // Reads the books now and sets the gauges.
  Result<Books> Refresh();

  // Liveness of this component's loop ("books", common/heartbeat.h); call before Start().
  // Null (the default): none. Must outlive the loop.
  void SetHeartbeats(Heartbeats* heartbeats) { heartbeats_ = heartbeats; }

 private:
  Heartbeats* heartbeats_ = nullptr;
  BooksSource read_books_;
  BooksMetrics metrics_;
  std::chrono::milliseconds interval_;
  std::mutex refresh_mu_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace faxflow::monitoring
