#include "common/clock.h"

#include <thread>

namespace faxflow {

void SystemClock::SleepUntil(MonoTime deadline) { std::this_thread::sleep_until(deadline); }

SystemClock& SystemClock::Instance() {
  static SystemClock clock;
  return clock;
}

ManualClock::ManualClock(WallTime start) : wall_(start), mono_(MonoTime(std::chrono::hours(1))) {}

Clock::WallTime ManualClock::Now() const {
  std::lock_guard lock(mu_);
  return wall_;
}

Clock::MonoTime ManualClock::Monotonic() const {
  std::lock_guard lock(mu_);
  return mono_;
}

void ManualClock::SleepUntil(MonoTime deadline) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return mono_ >= deadline; });
}

void ManualClock::Advance(std::chrono::nanoseconds by) {
  {
    std::lock_guard lock(mu_);
    wall_ += std::chrono::duration_cast<WallTime::duration>(by);
    mono_ += by;
  }
  cv_.notify_all();
}

}  // namespace faxflow
