// scheduler_bench: line utilisation of the modem scheduler in simulated time.
//
// 50 lines and a fax.jobs backlog of 2,000 mixed jobs (priorities 0-9, 600 destinations, 1-10
// pages, busy / no answer / dropped / not-a-fax far ends, HylaFAX retry delays, some send_at in
// the next 30 minutes). Time is a ManualClock advanced from event to event; call durations come
// from a fake line (answered fax: ring 4 s + 20 s + 10 s per page; busy 3 s; no answer 60 s;
// voice 30 s). Both sides run the same jobs and outcomes:
//   faxflow: the modem worker's policy: the real Scheduler (priority, 1 call per number,
//            back-to-back batching) and RetryPolicy, fed from the backlog up to the worker's
//            scheduler capacity (max(64, 16 x lines)) like ModemWorker::ConsumeLoop;
//   raw:     an in-order consumer per line, as a plain Kafka consumer would do it: each line
//            takes the next record, waits while its number is in a call, and sleeps through a
//            retry delay holding the line.
// Utilisation = busy line time / line time that eligible jobs could have used
//   (integral of min(lines, calls in progress + dialable jobs) over the run), where dialable
//   jobs are due (send_at, retry delay), and their number is not already in a call.
//
// Output: JSON lines (bench/run convention). Usage: scheduler_bench [--quick] [--only S] [--no-kafka]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <iostream>
#include <map>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "workers/modem/retry_policy.h"
#include "workers/modem/scheduler.h"

namespace faxflow::bench {
namespace {

using modem::Classification;
using modem::DecideRetry;
using modem::RetryPolicy;
using modem::SchedJob;
using modem::Scheduler;

enum class Far { kAnswer, kBusyThenAnswer, kNoAnswerThenAnswer, kDropThenAnswer, kVoice };

struct SimJob {
  std::string id;
  std::string destination;
  int priority = 0;
  int pages = 1;
  int64_t send_at_ms = 0;
  Far far = Far::kAnswer;
  int failures = 0;  // failing attempts before an answer (busy/no answer/drop)
  // progress
  int attempt = 0;
  int dials = 0;
  int tries = 0;
  int pages_done = 0;
  int64_t due_ms = 0;  // send_at, then the retry time
  bool in_call = false;
  bool finished = false;
};

// Line time eligible jobs could use now: calls in progress + numbers not in a call that have a
// due job (one call per number), capped at the number of lines.
double Usable(const std::vector<SimJob>& jobs, int lines, int busy, int64_t now) {
  std::set<std::string> active, dialable;
  for (const auto& j : jobs)
    if (j.in_call) active.insert(j.destination);
  for (const auto& j : jobs)
    if (!j.finished && !j.in_call && j.due_ms <= now && !active.count(j.destination))
      dialable.insert(j.destination);
  return std::min<double>(lines, busy + static_cast<double>(dialable.size()));
}

struct CallResult {
  int64_t duration_ms = 0;
  Classification outcome;
  bool answered = false;
  int pages = 0;
};

// What the far end does on this attempt.
CallResult Call(SimJob& j) {
  CallResult r;
  const bool failing = j.attempt <= j.failures;
  const int remaining = j.pages - j.pages_done;
  switch (j.far) {
    case Far::kVoice:
      r = {30'000, {v1::STATE_FAILED, v1::REASON_NOT_A_FAX, ""}, true, 0};
      return r;
    case Far::kBusyThenAnswer:
      if (failing) return {3'000, {v1::STATE_FAILED, v1::REASON_BUSY, ""}, false, 0};
      break;
    case Far::kNoAnswerThenAnswer:
      if (failing) return {60'000, {v1::STATE_FAILED, v1::REASON_NO_ANSWER, ""}, false, 0};
      break;
    case Far::kDropThenAnswer:
      if (failing && remaining > 1) {
        const int sent = remaining / 2;
        return {4'000 + 20'000 + 10'000 * sent,
                {j.pages_done + sent > 0 ? v1::STATE_PARTIAL : v1::STATE_FAILED, v1::REASON_DROPPED, ""},
                true,
                sent};
      }
      break;
    case Far::kAnswer:
      break;
  }
  return {4'000 + 20'000 + 10'000 * remaining,
          {v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, ""},
          true,
          remaining};
}

std::vector<SimJob> MakeJobs(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<SimJob> jobs;
  for (int i = 0; i < n; ++i) {
    SimJob j;
    j.id = "job" + std::to_string(i);
    j.destination = "1555" + std::to_string(1'000'000 + rng() % 600);
    j.priority = static_cast<int>(rng() % 10);
    j.pages = 1 + static_cast<int>(rng() % 10);
    if (rng() % 10 == 0) j.send_at_ms = static_cast<int64_t>(rng() % 1'800'000);
    j.due_ms = j.send_at_ms;
    const int kind = static_cast<int>(rng() % 100);
    if (kind < 65) {
      j.far = Far::kAnswer;
    } else if (kind < 77) {
      j.far = Far::kBusyThenAnswer;
      j.failures = 1 + static_cast<int>(rng() % 2);
    } else if (kind < 85) {
      j.far = Far::kNoAnswerThenAnswer;
      j.failures = 1 + static_cast<int>(rng() % 3);
    } else if (kind < 93) {
      j.far = Far::kDropThenAnswer;
      j.failures = 1;
    } else {
      j.far = Far::kVoice;
    }
    jobs.push_back(j);
  }
  return jobs;
}

struct Result {
  double utilisation = 0;
  double makespan_s = 0;
  double high_priority_wait_p50_s = 0;
  int dials = 0;
};

// Records what happened after an attempt; returns the retry time, or -1 when the job is done.
int64_t AfterCall(SimJob& j, const CallResult& r, const RetryPolicy& policy, int64_t now) {
  j.in_call = false;
  ++j.dials;
  if (r.answered) ++j.tries;
  j.pages_done += r.pages;
  if (r.outcome.state == v1::STATE_DELIVERED) {
    j.finished = true;
    return -1;
  }
  auto d = DecideRetry(policy, r.outcome, r.answered, {j.dials, j.tries, 0});
  if (!d.retry) {
    j.finished = true;
    return -1;
  }
  j.due_ms = now + d.delay_ms;
  return j.due_ms;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

// The faxflow policy: Scheduler + RetryPolicy, backlog admitted up to the scheduler capacity.
Result RunFaxflow(std::vector<SimJob> jobs, int lines) {
  ManualClock clock;
  const int64_t t0 = clock.NowMillis();
  const RetryPolicy policy;
  const size_t capacity = std::max<size_t>(64, 16 * static_cast<size_t>(lines));
  Scheduler sched(1);
  std::deque<size_t> backlog;
  for (size_t i = 0; i < jobs.size(); ++i) backlog.push_back(i);
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < jobs.size(); ++i) index[jobs[i].id] = i;
  struct Line {
    bool busy = false;
    int64_t ends = 0;
    std::optional<SchedJob> job;
    CallResult call;
    std::string last;
    int batch = 0;
  };
  std::vector<Line> L(static_cast<size_t>(lines));
  size_t finished = 0;
  double busy_ms = 0, demand_ms = 0;
  std::vector<double> high_waits;
  Result res;
  while (finished < jobs.size()) {
    const int64_t now = clock.NowMillis() - t0;
    // Calls that end now.
    for (auto& l : L) {
      if (!l.busy || l.ends > now) continue;
      SimJob& j = jobs[index[l.job->job.job_id()]];
      const int64_t retry = AfterCall(j, l.call, policy, now);
      l.busy = false;
      if (retry < 0) {
        sched.Done(*l.job);
        ++finished;
      } else {
        sched.Requeue(std::move(*l.job), retry);
      }
      l.job.reset();
    }
    // Consume the backlog into the scheduler (ConsumeLoop: up to capacity).
    while (!backlog.empty() && sched.Queued() + sched.InProgress() < capacity) {
      SimJob& j = jobs[backlog.front()];
      backlog.pop_front();
      SchedJob s;
      s.job.set_job_id(j.id);
      s.job.set_priority(j.priority);
      s.destination = j.destination;
      s.not_before_ms = j.send_at_ms;
      sched.Add(std::move(s));
    }
    // Free lines dial (batching preference like ModemWorker::ChannelLoop).
    for (auto& l : L) {
      if (l.busy) continue;
      auto next = sched.TakeNext(now, l.batch < 8 ? l.last : std::string());
      if (!next) continue;
      SimJob& j = jobs[index[next->job.job_id()]];
      ++j.attempt;
      if (j.attempt == 1 && j.priority >= 9)
        high_waits.push_back(static_cast<double>(now - j.send_at_ms) / 1000.0);
      l.call = Call(j);
      j.in_call = true;
      l.busy = true;
      l.ends = now + l.call.duration_ms;
      l.batch = next->destination == l.last ? l.batch + 1 : 1;
      l.last = next->destination;
      l.job = std::move(next);
      ++res.dials;
    }
    // Advance to the next event and integrate busy vs usable line time.
    int64_t next_t = modem::kNever;
    int busy = 0;
    for (const auto& l : L)
      if (l.busy) {
        next_t = std::min(next_t, l.ends);
        ++busy;
      }
    next_t = std::min(next_t, sched.NextChangeMs(now));
    if (next_t == modem::kNever) break;
    const double usable = Usable(jobs, lines, busy, now);
    const double dt = static_cast<double>(next_t - now);
    busy_ms += busy * dt;
    demand_ms += usable * dt;
    clock.Advance(std::chrono::milliseconds(next_t - now));
  }
  res.utilisation = demand_ms > 0 ? busy_ms / demand_ms : 0;
  res.makespan_s = static_cast<double>(clock.NowMillis() - t0) / 1000.0;
  res.high_priority_wait_p50_s = Percentile(high_waits, 0.5);
  return res;
}

// The naive baseline: each line consumes the next record in order and holds it until done
// (waits for a busy number, sleeps through retry delays).
Result RunNaive(std::vector<SimJob> jobs, int lines) {
  ManualClock clock;
  const int64_t t0 = clock.NowMillis();
  const RetryPolicy policy;
  size_t next_record = 0;
  struct Line {
    int job = -1;
    bool in_call = false;
    int64_t until = 0;  // call end or wake-up
    CallResult call;
  };
  std::vector<Line> L(static_cast<size_t>(lines));
  std::map<std::string, int> active;
  size_t finished = 0;
  double busy_ms = 0, demand_ms = 0;
  std::vector<double> high_waits;
  Result res;
  while (finished < jobs.size()) {
    const int64_t now = clock.NowMillis() - t0;
    for (auto& l : L) {
      if (l.job >= 0 && l.in_call && l.until <= now) {
        SimJob& j = jobs[static_cast<size_t>(l.job)];
        --active[j.destination];
        l.in_call = false;
        const int64_t retry = AfterCall(j, l.call, policy, now);
        if (retry < 0) {
          ++finished;
          l.job = -1;
        } else {
          l.until = retry;  // sleeps holding the line
        }
      }
      if (l.job < 0 && next_record < jobs.size()) {
        l.job = static_cast<int>(next_record++);
        l.until = jobs[static_cast<size_t>(l.job)].send_at_ms;
      }
      if (l.job >= 0 && !l.in_call && l.until <= now) {
        SimJob& j = jobs[static_cast<size_t>(l.job)];
        if (active[j.destination] > 0) continue;  // waits for the number
        ++j.attempt;
        if (j.attempt == 1 && j.priority >= 9)
          high_waits.push_back(static_cast<double>(now - j.send_at_ms) / 1000.0);
        l.call = Call(j);
        j.in_call = true;
        l.in_call = true;
        l.until = now + l.call.duration_ms;
        ++active[j.destination];
        ++res.dials;
      }
    }
    int busy = 0;
    int64_t next_t = modem::kNever;
    for (const auto& l : L) {
      if (l.job < 0) continue;
      busy += l.in_call;
      // Calls end and sleepers wake at `until`; a line waiting for a busy number wakes when a
      // call ends (covered by the in-call lines).
      if (l.in_call || l.until > now) next_t = std::min(next_t, l.until);
    }
    if (next_t == modem::kNever) break;
    const double usable = Usable(jobs, lines, busy, now);
    const double dt = static_cast<double>(next_t - now);
    busy_ms += busy * dt;
    demand_ms += usable * dt;
    clock.Advance(std::chrono::milliseconds(next_t - now));
  }
  res.utilisation = demand_ms > 0 ? busy_ms / demand_ms : 0;
  res.makespan_s = static_cast<double>(clock.NowMillis() - t0) / 1000.0;
  res.high_priority_wait_p50_s = Percentile(high_waits, 0.5);
  return res;
}

void Row(const std::string& name, double faxflow, double raw, const std::string& unit, const char* target,
         const char* better, const char* compare) {
  std::printf(
      "{\"bench\":\"%s\",\"faxflow\":%.4f,\"raw\":%.4f,\"unit\":\"%s\",\"ratio\":%.4f,\"target\":%s,"
      "\"better\":\"%s\",\"compare\":\"%s\"}\n",
      name.c_str(), faxflow, raw, unit.c_str(), raw > 0 ? faxflow / raw : 0.0, target, better, compare);
  std::fflush(stdout);
}

int Main(int argc, char** argv) {
  bool quick = false;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
  }
  const int lines = 50;
  const int n = quick ? 500 : 2000;
  const std::string prefix = "scheduler." + std::to_string(lines) + "lines_" + std::to_string(n) + "jobs";
  if (!only.empty() && prefix.find(only) == std::string::npos &&
      std::string("scheduler").find(only) == std::string::npos)
    return 0;
  const auto jobs = MakeJobs(n, 42);
  std::cerr << "scheduler_bench: " << n << " jobs on " << lines << " lines (simulated time)\n";
  const auto start = std::chrono::steady_clock::now();
  const Result f = RunFaxflow(jobs, lines);
  const Result r = RunNaive(jobs, lines);
  std::cerr << "simulated in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start)
                   .count()
            << " ms; dials faxflow " << f.dials << " naive " << r.dials << "\n";
  Row(prefix + ".line_utilisation", f.utilisation * 100, r.utilisation * 100, "%", "95", "higher",
      "absolute");
  Row(prefix + ".makespan", f.makespan_s, r.makespan_s, "s", "null", "lower", "ratio");
  Row(prefix + ".priority9_wait_p50", f.high_priority_wait_p50_s, r.high_priority_wait_p50_s, "s", "null",
      "lower", "ratio");
  return 0;
}

}  // namespace
}  // namespace faxflow::bench

int main(int argc, char** argv) { return faxflow::bench::Main(argc, argv); }
