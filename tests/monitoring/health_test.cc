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

// A worker loop that beats on every turn and can be made to hang (as a loop blocked on a dead
// dependency would): its turns are driven by the test so the clock alone decides the ages.
class FakeLoop {
 public:
  FakeLoop(Heartbeats& heartbeats, std::string_view component,
           std::chrono::milliseconds min_stall = std::chrono::milliseconds(0))
      : beat_(heartbeats.Register(component, min_stall)) {}
  void Turn() {
    if (!stuck) beat_->Beat();
  }
  void End() { beat_.reset(); }
  bool stuck = false;

 private:
  std::unique_ptr<Heartbeat> beat_;
};

TEST(HealthTest, AStalledWorkerLoopMakesTheProcessNotReadyAndShowsItsAge) {
  MetricsRegistry registry;
  ManualClock clock;
  Health health(registry, clock);
  health.SetStallThreshold(std::chrono::seconds(120));
  FakeLoop imaging(health, "imaging");
  FakeLoop channel_a(health, "modem_channel"), channel_b(health, "modem_channel");
  // A render may take long: this loop's own threshold is higher.
  FakeLoop slow(health, "slow", std::chrono::seconds(300));
  auto turn_all = [&] {
    for (FakeLoop* l : {&imaging, &channel_a, &channel_b, &slow}) l->Turn();
  };
  for (int i = 0; i < 10; ++i) {
    clock.Advance(std::chrono::seconds(20));
    turn_all();
    ASSERT_TRUE(health.Ready().ok()) << health.Ready().ToString();
  }
  std::string m = SerializeMetrics(registry);
  EXPECT_TRUE(Contains(m, "faxflow_worker_heartbeat_age_seconds{component=\"modem_channel\"} 0")) << m;
  EXPECT_TRUE(Contains(m, "faxflow_worker_heartbeat_stall_threshold_seconds{component=\"imaging\"} 120"))
      << m;
  EXPECT_TRUE(Contains(m, "faxflow_worker_heartbeat_stall_threshold_seconds{component=\"slow\"} 300")) << m;
  EXPECT_TRUE(Contains(m, "faxflow_readiness_check_ok{check=\"heartbeats\"} 1")) << m;

  // One channel of two hangs: the other keeps beating, the component still shows the stuck one.
  channel_b.stuck = true;
  slow.stuck = true;
  for (int i = 0; i < 6; ++i) {
    clock.Advance(std::chrono::seconds(20));
    turn_all();
  }
  Status s = health.Ready();  // 120 s without a beat is not yet over the threshold
  EXPECT_TRUE(s.ok()) << s.ToString();
  clock.Advance(std::chrono::seconds(5));
  turn_all();
  s = health.Ready();
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.retryable());
  EXPECT_TRUE(Contains(s.ToString(), "heartbeats")) << s.ToString();
  EXPECT_TRUE(Contains(s.ToString(), "modem_channel has not beaten for 125.0 s")) << s.ToString();
  EXPECT_FALSE(Contains(s.ToString(), "imaging")) << s.ToString();
  EXPECT_FALSE(Contains(s.ToString(), "slow")) << s.ToString();  // 125 s < its 300 s
  m = SerializeMetrics(registry);
  EXPECT_TRUE(Contains(m, "faxflow_worker_heartbeat_age_seconds{component=\"modem_channel\"} 125")) << m;
  EXPECT_TRUE(Contains(m, "faxflow_worker_heartbeat_age_seconds{component=\"imaging\"} 0")) << m;
  EXPECT_TRUE(Contains(m, "faxflow_process_ready 0")) << m;
  EXPECT_TRUE(Contains(m, "faxflow_readiness_check_ok{check=\"heartbeats\"} 0")) << m;
  // The timestamp gauge carries the stuck loop's last beat (unix 1700000000 + 200 s).
  EXPECT_TRUE(Contains(m, "faxflow_heartbeat_timestamp_seconds{component=\"modem_channel\"} 1700000200"))
      << m;

  clock.Advance(std::chrono::seconds(200));
  turn_all();
  s = health.Ready();
  EXPECT_TRUE(Contains(s.ToString(), "slow has not beaten")) << s.ToString();

  // The loops come back: ready again.
  channel_b.stuck = false;
  slow.stuck = false;
  turn_all();
  EXPECT_TRUE(health.Ready().ok()) << health.Ready().ToString();

  // A loop that ended (its worker stopped) is no longer watched, nor exported.
  FakeLoop gone(health, "gone");
  EXPECT_TRUE(health.Ready().ok());
  EXPECT_TRUE(
      Contains(SerializeMetrics(registry), "faxflow_worker_heartbeat_age_seconds{component=\"gone\"}"));
  gone.End();
  EXPECT_TRUE(health.Ready().ok());
  EXPECT_FALSE(Contains(SerializeMetrics(registry), "component=\"gone\""));
  imaging.stuck = true;
  imaging.End();
  clock.Advance(std::chrono::seconds(100));
  channel_a.Turn();
  channel_b.Turn();
  slow.Turn();
  clock.Advance(std::chrono::seconds(100));
  channel_a.Turn();
  channel_b.Turn();
  slow.Turn();
  EXPECT_TRUE(health.Ready().ok()) << health.Ready().ToString();

  // Threshold 0: stall detection off (ages still exported).
  channel_a.stuck = true;
  clock.Advance(std::chrono::seconds(1000));
  health.SetStallThreshold(std::chrono::milliseconds(0));
  EXPECT_TRUE(health.Ready().ok()) << health.Ready().ToString();
  EXPECT_TRUE(Contains(SerializeMetrics(registry),
                       "faxflow_worker_heartbeat_age_seconds{component=\"modem_channel\"} 1000"));
}

TEST(HealthTest, HeartbeatHandlesMayOutliveHealth) {
  ManualClock clock;
  std::unique_ptr<Heartbeat> beat;
  {
    MetricsRegistry registry;
    Health health(registry, clock);
    beat = health.Register("status");
  }
  beat->Beat();  // no crash, no effect
  beat.reset();
  EXPECT_NE(RegisterHeartbeat(nullptr, "x"), nullptr);
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
