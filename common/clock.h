// Injected time. Business logic never calls std::chrono::*::now() or sleeps directly: it asks a
// Clock, so timers (retries, watchdogs, TTLs, heartbeats) are deterministic in tests.
//
// Threading: SystemClock is stateless; ManualClock is thread-safe (one mutex) and wakes sleepers
// when advanced.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace faxflow {

class Clock {
 public:
  using WallTime = std::chrono::system_clock::time_point;
  using MonoTime = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;
  virtual WallTime Now() const = 0;          // wall clock, for timestamps shown to users
  virtual MonoTime Monotonic() const = 0;    // for durations and deadlines
  // Blocks until `deadline` (monotonic) or until woken; returns when the deadline is reached.
  virtual void SleepUntil(MonoTime deadline) = 0;

  int64_t NowMillis() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Now().time_since_epoch()).count();
  }
};

class SystemClock final : public Clock {
 public:
  WallTime Now() const override { return std::chrono::system_clock::now(); }
  MonoTime Monotonic() const override { return std::chrono::steady_clock::now(); }
  void SleepUntil(MonoTime deadline) override;
  // Process-wide instance for production wiring.
  static SystemClock& Instance();
};

// A clock that moves only when told to. Sleepers wake when Advance() passes their deadline.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(WallTime start = WallTime(std::chrono::seconds(1'700'000'000)));
  WallTime Now() const override;
  MonoTime Monotonic() const override;
  void SleepUntil(MonoTime deadline) override;
  void Advance(std::chrono::nanoseconds by);

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  WallTime wall_;
  MonoTime mono_;
};

}  // namespace faxflow
