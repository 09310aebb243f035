// Document type detection from content (never from the file name or the client's Content-Type).
//
// Used by the imaging worker before rendering and by the REST gateway to reject non-documents at
// submission (HTTP 415). A free function with no worker dependency: link faxflow_imaging_sniff.
// Ghostscript itself sniffs content (a PostScript program named .pdf runs as PostScript), so the
// type decided here is what the renderer is told to expect.
//
// Threading: thread-safe. libmagic handles are not, so each thread lazily opens its own handle
// (the default magic database is loaded once per thread).
#pragma once

#include <string_view>

#include "common/status.h"

namespace faxflow::imaging {

enum class DocumentType { kPdf, kPostScript, kTiff, kPlainText };

// "application/pdf", "application/postscript", "image/tiff", "text/plain" (the values stored in
// DocumentRef.content_type).
std::string_view MimeType(DocumentType type);

// Inverse of MimeType; kInvalidArgument (permanent) for anything else.
Result<DocumentType> DocumentTypeFromMime(std::string_view mime);

// Detects the type from the bytes: own magic checks first (%PDF- within the first 1 KiB, %!,
// II*\0 / MM\0*, text without control characters), then libmagic for the name of what was found.
// Anything else (empty, images other than TIFF, executables, archives, office files) is
// kInvalidArgument (permanent) "unsupported document type <mime>".
Result<DocumentType> DetectDocumentType(std::string_view content);

}  // namespace faxflow::imaging
