// Rendering: one document (bytes + sniffed type) -> single-page fax TIFFs (G4, 1728 px wide,
// 204x196 or 204x98 dpi) that SpanDSP can send.
//
// PDF and PostScript go through the `gs` binary run as a separate, contained process (never
// linked: crash/CVE isolation and AGPL): -dSAFER, fixed fax media, in a private temp directory,
// its own process group, stdin /dev/null, rlimits (CPU, address space, output file size, open
// files, no core), a wall-clock timeout that SIGKILLs the group, bounded capture of its output
// for the error message. Plain text is turned into a small PostScript program (Courier, wrapped,
// paginated) and rendered the same way. TIFF input is not given to gs: pages already shaped for
// fax (bilevel, 1728 wide, fax resolution) are re-encoded with libtiff, anything else is refused.
//
// Every problem caused by the document is kDocumentError (permanent) with a message fit for the
// user; failures of this machine (no temp space, cannot fork, gs missing) are retryable.
//
// Fast path (docs/imaging.md): with pool_processes > 0, PDF, PostScript and text go to a pool of
// warm gs processes with the same containment (render_pool.h), each bound to one tenant
// (RenderRequest::tenant) and retired after docs_per_process documents or any failure; a
// failure in a process that had served earlier documents is retried once on a fresh process, so
// a poisoned process cannot fail the next document. PDFs of at least parallel_min_pages pages
// are split into page ranges rendered by idle warm processes of the same tenant in parallel.
// pool_processes = 0 keeps the one-process-per-document path.
//
// Threading: Render is thread-safe; each call is independent (own temp dir and process, or its
// own leased pooled process).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/config.h"
#include "common/metrics.h"
#include "common/status.h"
#include "workers/imaging/sniff.h"

namespace faxflow::imaging {

enum class FaxResolution { kFine, kNormal };  // 204x196 / 204x98 dpi
enum class PaperSize { kA4, kLetter };

struct RendererOptions {
  std::string gs_path = "gs";
  double timeout_seconds = 60;              // wall clock, then SIGKILL of the process group
  int64_t cpu_seconds = 30;                 // RLIMIT_CPU
  int64_t memory_bytes = int64_t{1} << 30;  // RLIMIT_AS
  int64_t max_output_bytes = 200LL << 20;   // RLIMIT_FSIZE (the rendered TIFF)
  int max_pages = 200;
  std::string temp_dir;         // parent of the private dirs; empty = $TMPDIR or /tmp
  int pool_processes = 4;       // warm gs processes; 0 = one gs run per document
  int docs_per_process = 50;    // documents one warm process renders, then it is retired
  int spare_processes = 1;      // unbound warm processes kept ready for new tenants
  int parallel_min_pages = 12;  // split PDFs with at least this many pages; 0 = never
  int parallelism = 0;          // processes per split document; 0 = the machine's cores

  static RendererOptions FromConfig(const Config& config);
};

struct RenderRequest {
  RenderRequest() = default;
  RenderRequest(FaxResolution r, PaperSize p, std::string t = "")
      : resolution(r), paper(p), tenant(std::move(t)) {}

  FaxResolution resolution = FaxResolution::kFine;
  PaperSize paper = PaperSize::kA4;
  std::string tenant;  // a pooled gs process only ever serves one tenant
};

struct RenderOutput {
  std::vector<std::string> pages;  // single-page fax TIFFs, each passed pages::ValidateFaxPage
  double seconds = 0;              // wall time of the render
};

class RenderPool;
struct RenderMetrics;

// Renders documents. Construct once per worker; see the file comment for containment.
class Renderer {
 public:
  // `clock` measures render time and the wall-clock deadline of gs; it must be a real clock
  // (SystemClock) because the child process runs in real time. With `registry`, the render
  // metrics (metrics.h RenderMetrics) are recorded there.
  Renderer(RendererOptions options, Clock& clock, MetricsRegistry* registry = nullptr);
  ~Renderer();
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;

  // Checks that gs can be found and started (`gs --version`) and starts the spare warm
  // processes of the pool; call at worker start.
  Status CheckGhostscript() const;

  Result<RenderOutput> Render(std::string_view content, DocumentType type,
                              const RenderRequest& request) const;

  const RendererOptions& options() const { return options_; }
  // The warm process pool; null when pool_processes = 0. For tests and benchmarks.
  RenderPool* pool() const { return pool_.get(); }

 private:
  Result<RenderOutput> RenderDocument(std::string_view content, DocumentType type,
                                      const RenderRequest& request) const;
  Result<RenderOutput> RenderWithGhostscript(std::string_view program, std::string_view extension,
                                             const RenderRequest& request) const;
  Result<RenderOutput> RenderPooled(std::string_view program, bool pdf, const RenderRequest& request) const;
  Result<RenderOutput> NormaliseTiff(std::string_view content) const;
  Result<std::vector<std::string>> CheckPages(std::string_view tiff, std::string_view what) const;

  RendererOptions options_;
  Clock& clock_;
  std::unique_ptr<RenderMetrics> metrics_;
  std::unique_ptr<RenderPool> pool_;
};

// Plain text (UTF-8 or Latin-1) as a PostScript program: Courier 10 pt, 80 columns, lines wrapped
// and paginated for the paper size, form feed starts a new page, tabs every 8 columns,
// characters outside Latin-1 become '?'. Exposed for tests.
std::string TextToPostScript(std::string_view text, PaperSize paper);

}  // namespace faxflow::imaging
