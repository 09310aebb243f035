// Health (readiness checks, heartbeats) and the books gauges, against a manual clock and a fake
// status store: what /readyz answers and what Prometheus sees must agree with the checks.
#include "monitoring/health.h"

#include <gtest/gtest.h>

#include "common/clock.h"
#include "common/metrics.h"
#include "monitoring/books_monitor.h"

namespace faxflow::monitoring {
namespace {

bool Contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

TEST(HealthTest, ReadyOnlyWhenEveryCheckPassesAndGaugesSayWhichFails) {
  MetricsRegistry registry;
  ManualClock clock;
  Health health(registry, clock);
  bool claims_held = false;
  health.AddReadinessCheck("topics", [] { return Status::Ok(); });
  health.AddReadinessCheck("claims", [&] {
    return claims_held ? Status::Ok() : Status::Retryable(Code::kUnavailable, "no claim on fax.submissions");
  });

  Status s = health.Ready();
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s.ToString(), "claims")) << s.ToString();
  EXPECT_TRUE(Contains(s.ToString(), "no claim on fax.submissions")) << s.ToString();
  EXPECT_FALSE(Contains(s.ToString(), "topics")) << s.ToString();
  std::string m = SerializeMetrics(registry);
  EXPECT_TRUE(Contains(m, "faxflow_process_ready 0")) << m;
  EXPECT_TRUE(Contains(m, "faxflow_readiness_check_ok{check=\"claims\"} 0")) << m;
  EXPECT_TRUE(Contains(m, "faxflow_readiness_check_ok{check=\"topics\"} 1")) << m;

  claims_held = true;
  EXPECT_TRUE(health.Ready().ok());
  m = SerializeMetrics(registry);
  EXPECT_TRUE(Contains(m, "faxflow_process_ready 1")) << m;
  EXPECT_TRUE(Contains(m, "faxflow_readiness_check_ok{check=\"claims\"} 1")) << m;

  health.RemoveReadinessCheck("claims");
  claims_held = false;
  EXPECT_TRUE(health.Ready().ok());
  EXPECT_FALSE(Contains(SerializeMetrics(registry), "check=\"claims\""));
}

TEST(HealthTest, HeartbeatsCarryTheClockTimePerComponent) {
  MetricsRegistry registry;
  ManualClock clock;  // starts at unix 1700000000
  Health health(registry, clock);
  health.Beat("imaging");
  clock.Advance(std::chrono::seconds(30));
  health.Beat("modem");
  const std::string m = SerializeMetrics(registry);
  EXPECT_TRUE(Contains(m, "faxflow_heartbeat_timestamp_seconds{component=\"imaging\"} 1700000000")) << m;
  EXPECT_TRUE(Contains(m, "faxflow_heartbeat_timestamp_seconds{component=\"modem\"} 1700000030")) << m;
  EXPECT_TRUE(Contains(m, "faxflow_process_start_time_seconds 1700000000")) << m;
}

TEST(HealthTest, RefreshThreadBeatsProcessAndEvaluatesChecks) {
  MetricsRegistry registry;
  SystemClock& clock = SystemClock::Instance();
  Health health(registry, clock);
  std::atomic<int> runs{0};
  health.AddReadinessCheck("topics", [&] {
    ++runs;
    return Status::Ok();
  });
  ASSERT_TRUE(health.Start(std::chrono::milliseconds(10)).ok());
  for (int i = 0; i < 500 && runs < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  health.Stop();
  EXPECT_GE(runs.load(), 3);
  const std::string m = SerializeMetrics(registry);
  EXPECT_TRUE(Contains(m, "faxflow_heartbeat_timestamp_seconds{component=\"process\"}")) << m;
  EXPECT_TRUE(Contains(m, "faxflow_process_ready 1")) << m;
}

// Stands in for StatusStore::GetBooks.
struct FakeBooks {
  Result<Books> Read() const {
    if (fail) return Status::Retryable(Code::kIoError, "disk");
    return books;
  }
  Books books;
  bool fail = false;
};

TEST(BooksMonitorTest, ExportsAcceptedTerminalByStateAndInFlight) {
  MetricsRegistry registry;
  FakeBooks store;
  BooksMonitor monitor([&store] { return store.Read(); }, registry);
  // Every terminal state is there before anything happened.
  std::string m = SerializeMetrics(registry);
  for (const char* state : {"delivered", "partial", "failed", "cancelled", "expired"})
    EXPECT_TRUE(Contains(m, std::string("faxflow_books_recipients_terminal{state=\"") + state + "\"} 0"))
        << m;

  store.books.accepted = 10;
  store.books.terminal = {{"delivered", 5}, {"failed", 2}, {"partial", 1}};
  ASSERT_TRUE(monitor.Refresh().ok());
  m = SerializeMetrics(registry);
  EXPECT_TRUE(Contains(m, "faxflow_books_recipients_accepted 10")) << m;
  EXPECT_TRUE(Contains(m, "faxflow_books_recipients_terminal{state=\"delivered\"} 5")) << m;
  EXPECT_TRUE(Contains(m, "faxflow_books_recipients_terminal{state=\"failed\"} 2")) << m;
  EXPECT_TRUE(Contains(m, "faxflow_books_recipients_in_flight 2")) << m;

  // Counted twice: in flight goes negative, which the books alert watches.
  store.books.terminal["delivered"] = 8;
  ASSERT_TRUE(monitor.Refresh().ok());
  EXPECT_TRUE(Contains(SerializeMetrics(registry), "faxflow_books_recipients_in_flight -1"));

  store.fail = true;
  EXPECT_FALSE(monitor.Refresh().ok());
  EXPECT_TRUE(Contains(SerializeMetrics(registry), "faxflow_books_refresh_errors_total 1"));
}

}  // namespace
}  // namespace faxflow::monitoring
