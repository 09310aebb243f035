// Fax page images (libtiff): split a rendered document into single-page TIFFs, join pages back
// into the multi-page TIFF SpanDSP transmits, check that a page is sendable, and compare pages
// pixel for pixel.
//
// Every function works on TIFF bytes in memory (TIFFClientOpen), never on temp files, and
// installs no global libtiff handler: errors come back as Status (kDocumentError, permanent,
// for bad images). Threading: all functions are re-entrant.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace faxflow::pages {

struct PageFormat {
  uint32_t width = 0;   // pixels
  uint32_t length = 0;  // rows
  double x_dpi = 0;
  double y_dpi = 0;
};

// A decoded bilevel page: `length` rows of `stride` bytes, 1 bit per pixel, most significant bit
// first, 1 = black (whatever the file's Photometric), pad bits beyond `width` are zero.
struct Bitmap {
  uint32_t width = 0;
  uint32_t length = 0;
  size_t stride = 0;
  std::vector<uint8_t> bits;
  bool operator==(const Bitmap&) const = default;
  size_t BlackPixels() const;
};

// Number of pages (directories) of a TIFF.
Result<int> CountPages(std::string_view tiff);

// One single-page TIFF per page, lossless (the compressed strip is copied when possible).
Result<std::vector<std::string>> SplitPages(std::string_view multipage_tiff);

// One multi-page TIFF (G4) from single-page TIFFs, PageNumber n/total set on every page.
Result<std::string> JoinPages(const std::vector<std::string>& single_page_tiffs);

// Checks what SpanDSP 0.0.6 can send: 1 bit per sample, 1 sample per pixel, width 1728, X
// resolution 204 dpi and Y resolution 98 or 196 dpi (+-5 %, inch or cm units), length > 0.
// kDocumentError (permanent) naming the first problem otherwise.
Result<PageFormat> ValidateFaxPage(std::string_view single_page_tiff);

// Decodes every page.
Result<std::vector<Bitmap>> DecodePages(std::string_view tiff);
Result<std::vector<Bitmap>> DecodeFile(const std::string& path);

// Fine (204x196) -> normal (204x98) resolution, for far ends that accept only normal: every pair
// of rows is merged (OR, so one-row lines survive) into one row. Takes a TIFF of one or more
// pages and returns a G4 TIFF of the same pages at 98 dpi vertically (PageNumber n/total);
// pages already at normal resolution are copied unchanged. kDocumentError for bad input.
Result<std::string> ToNormalResolution(std::string_view tiff);
// The bitmap transform ToNormalResolution applies (row pairs ORed; an odd last row kept).
Bitmap HalveRows(const Bitmap& fine);

// OK when both have the same number of pages and every page has the same width, length and
// bits; otherwise kFailedPrecondition describing the first difference (page, row).
Status ComparePages(const std::vector<Bitmap>& expected, const std::vector<Bitmap>& actual);

}  // namespace faxflow::pages
