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
// Threading: Render is thread-safe; each call is independent (own temp dir and process).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/config.h"
#include "common/status.h"
#include "workers/imaging/sniff.h"

namespace faxflow::imaging {

enum class FaxResolution { kFine, kNormal };  // 204x196 / 204x98 dpi
enum class PaperSize { kA4, kLetter };

struct RendererOptions {
  std::string gs_path = "gs";
  double timeout_seconds = 60;                 // wall clock, then SIGKILL of the process group
  int64_t cpu_seconds = 30;                    // RLIMIT_CPU
  int64_t memory_bytes = int64_t{1} << 30;     // RLIMIT_AS
  int64_t max_output_bytes = 200LL << 20;      // RLIMIT_FSIZE (the rendered TIFF)
  int max_pages = 200;
  std::string temp_dir;                        // parent of the private dirs; empty = $TMPDIR or /tmp

  static RendererOptions FromConfig(const Config& config);
};

struct RenderRequest {
  FaxResolution resolution = FaxResolution::kFine;
  PaperSize paper = PaperSize::kA4;
};

struct RenderOutput {
  std::vector<std::string> pages;  // single-page fax TIFFs, each passed pages::ValidateFaxPage
  double seconds = 0;              // wall time of the render
};

// Renders documents. Construct once per worker; see the file comment for containment.
class Renderer {
 public:
  // `clock` measures render time and the wall-clock deadline of gs; it must be a real clock
  // (SystemClock) because the child process runs in real time.
  Renderer(RendererOptions options, Clock& clock);

  // Checks that gs can be found and started (`gs --version`); call at worker start.
  Status CheckGhostscript() const;

  Result<RenderOutput> Render(std::string_view content, DocumentType type, const RenderRequest& request) const;

  const RendererOptions& options() const { return options_; }

 private:
  Result<RenderOutput> RenderWithGhostscript(std::string_view program, std::string_view extension,
                                             const RenderRequest& request) const;
  Result<RenderOutput> NormaliseTiff(std::string_view content) const;
  Result<std::vector<std::string>> CheckPages(std::string_view tiff, std::string_view what) const;

  RendererOptions options_;
  Clock& clock_;
};

// Plain text (UTF-8 or Latin-1) as a PostScript program: Courier 10 pt, 80 columns, lines wrapped
// and paginated for the paper size, form feed starts a new page, tabs every 8 columns,
// characters outside Latin-1 become '?'. Exposed for tests.
std::string TextToPostScript(std::string_view text, PaperSize paper);

}  // namespace faxflow::imaging
