#include "monitoring/books_monitor.h"

#include "common/log.h"

namespace faxflow::monitoring {

BooksMonitor::BooksMonitor(BooksSource read_books, MetricsRegistry& registry,
                           std::chrono::milliseconds interval)
    : read_books_(std::move(read_books)), metrics_(registry), interval_(interval) {
  // Every terminal state is exported from the start (0 until it happens), so a dashboard or an
  // alert never sees a missing series for a state that simply has not occurred yet.
  for (const char* state : {"delivered", "partial", "failed", "cancelled", "expired"})
    metrics_.terminal.Add({{"state", state}});
}

BooksMonitor::~BooksMonitor() { Stop(); }

Result<Books> BooksMonitor::Refresh() {
  std::lock_guard lock(refresh_mu_);
  auto books = read_books_();
  if (!books.ok()) {
    metrics_.refresh_errors.Increment();
    return books.status();
  }
  metrics_.accepted.Set(static_cast<double>(books->accepted));
  for (const auto& [state, n] : books->terminal)
    metrics_.terminal.Add({{"state", state}}).Set(static_cast<double>(n));
  metrics_.in_flight.Set(static_cast<double>(books->in_flight()));
  return books;
}

Status BooksMonitor::Start() {
  std::lock_guard guard(mu_);
  if (thread_.joinable()) return Status::Ok();
  stop_ = false;
  thread_ = std::thread([this] {
    auto log = Logger("app");
    auto beat = RegisterHeartbeat(heartbeats_, "books", 2 * interval_);
    std::unique_lock lock(mu_);
    while (!stop_) {
      beat->Beat();
      lock.unlock();
      auto r = Refresh();
      if (!r.ok()) FF_LOG_WARN(log, "books refresh failed: {}", r.status().ToString());
      lock.lock();
      cv_.wait_for(lock, interval_, [this] { return stop_; });
    }
  });
  return Status::Ok();
}

void BooksMonitor::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace faxflow::monitoring
