// A pool of warm, contained Ghostscript processes, so that a small document does not pay gs's
// start-up (~36 ms, about 90% of a one-page render) every time. docs/imaging.md has the design.
//
// Each pooled process is started like the one-shot renderer (subprocess.h: -dSAFER, its own
// process group, rlimits, a private 0700 temp dir, minimal environment) but without -dBATCH and
// with stdin as a command pipe: gs reads one job per line. A job is one document written into
// the process's private `in/` directory (the only directory gs may read, --permit-file-read),
// run inside save/restore and `stopped`, pages written by the tiffg4 device to the private
// `out/` directory as one file per page (-sOutputFile=out/p%06d.tif). A random per-job nonce marks
// the end of the job on gs's output. The parent enforces per job: the wall-clock deadline (then
// SIGKILL of the group), the CPU limit (RLIMIT_CPU soft limit moved to "used so far + limit"
// before each job with prlimit; the hard limit bounds the whole life of the process), the page
// limit (output files counted while the job runs) and RLIMIT_FSIZE / RLIMIT_AS as for one-shot
// runs.
//
// Isolation: a process is bound to ONE tenant (and one page profile: resolution + paper) by its
// first job and never serves another; it is retired after `docs_per_process` documents, after
// any failed job (PostScript error, timeout, crash, limit) and when its CPU budget is spent. A
// hostile document therefore costs at most its own process and can only ever meet later
// documents of the same tenant, at most docs_per_process - 1 of them (set 1 for none).
// Unbound spare processes are kept warm so a new tenant does not wait for a cold start.
//
// Lifecycle: construct, Acquire leases from any thread, destroy after every lease is gone (the
// destructor kills every process). Threading: thread-safe; a Lease is used by one thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "workers/imaging/metrics.h"
#include "workers/imaging/renderer.h"

namespace faxflow::imaging {

struct RenderProfile {
  FaxResolution resolution = FaxResolution::kFine;
  PaperSize paper = PaperSize::kA4;
  bool operator==(const RenderProfile&) const = default;
};

struct RenderPoolOptions {
  std::string gs_path = "gs";
  double timeout_seconds = 60;              // per job, wall clock
  int64_t cpu_seconds = 30;                 // per job
  int64_t memory_bytes = int64_t{1} << 30;  // RLIMIT_AS of the process
  int64_t max_output_bytes = 200LL << 20;   // RLIMIT_FSIZE (one page file)
  int max_pages = 200;                      // per job; more is a document error
  std::string temp_dir;                     // parent of the private dirs; empty = $TMPDIR or /tmp
  int max_processes = 4;                    // live processes, busy or idle
  int docs_per_process = 50;                // then the process is retired
  int spare_processes = 1;                  // unbound warm processes kept ready (default profile)
};

// One document for a pooled process.
struct PoolJob {
  std::string_view content;  // the PDF or PostScript program
  bool pdf = false;
  // PDF only: pages first..last (1-based, clamped to the document); last = 0 renders nothing and
  // only reports the page count.
  int first_page = 1;
  int last_page = 0;
};

struct PoolJobResult {
  std::vector<std::string> pages;  // one TIFF per page, in page order, not yet validated
  int pdf_pages = -1;              // page count of a PDF as gs sees it (-1: not a PDF job)
  std::string message;             // the most useful line of gs's output ("" if none)
};

class RenderPool {
 public:
  struct Process;

  // A process lent to one caller: run jobs on it, then let it go (destructor) to return it.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

    // Runs one job. Document problems (PostScript error, timeout, CPU/output/page limit, crash)
    // are kDocumentError with the same messages as one-shot renders; a process that died before
    // the job could be given to it is retryable (kUnavailable).
    Result<PoolJobResult> Run(const PoolJob& job);

    // Documents this process served before the current lease (0 = fresh process).
    int docs_served() const;
    // The last Run killed or lost the process (timeout, crash, limit, broken session).
    bool process_failed() const { return process_failed_; }
    pid_t pid() const;
    // Identifies the process for its whole life (pids may be reused): 1, 2, 3... per pool.
    uint64_t process_serial() const;
    explicit operator bool() const { return process_ != nullptr; }

   private:
    friend class RenderPool;
    Lease(RenderPool* pool, Process* process) : pool_(pool), process_(process) {}
    RenderPool* pool_ = nullptr;
    Process* process_ = nullptr;
    int served_before_ = 0;
    bool process_failed_ = false;
    bool recycle_ = false;  // retire the process when the lease ends
  };

  struct Stats {
    int processes = 0;  // live, busy or idle
    int idle = 0;
    int spares = 0;  // idle and not yet bound to a tenant
    uint64_t starts = 0;
    uint64_t recycles = 0;
    uint64_t jobs = 0;
    // Largest peak RSS and total CPU of the pool's idle and retired processes (busy ones are
    // left out: their lease holder owns them).
    int64_t peak_rss_bytes = 0;
    double cpu_seconds = 0;
  };

  // `metrics` may be null.
  RenderPool(RenderPoolOptions options, Clock& clock, RenderMetrics* metrics);
  ~RenderPool();
  RenderPool(const RenderPool&) = delete;
  RenderPool& operator=(const RenderPool&) = delete;

  // A process of `tenant` with `profile`: an idle one already bound to them, else a spare, else a
  // new one (evicting the least recently used idle process of someone else when the pool is
  // full); waits while every process is busy. `fresh` asks for a process that has served no
  // document yet. Errors are about this machine (cannot start gs).
  Result<Lease> Acquire(const std::string& tenant, RenderProfile profile, bool fresh = false);

  // An idle, already started process of `tenant` (bound to it or spare), without waiting or
  // starting one; empty if there is none. Used to render page ranges in parallel.
  std::optional<Lease> TryAcquireIdle(const std::string& tenant, RenderProfile profile);

  // Starts spare processes up to spare_processes (call at worker start; also done on demand).
  Status WarmUp();

  Stats stats() const;
  const RenderPoolOptions& options() const { return options_; }

 private:
  enum class RetireReason { kDocsLimit, kFailure, kEvicted, kCpuBudget };
  Result<std::unique_ptr<Process>> Start(RenderProfile profile);
  void Release(Process* process, bool recycle);
  void Retire(std::unique_ptr<Process> process, RetireReason reason);  // outside mu_
  void ReplenishSpares();
  void PublishGaugesLocked();
  Result<PoolJobResult> RunJob(Process& process, const PoolJob& job, bool& failed, bool& recycle);

  RenderPoolOptions options_;
  Clock& clock_;
  RenderMetrics* metrics_;

  mutable std::mutex mu_;
  std::condition_variable released_;
  std::vector<std::unique_ptr<Process>> processes_;  // guarded by mu_
  int starting_ = 0;                                 // slots reserved by starts in progress
  uint64_t use_seq_ = 0;
  uint64_t next_serial_ = 0;
  uint64_t starts_ = 0, recycles_ = 0, jobs_ = 0;
  int published_idle_ = 0, published_busy_ = 0;
  std::atomic<int64_t> retired_peak_rss_{0};
  std::atomic<double> retired_cpu_seconds_{0};
};

namespace internal {
// The most useful line of gs's output: the first one mentioning an error, else the first
// non-empty one; trimmed, at most 200 characters. Shared by the one-shot and pooled renders.
std::string GhostscriptMessage(std::string_view output);
std::string FormatSeconds(double s);
std::string SignalName(int sig);
// Pages of a PDF guessed from its bytes (page objects, else /Count); 0 when it cannot tell.
// Cheap; decides whether and how to split a document into page ranges.
int EstimatePdfPages(std::string_view pdf);
}  // namespace internal

}  // namespace faxflow::imaging
