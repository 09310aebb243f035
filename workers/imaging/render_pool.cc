#include "workers/imaging/render_pool.h"

#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

#include "common/log.h"
#include "workers/imaging/subprocess.h"

namespace faxflow::imaging {
namespace {

Status DocError(std::string message) { return Status::Permanent(Code::kDocumentError, std::move(message)); }

std::string Errno(std::string_view what) { return std::string(what) + ": " + std::strerror(errno); }

Status WriteFile(const std::string& path, std::string_view content) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return Status::Retryable(Code::kIoError, Errno("cannot create " + path));
  bool ok = content.empty() || std::fwrite(content.data(), 1, content.size(), f) == content.size();
  if (std::fclose(f) != 0) ok = false;
  if (!ok) return Status::Retryable(Code::kIoError, "cannot write " + path);
  return Status::Ok();
}

Result<std::string> ReadFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return Status::Retryable(Code::kIoError, Errno("cannot open " + path));
  std::string bytes;
  char buf[65536];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.append(buf, n);
  bool err = std::ferror(f) != 0;
  std::fclose(f);
  if (err) return Status::Retryable(Code::kIoError, "cannot read " + path);
  return bytes;
}

// Page files gs wrote to `dir` (p<number>.tif), as (number, path) in page order.
std::vector<std::pair<long, std::string>> PageFiles(const std::string& dir) {
  std::vector<std::pair<long, std::string>> files;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return files;
  while (dirent* e = ::readdir(d)) {
    const char* name = e->d_name;
    if (name[0] != 'p') continue;
    char* end = nullptr;
    long n = std::strtol(name + 1, &end, 10);
    if (end == name + 1 || std::strcmp(end, ".tif") != 0) continue;
    files.emplace_back(n, dir + "/" + name);
  }
  ::closedir(d);
  std::sort(files.begin(), files.end());
  return files;
}

int CountPageFiles(const std::string& dir) {
  int count = 0;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] == 'p') ++count;
  ::closedir(d);
  return count;
}

// A PostScript string literal for `s`.
std::string PsString(std::string_view s) {
  std::string out = "(";
  for (char c : s) {
    if (c == '(' || c == ')' || c == '\\') out += '\\';
    out += c;
  }
  return out + ")";
}

std::string RandomNonce() {
  static thread_local std::mt19937_64 rng{std::random_device{}() ^
                                          (static_cast<uint64_t>(std::random_device{}()) << 32)};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

// gs's output of one job without our marker lines; an ERROR marker becomes "Error: <name> in <command>"
// like gs's own report.
std::string UserOutput(std::string_view output, std::string_view marker) {
  std::string out;
  size_t pos = 0;
  while (pos < output.size()) {
    size_t end = output.find('\n', pos);
    if (end == std::string_view::npos) end = output.size();
    std::string_view line = output.substr(pos, end - pos);
    pos = end + 1;
    while (line.substr(0, 2) == "GS") {  // interactive prompts: GS> or GS<n>
      size_t gt = line.find('>');
      if (gt == std::string_view::npos || gt > 8) break;
      line = line.substr(gt + 1);
    }
    size_t m = line.find(marker);
    if (m != std::string_view::npos) {
      std::string_view rest = line.substr(m + marker.size());
      if (rest.substr(0, 6) == "ERROR ") out += "Error: " + std::string(rest.substr(6)) + "\n";
      continue;
    }
    out += line;
    out += '\n';
  }
  return out;
}

std::string BaseDir(const std::string& configured) {
  if (!configured.empty()) return configured;
  const char* tmp = std::getenv("TMPDIR");
  return (tmp && *tmp) ? tmp : "/tmp";
}

// Private dirs of processes whose worker died without cleaning up (kill -9): each dir names its
// owner's pid in `owner`; dirs of owners that no longer exist are removed. Best effort.
void SweepStaleDirs(const std::string& base) {
  DIR* d = ::opendir(base.c_str());
  if (!d) return;
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(d)) {
    if (std::strncmp(e->d_name, "faxflow-gs-", 11) != 0) continue;
    std::string dir = base + "/" + e->d_name;
    std::FILE* f = std::fopen((dir + "/owner").c_str(), "r");
    if (!f) continue;
    long pid = 0;
    bool read = std::fscanf(f, "%ld", &pid) == 1;
    std::fclose(f);
    if (read && pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) stale.push_back(dir);
  }
  ::closedir(d);
  for (const auto& dir : stale) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
}

constexpr size_t kMaxOutputKept = 1 << 20;
constexpr size_t kHeadKept = 16 * 1024;

}  // namespace

namespace internal {

std::string GhostscriptMessage(std::string_view output) {
  std::string first_line, error_line;
  size_t pos = 0;
  while (pos < output.size() && error_line.empty()) {
    size_t end = output.find('\n', pos);
    if (end == std::string_view::npos) end = output.size();
    std::string_view line = output.substr(pos, end - pos);
    pos = end + 1;
    size_t b = line.find_first_not_of(" \t\r*");
    if (b == std::string_view::npos) continue;
    line = line.substr(b);
    line = line.substr(0, line.find_last_not_of(" \t\r") + 1);
    if (first_line.empty()) first_line = std::string(line);
    if (line.find("rror") != std::string_view::npos) error_line = std::string(line);
  }
  std::string m = error_line.empty() ? first_line : error_line;
  if (m.size() > 200) m = m.substr(0, 200) + "...";
  return m;
}

std::string FormatSeconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

std::string SignalName(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

int EstimatePdfPages(std::string_view pdf) {
  int objects = 0;
  for (std::string_view key : {std::string_view("/Type/Page"), std::string_view("/Type /Page")}) {
    size_t pos = 0;
    while ((pos = pdf.find(key, pos)) != std::string_view::npos) {
      pos += key.size();
      if (pos >= pdf.size() || !std::isalpha(static_cast<unsigned char>(pdf[pos]))) ++objects;
    }
  }
  int count = 0;
  size_t pos = 0;
  while ((pos = pdf.find("/Count", pos)) != std::string_view::npos) {
    pos += 6;
    while (pos < pdf.size() && (pdf[pos] == ' ' || pdf[pos] == '\n' || pdf[pos] == '\r')) ++pos;
    int n = 0, digits = 0;
    while (pos < pdf.size() && std::isdigit(static_cast<unsigned char>(pdf[pos])) && digits < 7)
      n = n * 10 + (pdf[pos++] - '0'), ++digits;
    count = std::max(count, n);
  }
  // Page objects when they are visible; else the page tree's /Count (outlines have /Count too).
  return objects > 0 ? objects : count;
}

}  // namespace internal

using internal::FormatSeconds;
using internal::GhostscriptMessage;
using internal::SignalName;

// One warm gs process and its private directory. Fields other than `child` and the job counter
// are guarded by the pool's mutex; the child is used only by the lease holder.
struct RenderPool::Process {
  std::unique_ptr<ContainedProcess> child;
  std::string dir;  // private (0700): in/ readable by gs, out/ its page files
  RenderProfile profile;
  bool bound = false;
  std::string tenant;
  int docs = 0;
  bool busy = false;
  uint64_t last_used = 0;
  uint64_t job_seq = 0;
  int64_t cpu_hard = 0;
  double cpu_at_release = -1;  // CPU seconds when last returned to the pool (idle from then on)
  uint64_t serial = 0;

  Process() = default;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process() {
    child.reset();  // SIGKILL to the group + reap
    if (!dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);  // best effort
    }
  }
};

RenderPool::Lease::Lease(Lease&& other) noexcept
    : pool_(other.pool_),
      process_(other.process_),
      served_before_(other.served_before_),
      process_failed_(other.process_failed_),
      recycle_(other.recycle_) {
  other.pool_ = nullptr;
  other.process_ = nullptr;
}

RenderPool::Lease& RenderPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    if (pool_ && process_) pool_->Release(process_, recycle_);
    pool_ = other.pool_;
    process_ = other.process_;
    served_before_ = other.served_before_;
    process_failed_ = other.process_failed_;
    recycle_ = other.recycle_;
    other.pool_ = nullptr;
    other.process_ = nullptr;
  }
  return *this;
}

RenderPool::Lease::~Lease() {
  if (pool_ && process_) pool_->Release(process_, recycle_);
}

int RenderPool::Lease::docs_served() const { return served_before_; }

pid_t RenderPool::Lease::pid() const { return process_ ? process_->child->pid() : -1; }

uint64_t RenderPool::Lease::process_serial() const { return process_ ? process_->serial : 0; }

Result<PoolJobResult> RenderPool::Lease::Run(const PoolJob& job) {
  if (!process_) return Status::Permanent(Code::kFailedPrecondition, "empty render lease");
  bool failed = false, recycle = false;
  auto result = pool_->RunJob(*process_, job, failed, recycle);
  process_failed_ = failed;
  if (recycle) recycle_ = true;
  return result;
}

RenderPool::RenderPool(RenderPoolOptions options, Clock& clock, RenderMetrics* metrics)
    : options_(std::move(options)), clock_(clock), metrics_(metrics) {
  if (options_.max_processes < 1) options_.max_processes = 1;
  if (options_.docs_per_process < 1) options_.docs_per_process = 1;
  if (options_.spare_processes < 0) options_.spare_processes = 0;
  options_.spare_processes = std::min(options_.spare_processes, options_.max_processes);
  SweepStaleDirs(BaseDir(options_.temp_dir));
}

RenderPool::~RenderPool() {
  std::vector<std::unique_ptr<Process>> all;
  {
    std::lock_guard lock(mu_);
    all.swap(processes_);
    if (metrics_) {
      metrics_->processes_idle.Decrement(published_idle_);
      metrics_->processes_busy.Decrement(published_busy_);
    }
    published_idle_ = published_busy_ = 0;
  }
  all.clear();  // kills and reaps every process
}

Result<std::unique_ptr<RenderPool::Process>> RenderPool::Start(RenderProfile profile) {
  const std::string base = BaseDir(options_.temp_dir);
  std::string pattern = base + "/faxflow-gs-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr)
    return Status::Retryable(Code::kIoError,
                             "cannot create a temp dir in " + base + ": " + std::strerror(errno));
  auto p = std::make_unique<Process>();
  p->dir = pattern;
  p->profile = profile;
  if (::mkdir((p->dir + "/in").c_str(), 0700) != 0 || ::mkdir((p->dir + "/out").c_str(), 0700) != 0)
    return Status::Retryable(Code::kIoError, Errno("cannot create the render dirs in " + p->dir));
  FF_RETURN_IF_ERROR(WriteFile(p->dir + "/owner", std::to_string(::getpid()) + "\n"));

  std::vector<std::string> argv = {
      options_.gs_path,
      "-q",
      "-dSAFER",
      "-dNOPAUSE",
      "-sDEVICE=tiffg4",
      profile.resolution == FaxResolution::kFine ? "-r204x196" : "-r204x98",
      profile.paper == PaperSize::kA4 ? "-sPAPERSIZE=a4" : "-sPAPERSIZE=letter",
      "-dFIXEDMEDIA",
      "-dPDFFitPage",
      "--permit-file-read=" + p->dir + "/in/",
      "-sOutputFile=" + p->dir + "/out/p%06d.tif",
      // No input file: gs's interactive executive reads stdin line by line (a "-" argument would
      // buffer stdin until end of file). End of stdin ends gs.
  };
  std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", "TMPDIR=" + p->dir,
                                  "HOME=" + p->dir};
  ContainmentLimits limits;
  // Soft CPU limit: this job's budget, moved before every job; hard: the life of the process.
  limits.cpu_seconds = options_.cpu_seconds;
  p->cpu_hard = options_.cpu_seconds > 0 ? options_.cpu_seconds * (options_.docs_per_process + 1) + 5 : 0;
  limits.cpu_hard_seconds = p->cpu_hard;
  limits.memory_bytes = options_.memory_bytes;
  limits.file_size_bytes = options_.max_output_bytes;
  limits.timeout_seconds = options_.timeout_seconds;
  FF_ASSIGN_OR_RETURN(p->child, ContainedProcess::Spawn(argv, p->dir, env, limits));
  FF_RETURN_IF_ERROR(p->child->Write("/prompt { } bind def\n"));  // no "GS>" prompts in the output
  {
    std::lock_guard lock(mu_);
    ++starts_;
    p->serial = ++next_serial_;
  }
  if (metrics_) metrics_->process_starts.Increment();
  return p;
}

void RenderPool::PublishGaugesLocked() {
  int idle = 0, busy = 0;
  for (auto& p : processes_) (p->busy ? busy : idle)++;
  if (metrics_) {
    metrics_->processes_idle.Increment(idle - published_idle_);
    metrics_->processes_busy.Increment(busy - published_busy_);
  }
  published_idle_ = idle;
  published_busy_ = busy;
}

Result<RenderPool::Lease> RenderPool::Acquire(const std::string& tenant, RenderProfile profile, bool fresh) {
  std::unique_lock lock(mu_);
  while (true) {
    Process* pick = nullptr;
    if (!fresh) {
      for (auto& p : processes_)
        if (!p->busy && p->bound && p->tenant == tenant && p->profile == profile &&
            (!pick || p->last_used > pick->last_used))
          pick = p.get();
    }
    bool from_spare = false;
    if (!pick) {
      for (auto& p : processes_)
        if (!p->busy && !p->bound && p->profile == profile) {
          pick = p.get();
          from_spare = true;
          break;
        }
    }
    if (pick) {
      pick->busy = true;
      pick->bound = true;
      pick->tenant = tenant;
      Lease lease(this, pick);
      lease.served_before_ = pick->docs;
      PublishGaugesLocked();
      lock.unlock();
      if (from_spare) ReplenishSpares();
      return lease;
    }
    std::unique_ptr<Process> evicted;
    if (static_cast<int>(processes_.size()) + starting_ >= options_.max_processes) {
      auto lru = processes_.end();
      for (auto it = processes_.begin(); it != processes_.end(); ++it)
        if (!(*it)->busy && (lru == processes_.end() || (*it)->last_used < (*lru)->last_used)) lru = it;
      if (lru == processes_.end()) {
        released_.wait(lock);
        continue;
      }
      evicted = std::move(*lru);
      processes_.erase(lru);
      ++recycles_;
      PublishGaugesLocked();
    }
    ++starting_;
    lock.unlock();
    if (evicted) Retire(std::move(evicted), RetireReason::kEvicted);
    auto started = Start(profile);
    lock.lock();
    --starting_;
    if (!started.ok()) {
      released_.notify_all();
      return started.status();
    }
    Process* p = started->get();
    p->busy = true;
    p->bound = true;
    p->tenant = tenant;
    processes_.push_back(std::move(*started));
    PublishGaugesLocked();
    Lease lease(this, p);
    lease.served_before_ = 0;
    return lease;
  }
}

std::optional<RenderPool::Lease> RenderPool::TryAcquireIdle(const std::string& tenant,
                                                            RenderProfile profile) {
  std::unique_lock lock(mu_);
  Process* pick = nullptr;
  for (auto& p : processes_)
    if (!p->busy && p->bound && p->tenant == tenant && p->profile == profile) pick = p.get();
  bool from_spare = false;
  if (!pick) {
    for (auto& p : processes_)
      if (!p->busy && !p->bound && p->profile == profile) {
        pick = p.get();
        from_spare = true;
        break;
      }
  }
  if (!pick) return std::nullopt;
  pick->busy = true;
  pick->bound = true;
  pick->tenant = tenant;
  Lease lease(this, pick);
  lease.served_before_ = pick->docs;
  PublishGaugesLocked();
  lock.unlock();
  if (from_spare) ReplenishSpares();
  return lease;
}

Status RenderPool::WarmUp() {
  std::unique_lock lock(mu_);
  while (true) {
    int spares = 0;
    for (auto& p : processes_)
      if (!p->busy && !p->bound) ++spares;
    if (spares + starting_ >= options_.spare_processes ||
        static_cast<int>(processes_.size()) + starting_ >= options_.max_processes)
      return Status::Ok();
    ++starting_;
    lock.unlock();
    auto started = Start(RenderProfile{});
    lock.lock();
    --starting_;
    if (!started.ok()) return started.status();
    processes_.push_back(std::move(*started));
    PublishGaugesLocked();
    released_.notify_all();
  }
}

void RenderPool::ReplenishSpares() {
  Status s = WarmUp();
  if (!s.ok()) FF_LOG_WARN(Logger("imaging"), "cannot start a spare Ghostscript process: {}", s.ToString());
}

void RenderPool::Release(Process* process, bool recycle) {
  RetireReason reason = RetireReason::kFailure;
  bool retire = recycle;
  if (!retire && process->docs + 1 >= options_.docs_per_process)
    retire = true, reason = RetireReason::kDocsLimit;
  double used = retire ? -1 : process->child->CpuSeconds();
  if (!retire && used < 0) retire = true;
  if (!retire && process->cpu_hard > 0 &&
      used + static_cast<double>(options_.cpu_seconds) + 1 > static_cast<double>(process->cpu_hard))
    retire = true, reason = RetireReason::kCpuBudget;
  process->cpu_at_release = used;
  std::unique_ptr<Process> retired;
  {
    std::lock_guard lock(mu_);
    process->busy = false;
    ++process->docs;
    if (retire) {
      auto it =
          std::find_if(processes_.begin(), processes_.end(), [&](auto& p) { return p.get() == process; });
      if (it != processes_.end()) {
        retired = std::move(*it);
        processes_.erase(it);
        ++recycles_;
      }
    } else {
      process->last_used = ++use_seq_;
    }
    PublishGaugesLocked();
  }
  released_.notify_all();
  if (retired) {
    Retire(std::move(retired), reason);
    ReplenishSpares();
  }
}

void RenderPool::Retire(std::unique_ptr<Process> process, RetireReason reason) {
  if (metrics_) {
    switch (reason) {
      case RetireReason::kDocsLimit:
        metrics_->recycles_docs_limit.Increment();
        break;
      case RetireReason::kFailure:
        metrics_->recycles_failure.Increment();
        break;
      case RetireReason::kEvicted:
        metrics_->recycles_evicted.Increment();
        break;
      case RetireReason::kCpuBudget:
        metrics_->recycles_cpu_budget.Increment();
        break;
    }
  }
  process->child->Kill();
  process->child->Reap(true);
  double cpu = process->child->CpuSeconds();
  if (cpu > 0) {
    double total = retired_cpu_seconds_.load();
    while (!retired_cpu_seconds_.compare_exchange_weak(total, total + cpu)) {
    }
  }
  int64_t rss = process->child->PeakRssBytes();
  int64_t seen = retired_peak_rss_.load();
  while (rss > seen && !retired_peak_rss_.compare_exchange_weak(seen, rss)) {
  }
  process.reset();  // reaped; removes the private dir
}

RenderPool::Stats RenderPool::stats() const {
  std::lock_guard lock(mu_);
  Stats s;
  s.processes = static_cast<int>(processes_.size());
  for (auto& p : processes_) {
    if (!p->busy) ++s.idle;
    if (!p->busy && !p->bound) ++s.spares;
  }
  s.starts = starts_;
  s.recycles = recycles_;
  s.jobs = jobs_;
  s.peak_rss_bytes = retired_peak_rss_.load();
  s.cpu_seconds = retired_cpu_seconds_.load();
  for (auto& p : processes_) {
    if (p->busy) continue;  // its child belongs to the lease holder; counted when idle or retired
    s.peak_rss_bytes = std::max(s.peak_rss_bytes, p->child->PeakRssBytes());
    s.cpu_seconds += std::max(0.0, p->child->CpuSeconds());
  }
  return s;
}

Result<PoolJobResult> RenderPool::RunJob(Process& p, const PoolJob& job, bool& failed, bool& recycle) {
  {
    std::lock_guard lock(mu_);
    ++jobs_;
  }
  ContainedProcess& child = *p.child;
  const uint64_t seq = ++p.job_seq;
  const std::string input = p.dir + "/in/doc-" + std::to_string(seq) + (job.pdf ? ".pdf" : ".ps");
  const std::string out_dir = p.dir + "/out";
  struct RemoveInput {
    const std::string& path;
    ~RemoveInput() { ::unlink(path.c_str()); }
  } remove_input{input};
  FF_RETURN_IF_ERROR(WriteFile(input, job.content));

  // This job's CPU budget: what the process used so far + cpu_seconds (SIGXCPU at the soft limit).
  double used_before = child.CpuSeconds();
  if (used_before < 0) {
    failed = recycle = true;
    return Status::Retryable(Code::kUnavailable, "the warm render process is gone");
  }
  // An idle process does not compute: if it did, an earlier document left code running in it.
  if (p.cpu_at_release >= 0 && used_before - p.cpu_at_release > 0.25) {
    failed = recycle = true;
    return Status::Retryable(Code::kUnavailable, "the warm render process was busy while idle");
  }
  int64_t soft = 0;
  if (options_.cpu_seconds > 0) {
    soft = static_cast<int64_t>(std::llround(used_before)) + options_.cpu_seconds;
    if (soft > p.cpu_hard) {
      recycle = true;
      return Status::Retryable(Code::kUnavailable, "the warm render process has spent its CPU budget");
    }
    Status s = child.SetCpuLimit(soft, p.cpu_hard);
    if (!s.ok()) {
      failed = recycle = true;
      return s;
    }
  }

  const std::string nonce = RandomNonce();
  const std::string marker = "FAXFLOW " + nonce + " ";
  const std::string say = "(\\n" + marker;  // start of a PostScript string printing a marker line
  std::string body;
  if (job.pdf) {
    // The page count is reported first; more than max_pages renders nothing.
    body = PsString(input) + " (r) file runpdfbegin pdfpagecount dup " + say +
           "PAGES ) print =print (\\n) print flush " + "dup " + std::to_string(options_.max_pages) +
           " gt { pop 0 } if " + std::to_string(job.last_page) + " min " + std::to_string(job.first_page) +
           " 1 3 -1 roll { pdfgetpage pdfshowpage } for runpdfend";
  } else {
    body = PsString(input) + " run";
  }
  // Everything is inside one procedure, scanned before it runs: the document cannot read the rest
  // of the command from stdin. Operand stack left-overs are popped before restore.
  std::string command = "{{ clear save { " + body + " } stopped { " + say +
                        "ERROR ) print $error /errorname get =print ( in ) print $error /command get =print "
                        "(\\n) print flush } if count 1 sub { pop } repeat restore " +
                        say + "DONE\\n) print flush } stopped { " + say +
                        "BROKEN\\n) print flush } if } bind exec\n";

  auto start = clock_.Monotonic();
  auto deadline = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(options_.timeout_seconds));
  Status written = child.Write(command);
  if (!written.ok()) {
    failed = recycle = true;
    child.Kill();
    child.Reap(true);
    return Status::Retryable(Code::kUnavailable, "the warm render process is gone: " + written.message());
  }

  std::string out, head;
  size_t scan_from = 0;
  bool done = false, broken = false, error = false, eof = false;
  int pdf_pages = -1;
  auto last_count = start;
  auto kill = [&] {
    failed = recycle = true;
    child.Kill();
    child.Reap(true);
  };
  while (true) {
    auto now = clock_.Monotonic();
    if (now >= deadline) {
      kill();
      return DocError("render timed out after " + FormatSeconds(options_.timeout_seconds) + " s (killed)");
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    bool open =
        child.Read(out, std::clamp(left, std::chrono::milliseconds(1), std::chrono::milliseconds(20)));
    size_t pos;
    while ((pos = out.find(marker, scan_from)) != std::string::npos) {
      size_t eol = out.find('\n', pos);
      if (eol == std::string::npos) break;
      std::string_view line(out.data() + pos + marker.size(), eol - pos - marker.size());
      if (line.substr(0, 6) == "PAGES ") pdf_pages = std::atoi(std::string(line.substr(6)).c_str());
      if (line.substr(0, 6) == "ERROR ") error = true;
      if (line == "DONE") done = true;
      if (line == "BROKEN") broken = true;
      scan_from = eol + 1;
    }
    if (done || broken) break;
    if (!open) {
      eof = true;
      child.Reap(true);
      break;
    }
    if (out.size() > kMaxOutputKept) {
      if (head.empty()) head = out.substr(0, kHeadKept);
      size_t cut = out.size() - 4096;
      out.erase(0, cut);
      scan_from = scan_from > cut ? scan_from - cut : 0;
    }
    if (!job.pdf && clock_.Monotonic() - last_count >= std::chrono::milliseconds(20)) {
      last_count = clock_.Monotonic();
      if (CountPageFiles(out_dir) > options_.max_pages) {
        kill();
        return DocError("document has more than " + std::to_string(options_.max_pages) + " pages");
      }
    }
  }
  std::string message = GhostscriptMessage(UserOutput(head.empty() ? out : head, marker));

  if (eof) {
    recycle = true;
    if (!child.exited()) {
      failed = true;
      int sig = child.signal();
      double cpu = child.CpuSeconds();
      bool cpu_limit =
          sig == SIGXCPU || (sig == SIGKILL && soft > 0 && cpu >= static_cast<double>(soft) - 0.5);
      if (cpu_limit)
        return DocError("render exceeded the CPU limit of " + std::to_string(options_.cpu_seconds) +
                        " s (killed)");
      if (sig == SIGXFSZ)
        return DocError("rendered output exceeded the limit of " + std::to_string(options_.max_output_bytes) +
                        " bytes (killed)");
      return DocError("ghostscript crashed on the document (" + SignalName(sig) + ")" +
                      (message.empty() ? "" : ": " + message));
    }
    if (child.exit_code() != 0)
      return DocError("ghostscript rejected the document: " +
                      (message.empty() ? "exit status " + std::to_string(child.exit_code()) : message));
    // gs ended normally in the middle of the job (the document called quit): like a one-shot run,
    // the pages written so far are the result.
  } else if (broken) {
    failed = recycle = true;
    return DocError("ghostscript rejected the document: " +
                    (message.empty() ? std::string("the document broke the render session") : message));
  } else if (error) {
    recycle = true;  // a failed job may have left state behind: start the next one clean
    return DocError("ghostscript rejected the document: " + message);
  }

  PoolJobResult result;
  result.pdf_pages = job.pdf ? pdf_pages : -1;
  result.message = message;
  for (auto& [number, path] : PageFiles(out_dir)) {
    auto bytes = ReadFile(path);
    ::unlink(path.c_str());
    if (!bytes.ok()) {
      recycle = true;
      return bytes.status();
    }
    result.pages.push_back(std::move(*bytes));
  }
  if (job.pdf && pdf_pages > options_.max_pages)
    return DocError("document has more than " + std::to_string(options_.max_pages) + " pages");
  if (static_cast<int>(result.pages.size()) > options_.max_pages)
    return DocError("document has more than " + std::to_string(options_.max_pages) + " pages");
  return result;
}

}  // namespace faxflow::imaging
