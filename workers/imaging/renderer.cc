#include "workers/imaging/renderer.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>

#include "pages/pages.h"
#include "workers/imaging/metrics.h"
#include "workers/imaging/render_pool.h"
#include "workers/imaging/subprocess.h"

namespace faxflow::imaging {
namespace {

Status DocError(std::string message) { return Status::Permanent(Code::kDocumentError, std::move(message)); }

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

// A private directory (mode 0700) removed with its contents on scope exit.
class TempDir {
 public:
  static Result<std::unique_ptr<TempDir>> Create(const std::string& parent) {
    std::string base = parent;
    if (base.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      base = (tmp && *tmp) ? tmp : "/tmp";
    }
    std::string pattern = base + "/faxflow-render-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr)
      return Status::Retryable(Code::kIoError,
                               "cannot create a temp dir in " + base + ": " + std::strerror(errno));
    return std::unique_ptr<TempDir>(new TempDir(pattern));
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);  // best effort: nothing useful to do on failure
  }
  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

Status WriteFile(const std::string& path, std::string_view content) {
  File f(std::fopen(path.c_str(), "wb"));
  if (!f) return Status::Retryable(Code::kIoError, "cannot create " + path + ": " + std::strerror(errno));
  if (!content.empty() && std::fwrite(content.data(), 1, content.size(), f.get()) != content.size())
    return Status::Retryable(Code::kIoError, "cannot write " + path + ": " + std::strerror(errno));
  if (std::fclose(f.release()) != 0) return Status::Retryable(Code::kIoError, "cannot write " + path);
  return Status::Ok();
}

// Reads a file if it exists; nullopt-like empty Result value with found=false otherwise.
Result<std::pair<bool, std::string>> ReadIfExists(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) {
    if (errno == ENOENT) return std::make_pair(false, std::string());
    return Status::Retryable(Code::kIoError, "cannot open " + path + ": " + std::strerror(errno));
  }
  std::string bytes;
  char buf[65536];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) bytes.append(buf, n);
  if (std::ferror(f.get())) return Status::Retryable(Code::kIoError, "cannot read " + path);
  return std::make_pair(true, std::move(bytes));
}

// Appends one Latin-1 character as a PostScript string character.
void AppendPsChar(std::string& out, unsigned char c) {
  if (c == '(' || c == ')' || c == '\\') {
    out += '\\';
    out += static_cast<char>(c);
  } else if (c < 0x20 || c >= 0x7F) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\%03o", c);
    out += buf;
  } else {
    out += static_cast<char>(c);
  }
}

// Decodes UTF-8 to Latin-1 bytes (code points above U+00FF -> '?'); bytes that are not valid
// UTF-8 are taken as Latin-1 as they are.
std::string ToLatin1(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  auto cont = [&](size_t k) {
    return i + k < text.size() && (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
  };
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    uint32_t cp = 0;
    size_t len = 0;
    if (c < 0x80) {
      cp = c, len = 1;
    } else if ((c & 0xE0) == 0xC0 && cont(1)) {
      cp = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3Fu), len = 2;
    } else if ((c & 0xF0) == 0xE0 && cont(1) && cont(2)) {
      cp = 0x10000, len = 3;  // above Latin-1 either way
    } else if ((c & 0xF8) == 0xF0 && cont(1) && cont(2) && cont(3)) {
      cp = 0x10000, len = 4;
    } else {
      cp = c, len = 1;  // not UTF-8: Latin-1 byte
    }
    if (cp < 0x80 || (len == 2 && cp >= 0xA0 && cp <= 0xFF) || (len == 1)) {
      out += static_cast<char>(cp);
    } else {
      out += '?';
    }
    i += len;
  }
  return out;
}

using internal::FormatSeconds;
using internal::GhostscriptMessage;
using internal::SignalName;

// Runs a job on `lease`; when it fails in a process that had served earlier documents (or the
// process was gone), runs it once more on a fresh process: a process poisoned by an earlier
// document of the tenant must not fail this one.
Result<PoolJobResult> RunWithRetry(RenderPool& pool, RenderPool::Lease lease, const std::string& tenant,
                                   RenderProfile profile, const PoolJob& job) {
  auto result = lease.Run(job);
  bool reused = lease.docs_served() > 0;
  if (result.ok() && !(reused && result->pages.empty() && job.last_page != 0)) return result;
  bool gone = !result.ok() && result.status().code() == Code::kUnavailable;
  bool suspect = reused && (result.ok() || result.status().code() == Code::kDocumentError);
  if (!gone && !suspect) return result;
  { RenderPool::Lease done = std::move(lease); }  // returned (and retired) first: frees its slot
  FF_ASSIGN_OR_RETURN(auto fresh, pool.Acquire(tenant, profile, /*fresh=*/true));
  return fresh.Run(job);
}

// Pages from a pooled process carry that process's running page number; rewriting each one as
// page 1 of 1 (the strip is copied) gives exactly the bytes a one-shot render gives, so the
// content-addressed page ids do not depend on which process rendered them. Then validates them.
Status NormalisePages(std::vector<std::string>& pages, int first_number) {
  for (size_t i = 0; i < pages.size(); ++i) {
    std::string which = "output page " + std::to_string(first_number + static_cast<int>(i));
    auto split = pages::SplitPages(pages[i]);
    if (!split.ok() || split->size() != 1)
      return DocError(which + " is not a single fax page" +
                      (split.ok() ? "" : ": " + split.status().message()));
    auto format = pages::ValidateFaxPage((*split)[0]);
    if (!format.ok()) return DocError(which + " is not a fax page: " + format.status().message());
    pages[i] = std::move((*split)[0]);
  }
  return Status::Ok();
}

}  // namespace

RendererOptions RendererOptions::FromConfig(const Config& config) {
  RendererOptions o;
  if (!config.imaging_gs_path.empty()) o.gs_path = config.imaging_gs_path;
  if (config.imaging_timeout_seconds > 0) o.timeout_seconds = config.imaging_timeout_seconds;
  if (config.imaging_cpu_seconds > 0) o.cpu_seconds = config.imaging_cpu_seconds;
  if (config.imaging_memory_bytes > 0) o.memory_bytes = config.imaging_memory_bytes;
  if (config.imaging_max_output_bytes > 0) o.max_output_bytes = config.imaging_max_output_bytes;
  if (config.imaging_max_pages > 0) o.max_pages = static_cast<int>(config.imaging_max_pages);
  if (config.imaging_render_processes >= 0)
    o.pool_processes = static_cast<int>(config.imaging_render_processes);
  if (config.imaging_render_docs_per_process > 0)
    o.docs_per_process = static_cast<int>(config.imaging_render_docs_per_process);
  if (config.imaging_render_parallel_min_pages >= 0)
    o.parallel_min_pages = static_cast<int>(config.imaging_render_parallel_min_pages);
  return o;
}

std::string TextToPostScript(std::string_view text, PaperSize paper) {
  constexpr int kColumns = 80;
  constexpr double kMargin = 54, kLeading = 12, kFontSize = 10;
  double height = paper == PaperSize::kA4 ? 842 : 792;
  int lines_per_page = static_cast<int>((height - 2 * kMargin) / kLeading);
  double top = height - kMargin - kFontSize;

  // Lines of Latin-1 characters; an empty optional-like marker "\f" means page break.
  std::string latin = ToLatin1(text);
  std::vector<std::string> lines;
  std::vector<bool> page_break_before;
  std::string current;
  bool pending_break = false;
  auto flush = [&](bool force) {
    if (force || !current.empty()) {
      lines.push_back(current);
      page_break_before.push_back(pending_break);
      pending_break = false;
    }
    current.clear();
  };
  for (size_t i = 0; i < latin.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(latin[i]);
    if (c == '\r') {
      if (i + 1 < latin.size() && latin[i + 1] == '\n') continue;
      c = '\n';
    }
    if (c == '\n') {
      flush(true);
      continue;
    }
    if (c == '\f') {
      if (!current.empty()) flush(true);
      pending_break = true;
      continue;
    }
    if (c == '\t') {
      do current += ' ';
      while (current.size() % 8 != 0 && current.size() < kColumns);
    } else if (c < 0x20 || c == 0x7F || (c >= 0x80 && c < 0xA0)) {
      continue;  // control characters are not printable
    } else {
      current += static_cast<char>(c);
    }
    if (current.size() >= kColumns) {
      // Wrap at the last blank of the second half of the line, else hard.
      size_t cut = current.rfind(' ');
      std::string rest;
      if (cut != std::string::npos && cut >= kColumns / 2) {
        rest = current.substr(cut + 1);
        current.resize(cut);
      }
      if (current.size() > kColumns) {
        rest = current.substr(kColumns) + rest;
        current.resize(kColumns);
      }
      flush(true);
      current = rest;
    }
  }
  if (!current.empty()) flush(true);
  if (pending_break) {
    lines.emplace_back();
    page_break_before.push_back(true);
  }

  std::string ps;
  ps += "%!PS-Adobe-3.0\n%%Creator: faxflow text renderer\n";
  ps += "/Courier findfont dup length dict begin {1 index /FID ne {def} {pop pop} ifelse} forall\n";
  ps += "/Encoding ISOLatin1Encoding def currentdict end /Courier-Latin1 exch definefont pop\n";
  ps += "/P { /Courier-Latin1 findfont " + FormatSeconds(kFontSize) + " scalefont setfont } def\n";
  ps += "/L { " + FormatSeconds(kMargin) + " exch moveto show } def\nP\n";
  int on_page = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    if ((page_break_before[i] && on_page > 0) || on_page == lines_per_page) {
      ps += "showpage P\n";
      on_page = 0;
    }
    if (!lines[i].empty()) {
      ps += '(';
      for (char ch : lines[i]) AppendPsChar(ps, static_cast<unsigned char>(ch));
      ps += ") " + FormatSeconds(top - on_page * kLeading) + " L\n";
    }
    ++on_page;
  }
  ps += "showpage\n%%EOF\n";
  return ps;
}

Renderer::Renderer(RendererOptions options, Clock& clock, MetricsRegistry* registry)
    : options_(std::move(options)), clock_(clock) {
  if (registry) metrics_ = std::make_unique<RenderMetrics>(*registry);
  if (options_.pool_processes > 0) {
    RenderPoolOptions po;
    po.gs_path = options_.gs_path;
    po.timeout_seconds = options_.timeout_seconds;
    po.cpu_seconds = options_.cpu_seconds;
    po.memory_bytes = options_.memory_bytes;
    po.max_output_bytes = options_.max_output_bytes;
    po.max_pages = options_.max_pages;
    po.temp_dir = options_.temp_dir;
    po.max_processes = options_.pool_processes;
    po.docs_per_process = options_.docs_per_process;
    po.spare_processes = options_.spare_processes;
    pool_ = std::make_unique<RenderPool>(po, clock_, metrics_.get());
  }
}

Renderer::~Renderer() = default;

Status Renderer::CheckGhostscript() const {
  FF_ASSIGN_OR_RETURN(auto dir, TempDir::Create(options_.temp_dir));
  ContainmentLimits limits;
  limits.timeout_seconds = 10;
  limits.cpu_seconds = 5;
  limits.memory_bytes = options_.memory_bytes;
  FF_ASSIGN_OR_RETURN(ContainedRun run,
                      RunContained({options_.gs_path, "--version"}, dir->path(),
                                   {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C"}, limits, clock_));
  if (!run.exited || run.exit_code != 0)
    return Status::Fatal(Code::kUnavailable,
                         options_.gs_path + " --version failed: " + GhostscriptMessage(run.output));
  if (pool_) FF_RETURN_IF_ERROR(pool_->WarmUp());
  return Status::Ok();
}

Result<RenderOutput> Renderer::Render(std::string_view content, DocumentType type,
                                      const RenderRequest& request) const {
  auto out = RenderDocument(content, type, request);
  if (metrics_) {
    if (out.ok()) {
      metrics_->renders_ok.Increment();
      metrics_->render_seconds.Observe(out->seconds);
      metrics_->pages.Increment(static_cast<double>(out->pages.size()));
    } else if (out.status().code() == Code::kDocumentError) {
      metrics_->renders_document_error.Increment();
    } else {
      metrics_->renders_error.Increment();
    }
  }
  return out;
}

Result<RenderOutput> Renderer::RenderDocument(std::string_view content, DocumentType type,
                                              const RenderRequest& request) const {
  auto start = clock_.Monotonic();
  Result<RenderOutput> out = Status::Permanent(Code::kInternal, "unreachable");
  switch (type) {
    case DocumentType::kPdf:
      out = RenderWithGhostscript(content, ".pdf", request);
      break;
    case DocumentType::kPostScript:
      out = RenderWithGhostscript(content, ".ps", request);
      break;
    case DocumentType::kPlainText:
      out = RenderWithGhostscript(TextToPostScript(content, request.paper), ".ps", request);
      break;
    case DocumentType::kTiff:
      out = NormaliseTiff(content);
      break;
  }
  if (out.ok()) out->seconds = std::chrono::duration<double>(clock_.Monotonic() - start).count();
  return out;
}

Result<std::vector<std::string>> Renderer::CheckPages(std::string_view tiff, std::string_view what) const {
  FF_ASSIGN_OR_RETURN(int count, pages::CountPages(tiff));
  if (count > options_.max_pages)
    return DocError("document has more than " + std::to_string(options_.max_pages) + " pages");
  FF_ASSIGN_OR_RETURN(auto split, pages::SplitPages(tiff));
  for (size_t i = 0; i < split.size(); ++i) {
    auto format = pages::ValidateFaxPage(split[i]);
    if (!format.ok())
      return DocError(std::string(what) + " page " + std::to_string(i + 1) +
                      " is not a fax page: " + format.status().message());
  }
  return split;
}

Result<RenderOutput> Renderer::NormaliseTiff(std::string_view content) const {
  auto split = CheckPages(content, "TIFF");
  if (!split.ok()) {
    if (split.status().code() != Code::kDocumentError) return split.status();
    return DocError(split.status().message() +
                    " (TIFF documents must be bilevel, 1728 pixels wide, 204x98 or 204x196 dpi)");
  }
  RenderOutput out;
  for (auto& page : *split) {
    // Re-encode as one G4 page (the strip is copied when it already is G4).
    FF_ASSIGN_OR_RETURN(std::string g4, pages::JoinPages({page}));
    out.pages.push_back(std::move(g4));
  }
  return out;
}

Result<RenderOutput> Renderer::RenderWithGhostscript(std::string_view program, std::string_view extension,
                                                     const RenderRequest& request) const {
  if (pool_) return RenderPooled(program, extension == ".pdf", request);
  FF_ASSIGN_OR_RETURN(auto dir, TempDir::Create(options_.temp_dir));
  const std::string input = dir->path() + "/input" + std::string(extension);
  const std::string output = dir->path() + "/output.tif";
  FF_RETURN_IF_ERROR(WriteFile(input, program));

  std::vector<std::string> argv = {
      options_.gs_path,
      "-q",
      "-dSAFER",
      "-dBATCH",
      "-dNOPAUSE",
      "-sDEVICE=tiffg4",
      request.resolution == FaxResolution::kFine ? "-r204x196" : "-r204x98",
      request.paper == PaperSize::kA4 ? "-sPAPERSIZE=a4" : "-sPAPERSIZE=letter",
      "-dFIXEDMEDIA",
      "-dPDFFitPage",
      "-dFirstPage=1",
      "-dLastPage=" + std::to_string(options_.max_pages + 1),  // one more than allowed: detects "too many"
      "-sOutputFile=" + output,
      "-f",
      input,
  };
  std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", "TMPDIR=" + dir->path(),
                                  "HOME=" + dir->path()};
  ContainmentLimits limits;
  limits.cpu_seconds = options_.cpu_seconds;
  limits.memory_bytes = options_.memory_bytes;
  limits.file_size_bytes = options_.max_output_bytes;
  limits.timeout_seconds = options_.timeout_seconds;
  FF_ASSIGN_OR_RETURN(ContainedRun run, RunContained(argv, dir->path(), env, limits, clock_));

  std::string message = GhostscriptMessage(run.output);
  if (run.timed_out)
    return DocError("render timed out after " + FormatSeconds(options_.timeout_seconds) + " s (killed)");
  if (!run.exited) {
    // RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL at the hard one (soft + 1 s).
    bool cpu_limit =
        run.signal == SIGXCPU || (run.signal == SIGKILL && options_.cpu_seconds > 0 &&
                                  run.cpu_seconds >= static_cast<double>(options_.cpu_seconds) - 0.5);
    if (cpu_limit)
      return DocError("render exceeded the CPU limit of " + std::to_string(options_.cpu_seconds) +
                      " s (killed)");
    if (run.signal == SIGXFSZ)
      return DocError("rendered output exceeded the limit of " + std::to_string(options_.max_output_bytes) +
                      " bytes (killed)");
    return DocError("ghostscript crashed on the document (" + SignalName(run.signal) + ")" +
                    (message.empty() ? "" : ": " + message));
  }
  if (run.exit_code != 0)
    return DocError("ghostscript rejected the document: " +
                    (message.empty() ? "exit status " + std::to_string(run.exit_code) : message));
  FF_ASSIGN_OR_RETURN(auto rendered, ReadIfExists(output));
  if (!rendered.first || rendered.second.empty()) {
    if (!message.empty()) return DocError("ghostscript rejected the document: " + message);
    return DocError("document has no pages");
  }
  FF_ASSIGN_OR_RETURN(auto pages, CheckPages(rendered.second, "output"));
  if (pages.empty()) return DocError("document has no pages");
  RenderOutput out;
  out.pages = std::move(pages);
  return out;
}

Result<RenderOutput> Renderer::RenderPooled(std::string_view program, bool pdf,
                                            const RenderRequest& request) const {
  RenderPool& pool = *pool_;
  const RenderProfile profile{request.resolution, request.paper};
  const std::string& tenant = request.tenant;
  const int max_pages = options_.max_pages;
  std::vector<std::string> pages;
  std::string message;
  bool rendered = false;
  bool validated = false;

  // Large PDFs: split the pages across idle warm processes of the tenant. The split follows the
  // page count guessed from the bytes; every job clamps its range to the real count and the last
  // range is open-ended, so a wrong guess only unbalances the split, never loses or repeats a page.
  const int guess = pdf && options_.parallel_min_pages > 0 ? internal::EstimatePdfPages(program) : 0;
  if (guess >= options_.parallel_min_pages && guess > 0) {
    int want = options_.parallelism > 0 ? options_.parallelism
                                        : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    want = std::min({want, std::max(1, guess / std::max(1, options_.parallel_min_pages / 2)), max_pages});
    FF_ASSIGN_OR_RETURN(auto first, pool.Acquire(tenant, profile));
    std::vector<RenderPool::Lease> leases;
    leases.push_back(std::move(first));
    while (static_cast<int>(leases.size()) < want) {
      auto extra = pool.TryAcquireIdle(tenant, profile);
      if (!extra) break;
      leases.push_back(std::move(*extra));
    }
    const int k = static_cast<int>(leases.size());
    if (k > 1) {
      const int n = std::min(guess, max_pages);
      std::vector<Result<PoolJobResult>> parts(k, Status::Permanent(Code::kInternal, "not run"));
      std::vector<Status> checked(k);
      auto run_part = [&](int i) {
        PoolJob job{program, true, 1 + i * n / k, i == k - 1 ? max_pages + 1 : (i + 1) * n / k};
        parts[i] = leases[i].Run(job);
        if (!parts[i].ok()) return;
        // Exactly the pages of the range, clamped to the real count: a range that lost pages (a
        // process poisoned by an earlier document) sends the document to the checked path below.
        int expected = std::max(0, std::min(job.last_page, parts[i]->pdf_pages) - job.first_page + 1);
        if (static_cast<int>(parts[i]->pages.size()) != expected) {
          checked[i] =
              DocError("page range " + std::to_string(job.first_page) + "-" + std::to_string(job.last_page) +
                       " gave " + std::to_string(parts[i]->pages.size()) + " pages");
          return;
        }
        checked[i] = NormalisePages(parts[i]->pages, job.first_page);
      };
      std::vector<std::thread> threads;
      for (int i = 1; i < k; ++i) threads.emplace_back(run_part, i);
      run_part(0);
      for (auto& t : threads) t.join();
      leases.clear();  // returned before any fallback below needs a process
      bool all_ok = true;
      for (int i = 0; i < k; ++i) all_ok = all_ok && parts[i].ok() && checked[i].ok();
      if (all_ok) {
        for (auto& part : parts)
          for (auto& p : part->pages) pages.push_back(std::move(p));
        message = parts[0]->message;
        rendered = true;
        validated = true;
        if (metrics_) metrics_->parallel_documents.Increment();
      }
      // Otherwise the single-process render below gives the document's verdict.
    } else {
      auto single =
          RunWithRetry(pool, std::move(leases[0]), tenant, profile, PoolJob{program, true, 1, max_pages + 1});
      if (!single.ok()) return single.status();
      pages = std::move(single->pages);
      message = std::move(single->message);
      rendered = true;
    }
  }
  if (!rendered) {
    FF_ASSIGN_OR_RETURN(auto lease, pool.Acquire(tenant, profile));
    auto single =
        RunWithRetry(pool, std::move(lease), tenant, profile, PoolJob{program, pdf, 1, max_pages + 1});
    if (!single.ok()) return single.status();
    pages = std::move(single->pages);
    message = std::move(single->message);
  }

  if (pages.empty()) {
    if (!message.empty()) return DocError("ghostscript rejected the document: " + message);
    return DocError("document has no pages");
  }
  if (static_cast<int>(pages.size()) > max_pages)
    return DocError("document has more than " + std::to_string(max_pages) + " pages");
  if (!validated) FF_RETURN_IF_ERROR(NormalisePages(pages, 1));
  RenderOutput out;
  out.pages = std::move(pages);
  return out;
}

}  // namespace faxflow::imaging
