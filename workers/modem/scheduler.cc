#include "workers/modem/scheduler.h"

#include <algorithm>

namespace faxflow::modem {
namespace {

constexpr int64_t kMinuteMs = 60'000;
constexpr int64_t kDayMinutes = 1440;

int64_t MinuteOfDay(const v1::SendWindow& w, int64_t now_ms) {
  int64_t m = now_ms / kMinuteMs + w.utc_offset_minutes();
  m %= kDayMinutes;
  if (m < 0) m += kDayMinutes;
  return m;
}

}  // namespace

bool HasWindow(const v1::SendWindow& w) { return w.start_minute() != w.end_minute(); }

bool InWindow(const v1::SendWindow& w, int64_t now_ms) {
  if (!HasWindow(w)) return true;
  const int64_t m = MinuteOfDay(w, now_ms);
  const int64_t s = w.start_minute();
  const int64_t e = w.end_minute();
  return s < e ? (m >= s && m < e) : (m >= s || m < e);
}

int64_t NextWindowOpen(const v1::SendWindow& w, int64_t now_ms) {
  if (InWindow(w, now_ms)) return now_ms;
  const int64_t m = MinuteOfDay(w, now_ms);
  int64_t wait_min = (w.start_minute() - m + kDayMinutes) % kDayMinutes;
  if (wait_min == 0) wait_min = kDayMinutes;
  const int64_t minute_start = now_ms - (now_ms % kMinuteMs);
  return minute_start + wait_min * kMinuteMs;
}

bool Scheduler::Add(SchedJob job) {
  const std::string& id = job.job.job_id();
  if (ids_.count(id)) return false;
  job.seq = next_seq_++;
  ids_.insert(id);
  Key k = KeyOf(job);
  queue_.emplace(k, std::move(job));
  return true;
}

bool Scheduler::Ready(const SchedJob& j, int64_t now_ms) const {
  if (j.not_before_ms > now_ms) return false;
  if (j.expires_at_ms > 0 && j.expires_at_ms <= now_ms) return false;  // the expiry sweep ends it
  return InWindow(j.job.window(), now_ms);
}

std::optional<SchedJob> Scheduler::TakeNext(int64_t now_ms, std::string_view prefer_destination) {
  auto best = queue_.end();
  auto preferred = queue_.end();
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    const SchedJob& j = it->second;
    if (!Ready(j, now_ms) || ActiveCalls(j.destination) >= max_per_destination_) continue;
    if (best == queue_.end()) best = it;
    if (!prefer_destination.empty() && j.destination == prefer_destination) {
      preferred = it;
      break;
    }
    if (prefer_destination.empty()) break;
  }
  auto chosen = best;
  // The preferred destination continues only when no strictly higher priority job is eligible.
  if (preferred != queue_.end() && preferred->second.job.priority() >= best->second.job.priority())
    chosen = preferred;
  if (chosen == queue_.end()) return std::nullopt;
  SchedJob out = std::move(chosen->second);
  queue_.erase(chosen);
  active_ids_.insert(out.job.job_id());
  ++active_[out.destination];
  return out;
}

std::vector<SchedJob> Scheduler::TakeCompanions(
    const SchedJob& lead, int64_t now_ms, size_t max,
    const std::function<bool(const v1::OutboundJob&, const v1::OutboundJob&)>& compatible) {
  std::vector<SchedJob> out;
  if (max == 0) return out;
  // The most urgent job another channel could dial now (another number, below its call limit).
  bool other = false;
  int32_t other_priority = 0;
  for (const auto& [k, j] : queue_) {
    if (j.destination == lead.destination || !Ready(j, now_ms) ||
        ActiveCalls(j.destination) >= max_per_destination_)
      continue;
    other = true;
    other_priority = j.job.priority();
    break;  // queue order: the first one has the highest priority
  }
  for (auto it = queue_.begin(); it != queue_.end() && out.size() < max;) {
    const SchedJob& j = it->second;
    if (j.destination != lead.destination || !Ready(j, now_ms) || !compatible(lead.job, j.job) ||
        (other && other_priority > j.job.priority())) {
      ++it;
      continue;
    }
    SchedJob taken = std::move(it->second);
    it = queue_.erase(it);
    taken.companion = true;
    active_ids_.insert(taken.job.job_id());
    out.push_back(std::move(taken));
  }
  return out;
}

void Scheduler::Done(const SchedJob& job) {
  auto it = active_.find(job.destination);
  if (!job.companion && it != active_.end() && --it->second <= 0) active_.erase(it);
  active_ids_.erase(job.job.job_id());
  ids_.erase(job.job.job_id());
}

void Scheduler::Requeue(SchedJob job, int64_t not_before_ms) {
  auto it = active_.find(job.destination);
  if (!job.companion && it != active_.end() && --it->second <= 0) active_.erase(it);
  job.companion = false;
  active_ids_.erase(job.job.job_id());
  job.not_before_ms = not_before_ms;
  Key k = KeyOf(job);
  queue_.emplace(k, std::move(job));  // keeps its seq: a retry keeps its place among equals
}

std::vector<SchedJob> Scheduler::TakeExpired(int64_t now_ms) {
  return TakeMatchingJobs(
      [now_ms](const SchedJob& j) { return j.expires_at_ms > 0 && j.expires_at_ms <= now_ms; });
}

std::vector<SchedJob> Scheduler::TakeMatching(const std::function<bool(const v1::OutboundJob&)>& match) {
  return TakeMatchingJobs([&](const SchedJob& j) { return match(j.job); });
}

std::vector<SchedJob> Scheduler::TakeAll() {
  return TakeMatchingJobs([](const SchedJob&) { return true; });
}

std::vector<SchedJob> Scheduler::TakeMatchingJobs(const std::function<bool(const SchedJob&)>& match) {
  std::vector<SchedJob> out;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (match(it->second)) {
      ids_.erase(it->second.job.job_id());
      out.push_back(std::move(it->second));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

int64_t Scheduler::NextChangeMs(int64_t now_ms) const {
  int64_t next = kNever;
  for (const auto& [k, j] : queue_) {
    if (j.not_before_ms > now_ms) next = std::min(next, j.not_before_ms);
    if (j.expires_at_ms > now_ms) next = std::min(next, j.expires_at_ms);
    if (HasWindow(j.job.window()) && !InWindow(j.job.window(), now_ms))
      next = std::min(next, NextWindowOpen(j.job.window(), std::max(now_ms, j.not_before_ms)));
  }
  return next;
}

SchedulerCounts Scheduler::Counts(int64_t now_ms) const {
  SchedulerCounts c;
  for (const auto& [k, j] : queue_) {
    if (!Ready(j, now_ms))
      ++c.delayed;
    else if (ActiveCalls(j.destination) >= max_per_destination_)
      ++c.blocked;
    else
      ++c.eligible;
  }
  return c;
}

int Scheduler::ActiveCalls(const std::string& destination) const {
  auto it = active_.find(destination);
  return it == active_.end() ? 0 : it->second;
}

}  // namespace faxflow::modem
