#include "workers/imaging/sniff.h"

#include <magic.h>

#include <memory>
#include <string>

namespace faxflow::imaging {
namespace {

constexpr size_t kPdfHeaderWindow = 1024;  // PDF readers accept junk before %PDF- (gs does)
constexpr size_t kSniffBytes = 64 * 1024;  // libmagic and the text check look at this much

struct MagicCloser {
  void operator()(magic_set* m) const { magic_close(m); }
};
using MagicHandle = std::unique_ptr<magic_set, MagicCloser>;

// The calling thread's libmagic handle, loaded on first use.
Result<magic_t> ThreadMagic() {
  thread_local MagicHandle handle;
  thread_local std::string load_error;
  if (handle) return handle.get();
  if (!load_error.empty()) return Status::Fatal(Code::kInternal, load_error);
  MagicHandle m(magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR));
  if (!m) return Status::Retryable(Code::kResourceExhausted, "libmagic: cannot allocate a handle");
  if (magic_load(m.get(), nullptr) != 0) {
    const char* err = magic_error(m.get());
    load_error = std::string("libmagic: cannot load the default database: ") + (err ? err : "unknown error");
    return Status::Fatal(Code::kInternal, load_error);
  }
  handle = std::move(m);
  return handle.get();
}

bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// Text: valid UTF-8 (or 8-bit Latin-1 text) with no control characters other than tab, LF, CR,
// FF. A NUL anywhere means binary.
bool LooksLikeText(std::string_view s) {
  size_t controls = 0;
  for (unsigned char c : s.substr(0, kSniffBytes)) {
    if (c == 0) return false;
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f') ++controls;
    if (c == 0x7F) ++controls;
  }
  return controls == 0;
}

Status Unsupported(std::string_view mime) {
  return Status::Permanent(Code::kInvalidArgument, "unsupported document type " + std::string(mime));
}

}  // namespace

std::string_view MimeType(DocumentType type) {
  switch (type) {
    case DocumentType::kPdf: return "application/pdf";
    case DocumentType::kPostScript: return "application/postscript";
    case DocumentType::kTiff: return "image/tiff";
    case DocumentType::kPlainText: return "text/plain";
  }
  return "application/octet-stream";
}

Result<DocumentType> DocumentTypeFromMime(std::string_view mime) {
  for (DocumentType t : {DocumentType::kPdf, DocumentType::kPostScript, DocumentType::kTiff, DocumentType::kPlainText})
    if (MimeType(t) == mime) return t;
  return Unsupported(mime);
}

Result<DocumentType> DetectDocumentType(std::string_view content) {
  if (content.empty()) return Status::Permanent(Code::kInvalidArgument, "empty document");
  // PostScript first: gs executes anything starting with %! as PostScript whatever follows.
  if (StartsWith(content, "%!") || StartsWith(content, "\x04%!")) return DocumentType::kPostScript;
  if (content.substr(0, kPdfHeaderWindow).find("%PDF-") != std::string_view::npos) return DocumentType::kPdf;
  if (StartsWith(content, std::string_view("II*\0", 4)) || StartsWith(content, std::string_view("MM\0*", 4)))
    return DocumentType::kTiff;
  // DOS EPS binary header (C5 D0 D3 C6) is PostScript with a preview; not supported.

  FF_ASSIGN_OR_RETURN(magic_t magic, ThreadMagic());
  std::string_view head = content.substr(0, kSniffBytes);
  const char* found = magic_buffer(magic, head.data(), head.size());
  std::string mime = found ? found : "application/octet-stream";
  if (StartsWith(mime, "text/") && LooksLikeText(content)) return DocumentType::kPlainText;
  if (mime == "application/pdf") return DocumentType::kPdf;  // header beyond 1 KiB: let gs try
  return Unsupported(mime);
}

}  // namespace faxflow::imaging
