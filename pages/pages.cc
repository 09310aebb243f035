// libtiff-backed implementation of pages.h. Everything goes through the in-memory Tiff handle
// below (TIFFClientOpenExt with per-handle error/warning handlers), so no libtiff message ever
// reaches the process-wide handlers and concurrent calls never share state.
#include "pages/pages.h"

#include <tiffio.h>

#include <bit>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <sstream>

namespace faxflow::pages {
namespace {

// Bounds applied before any allocation driven by file contents (hostile TIFFs).
constexpr tmsize_t kMaxSingleAlloc = 256 << 20;
constexpr uint64_t kMaxPixelsPerPage = 400'000'000;  // ~50 MB of bits
constexpr uint32_t kMaxPages = 10'000;

Status DocError(std::string message) { return Status::Permanent(Code::kDocumentError, std::move(message)); }

// Backing store of one open TIFF: a read-only view or a growable output buffer.
struct MemFile {
  std::string_view input;  // read mode
  std::string* output = nullptr;  // write mode
  uint64_t pos = 0;

  uint64_t size() const { return output ? output->size() : input.size(); }
  const char* data() const { return output ? output->data() : input.data(); }
};

tmsize_t MemRead(thandle_t h, void* buf, tmsize_t n) {
  auto* f = static_cast<MemFile*>(h);
  if (n < 0) return -1;
  uint64_t size = f->size();
  if (f->pos >= size) return 0;
  uint64_t count = std::min<uint64_t>(static_cast<uint64_t>(n), size - f->pos);
  std::memcpy(buf, f->data() + f->pos, count);
  f->pos += count;
  return static_cast<tmsize_t>(count);
}

tmsize_t MemWrite(thandle_t h, void* buf, tmsize_t n) {
  auto* f = static_cast<MemFile*>(h);
  if (f->output == nullptr || n < 0) return -1;
  uint64_t end = f->pos + static_cast<uint64_t>(n);
  if (end > f->output->size()) f->output->resize(end);
  std::memcpy(f->output->data() + f->pos, buf, static_cast<size_t>(n));
  f->pos = end;
  return n;
}

toff_t MemSeek(thandle_t h, toff_t off, int whence) {
  auto* f = static_cast<MemFile*>(h);
  int64_t base = 0;
  switch (whence) {
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = static_cast<int64_t>(f->pos); break;
    case SEEK_END: base = static_cast<int64_t>(f->size()); break;
    default: return static_cast<toff_t>(-1);
  }
  int64_t target = base + static_cast<int64_t>(off);
  if (target < 0) return static_cast<toff_t>(-1);
  f->pos = static_cast<uint64_t>(target);
  return f->pos;
}

int MemClose(thandle_t) { return 0; }
toff_t MemSize(thandle_t h) { return static_cast<MemFile*>(h)->size(); }
int MemMap(thandle_t, void**, toff_t*) { return 0; }  // no mapping: reads go through MemRead
void MemUnmap(thandle_t, void*, toff_t) {}

struct TiffCloser {
  void operator()(TIFF* tif) const { TIFFClose(tif); }
};
struct OptionsFree {
  void operator()(TIFFOpenOptions* opts) const { TIFFOpenOptionsFree(opts); }
};

// One open in-memory TIFF with its own error sink. Not movable: libtiff keeps pointers to
// `file_` and `errors_`.
class Tiff {
 public:
  Tiff(const Tiff&) = delete;
  Tiff& operator=(const Tiff&) = delete;

  static Result<std::unique_ptr<Tiff>> OpenRead(std::string_view bytes) {
    auto t = std::unique_ptr<Tiff>(new Tiff());
    t->file_.input = bytes;
    FF_RETURN_IF_ERROR(t->Open("r"));
    return t;
  }
  static Result<std::unique_ptr<Tiff>> OpenWrite(std::string* out) {
    auto t = std::unique_ptr<Tiff>(new Tiff());
    out->clear();
    t->file_.output = out;
    FF_RETURN_IF_ERROR(t->Open("w"));
    return t;
  }

  TIFF* get() const { return tif_.get(); }
  // The first libtiff error since the last Clear, or `fallback`.
  std::string Error(std::string_view fallback) const {
    return errors_.empty() ? std::string(fallback) : errors_;
  }
  Status Fail(std::string_view what) const {
    return DocError(std::string(what) + (errors_.empty() ? "" : ": " + errors_));
  }
  // Flushes and closes (write mode); reports errors raised while writing the last directory.
  Status Close() {
    if (!tif_) return Status::Ok();
    if (file_.output && TIFFFlush(tif_.get()) != 1) return Fail("cannot write TIFF");
    tif_.reset();
    if (!errors_.empty()) return DocError("cannot write TIFF: " + errors_);
    return Status::Ok();
  }

 private:
  Tiff() = default;

  static int OnError(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
    auto* self = static_cast<Tiff*>(user);
    if (self->errors_.empty()) {
      char buf[512];
      std::vsnprintf(buf, sizeof buf, fmt, ap);
      self->errors_ = (module && *module) ? std::string(module) + ": " + buf : std::string(buf);
    }
    return 1;  // handled: do not call the global handler
  }
  static int OnWarning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

  Status Open(const char* mode) {
    std::unique_ptr<TIFFOpenOptions, OptionsFree> opts(TIFFOpenOptionsAlloc());
    if (!opts) return Status::Retryable(Code::kResourceExhausted, "libtiff: out of memory");
    TIFFOpenOptionsSetErrorHandlerExtR(opts.get(), &Tiff::OnError, this);
    TIFFOpenOptionsSetWarningHandlerExtR(opts.get(), &Tiff::OnWarning, this);
    TIFFOpenOptionsSetMaxSingleMemAlloc(opts.get(), kMaxSingleAlloc);
    // "m": never memory-map; MemMap declines anyway.
    std::string m = std::string(mode) + "m";
    tif_.reset(TIFFClientOpenExt("memory", m.c_str(), static_cast<thandle_t>(&file_), MemRead, MemWrite, MemSeek,
                                 MemClose, MemSize, MemMap, MemUnmap, opts.get()));
    if (!tif_) return DocError(Error("not a TIFF image"));
    return Status::Ok();
  }

  MemFile file_;
  std::string errors_;
  std::unique_ptr<TIFF, TiffCloser> tif_;
};

// The tags of one directory that matter for fax pages.
struct PageInfo {
  uint32_t width = 0, length = 0;
  uint16_t bps = 1, spp = 1;
  uint16_t compression = COMPRESSION_NONE;
  std::optional<uint16_t> photometric;
  uint16_t fill_order = FILLORDER_MSB2LSB;
  std::optional<float> x_res, y_res;
  uint16_t res_unit = RESUNIT_INCH;
  uint32_t t4_options = 0, t6_options = 0;
  bool tiled = false;
  uint32_t strips = 0;
};

PageInfo ReadInfo(TIFF* tif) {
  PageInfo p;
  TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &p.width);
  TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &p.length);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &p.bps);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &p.spp);
  TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &p.compression);
  uint16_t photometric = 0;
  if (TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photometric) == 1) p.photometric = photometric;
  TIFFGetFieldDefaulted(tif, TIFFTAG_FILLORDER, &p.fill_order);
  float r = 0;
  if (TIFFGetField(tif, TIFFTAG_XRESOLUTION, &r) == 1) p.x_res = r;
  if (TIFFGetField(tif, TIFFTAG_YRESOLUTION, &r) == 1) p.y_res = r;
  TIFFGetFieldDefaulted(tif, TIFFTAG_RESOLUTIONUNIT, &p.res_unit);
  if (p.compression == COMPRESSION_CCITTFAX3) TIFFGetField(tif, TIFFTAG_GROUP3OPTIONS, &p.t4_options);
  if (p.compression == COMPRESSION_CCITTFAX4) TIFFGetField(tif, TIFFTAG_GROUP4OPTIONS, &p.t6_options);
  p.tiled = TIFFIsTiled(tif) != 0;
  p.strips = p.tiled ? 0 : TIFFNumberOfStrips(tif);
  return p;
}

bool IsBilevel(const PageInfo& p) { return p.bps == 1 && p.spp == 1; }

Status CheckDecodable(const PageInfo& p, int page) {
  std::string where = "page " + std::to_string(page) + ": ";
  if (p.width == 0 || p.length == 0) return DocError(where + "empty image");
  if (!IsBilevel(p))
    return DocError(where + "not a bilevel image (" + std::to_string(p.bps) + " bits per sample, " +
                    std::to_string(p.spp) + " samples per pixel)");
  if (p.tiled) return DocError(where + "tiled TIFF images are not supported");
  if (p.photometric && *p.photometric != PHOTOMETRIC_MINISWHITE && *p.photometric != PHOTOMETRIC_MINISBLACK)
    return DocError(where + "unsupported photometric interpretation " + std::to_string(*p.photometric));
  if (static_cast<uint64_t>(p.width) * p.length > kMaxPixelsPerPage)
    return DocError(where + "image too large (" + std::to_string(p.width) + "x" + std::to_string(p.length) + ")");
  return Status::Ok();
}

// Decodes the current directory to a normalised bitmap (1 = black, pad bits zero).
Result<Bitmap> DecodeCurrent(Tiff& t, int page) {
  TIFF* tif = t.get();
  PageInfo p = ReadInfo(tif);
  FF_RETURN_IF_ERROR(CheckDecodable(p, page));
  Bitmap bm;
  bm.width = p.width;
  bm.length = p.length;
  bm.stride = (p.width + 7) / 8;
  if (static_cast<size_t>(TIFFScanlineSize64(tif)) != bm.stride)
    return DocError("page " + std::to_string(page) + ": unexpected scanline size");
  bm.bits.resize(bm.stride * bm.length);
  for (uint32_t row = 0; row < p.length; ++row) {
    if (TIFFReadScanline(tif, bm.bits.data() + row * bm.stride, row, 0) != 1)
      return t.Fail("page " + std::to_string(page) + ": cannot decode row " + std::to_string(row));
  }
  bool invert = p.photometric && *p.photometric == PHOTOMETRIC_MINISBLACK;
  uint8_t last_mask = (p.width % 8 == 0) ? 0xFF : static_cast<uint8_t>(0xFF << (8 - p.width % 8));
  for (uint32_t row = 0; row < p.length; ++row) {
    uint8_t* line = bm.bits.data() + row * bm.stride;
    if (invert)
      for (size_t i = 0; i < bm.stride; ++i) line[i] = static_cast<uint8_t>(~line[i]);
    line[bm.stride - 1] &= last_mask;
  }
  return bm;
}

void SetResolution(TIFF* out, const PageInfo& p) {
  if (p.x_res) TIFFSetField(out, TIFFTAG_XRESOLUTION, static_cast<double>(*p.x_res));
  if (p.y_res) TIFFSetField(out, TIFFTAG_YRESOLUTION, static_cast<double>(*p.y_res));
  if (p.x_res || p.y_res) TIFFSetField(out, TIFFTAG_RESOLUTIONUNIT, p.res_unit);
}

// Page-level tags; `page`/`total` are 0-based/total count (PageNumber), total 0 = unknown.
void SetPageTags(TIFF* out, uint16_t page, uint16_t total) {
  TIFFSetField(out, TIFFTAG_SUBFILETYPE, FILETYPE_PAGE);
  TIFFSetField(out, TIFFTAG_PAGENUMBER, page, total);
  TIFFSetField(out, TIFFTAG_ORIENTATION, ORIENTATION_TOPLEFT);
  TIFFSetField(out, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
}

// Whether the current directory's single compressed strip can be copied unchanged.
bool CanCopyRaw(const PageInfo& p, bool require_g4) {
  if (p.tiled || p.strips != 1 || !IsBilevel(p)) return false;
  if (require_g4) return p.compression == COMPRESSION_CCITTFAX4;
  return p.compression == COMPRESSION_CCITTFAX4 || p.compression == COMPRESSION_CCITTFAX3 ||
         p.compression == COMPRESSION_CCITTRLE || p.compression == COMPRESSION_NONE ||
         p.compression == COMPRESSION_PACKBITS;
}

// Copies the current directory of `in` (single strip) into a new directory of `out`.
Status CopyRawPage(Tiff& in, Tiff& out, const PageInfo& p, uint16_t page, uint16_t total, int page_no) {
  TIFF* src = in.get();
  TIFF* dst = out.get();
  uint64_t* counts = nullptr;
  if (TIFFGetField(src, TIFFTAG_STRIPBYTECOUNTS, &counts) != 1 || counts == nullptr)
    return in.Fail("page " + std::to_string(page_no) + ": no strip byte counts");
  uint64_t size = counts[0];
  if (size == 0 || size > static_cast<uint64_t>(kMaxSingleAlloc))
    return DocError("page " + std::to_string(page_no) + ": bad strip size " + std::to_string(size));
  std::string strip(size, '\0');
  tmsize_t got = TIFFReadRawStrip(src, 0, strip.data(), static_cast<tmsize_t>(size));
  if (got < 0 || static_cast<uint64_t>(got) != size)
    return in.Fail("page " + std::to_string(page_no) + ": cannot read strip");

  TIFFSetField(dst, TIFFTAG_IMAGEWIDTH, p.width);
  TIFFSetField(dst, TIFFTAG_IMAGELENGTH, p.length);
  TIFFSetField(dst, TIFFTAG_BITSPERSAMPLE, uint16_t{1});
  TIFFSetField(dst, TIFFTAG_SAMPLESPERPIXEL, uint16_t{1});
  TIFFSetField(dst, TIFFTAG_COMPRESSION, p.compression);
  TIFFSetField(dst, TIFFTAG_PHOTOMETRIC, p.photometric.value_or(PHOTOMETRIC_MINISWHITE));
  TIFFSetField(dst, TIFFTAG_FILLORDER, p.fill_order);
  if (p.compression == COMPRESSION_CCITTFAX3) TIFFSetField(dst, TIFFTAG_GROUP3OPTIONS, p.t4_options);
  if (p.compression == COMPRESSION_CCITTFAX4) TIFFSetField(dst, TIFFTAG_GROUP4OPTIONS, p.t6_options);
  TIFFSetField(dst, TIFFTAG_ROWSPERSTRIP, p.length);
  SetResolution(dst, p);
  SetPageTags(dst, page, total);
  if (TIFFWriteRawStrip(dst, 0, strip.data(), static_cast<tmsize_t>(size)) < 0) return out.Fail("cannot write strip");
  if (TIFFWriteDirectory(dst) != 1) return out.Fail("cannot write TIFF directory");
  return Status::Ok();
}

// Encodes a normalised bitmap as one G4 page (MinIsWhite, one strip) in a new directory.
Status WriteG4Page(Tiff& out, const Bitmap& bm, const PageInfo& p, uint16_t page, uint16_t total) {
  TIFF* dst = out.get();
  TIFFSetField(dst, TIFFTAG_IMAGEWIDTH, bm.width);
  TIFFSetField(dst, TIFFTAG_IMAGELENGTH, bm.length);
  TIFFSetField(dst, TIFFTAG_BITSPERSAMPLE, uint16_t{1});
  TIFFSetField(dst, TIFFTAG_SAMPLESPERPIXEL, uint16_t{1});
  TIFFSetField(dst, TIFFTAG_COMPRESSION, COMPRESSION_CCITTFAX4);
  TIFFSetField(dst, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISWHITE);  // 1 = black, as in Bitmap
  TIFFSetField(dst, TIFFTAG_FILLORDER, FILLORDER_MSB2LSB);
  TIFFSetField(dst, TIFFTAG_ROWSPERSTRIP, bm.length);
  SetResolution(dst, p);
  SetPageTags(dst, page, total);
  std::vector<uint8_t> row(bm.stride);
  for (uint32_t r = 0; r < bm.length; ++r) {
    std::memcpy(row.data(), bm.bits.data() + r * bm.stride, bm.stride);
    if (TIFFWriteScanline(dst, row.data(), r, 0) != 1) return out.Fail("cannot encode row " + std::to_string(r));
  }
  if (TIFFWriteDirectory(dst) != 1) return out.Fail("cannot write TIFF directory");
  return Status::Ok();
}

Result<int> CountOpen(Tiff& t) {
  tdir_t n = TIFFNumberOfDirectories(t.get());
  if (n == 0) return DocError(t.Error("TIFF has no pages"));
  if (n > kMaxPages) return DocError("TIFF has too many pages (" + std::to_string(n) + ")");
  return static_cast<int>(n);
}

Status SelectPage(Tiff& t, int index) {
  if (TIFFSetDirectory(t.get(), static_cast<tdir_t>(index)) != 1)
    return t.Fail("cannot read page " + std::to_string(index + 1));
  return Status::Ok();
}

double ToDpi(float value, uint16_t unit) { return unit == RESUNIT_CENTIMETER ? value * 2.54 : value; }

bool Near(double value, double target) { return std::fabs(value - target) <= target * 0.05; }

std::string FormatDpi(double v) {
  std::ostringstream os;
  os << std::round(v * 10) / 10;
  return os.str();
}

}  // namespace

size_t Bitmap::BlackPixels() const {
  size_t n = 0;
  for (uint8_t b : bits) n += static_cast<size_t>(std::popcount(b));
  return n;
}

Result<int> CountPages(std::string_view tiff) {
  FF_ASSIGN_OR_RETURN(auto t, Tiff::OpenRead(tiff));
  return CountOpen(*t);
}

Result<std::vector<std::string>> SplitPages(std::string_view multipage_tiff) {
  FF_ASSIGN_OR_RETURN(auto in, Tiff::OpenRead(multipage_tiff));
  FF_ASSIGN_OR_RETURN(int count, CountOpen(*in));
  std::vector<std::string> pages;
  pages.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    FF_RETURN_IF_ERROR(SelectPage(*in, i));
    PageInfo p = ReadInfo(in->get());
    FF_RETURN_IF_ERROR(CheckDecodable(p, i + 1));
    std::string bytes;
    FF_ASSIGN_OR_RETURN(auto out, Tiff::OpenWrite(&bytes));
    if (CanCopyRaw(p, /*require_g4=*/false)) {
      FF_RETURN_IF_ERROR(CopyRawPage(*in, *out, p, 0, 1, i + 1));
    } else {
      FF_ASSIGN_OR_RETURN(Bitmap bm, DecodeCurrent(*in, i + 1));
      FF_RETURN_IF_ERROR(WriteG4Page(*out, bm, p, 0, 1));
    }
    FF_RETURN_IF_ERROR(out->Close());
    pages.push_back(std::move(bytes));
  }
  return pages;
}

Result<std::string> JoinPages(const std::vector<std::string>& single_page_tiffs) {
  if (single_page_tiffs.empty()) return DocError("no pages to join");
  // Total first, so PageNumber n/total is right on every page.
  std::vector<std::unique_ptr<Tiff>> inputs;
  size_t total = 0;
  for (const auto& bytes : single_page_tiffs) {
    FF_ASSIGN_OR_RETURN(auto t, Tiff::OpenRead(bytes));
    FF_ASSIGN_OR_RETURN(int n, CountOpen(*t));
    total += static_cast<size_t>(n);
    inputs.push_back(std::move(t));
  }
  if (total > kMaxPages) return DocError("too many pages to join (" + std::to_string(total) + ")");
  std::string result;
  FF_ASSIGN_OR_RETURN(auto out, Tiff::OpenWrite(&result));
  uint16_t page = 0;
  for (auto& in : inputs) {
    FF_ASSIGN_OR_RETURN(int n, CountOpen(*in));
    for (int i = 0; i < n; ++i, ++page) {
      FF_RETURN_IF_ERROR(SelectPage(*in, i));
      PageInfo p = ReadInfo(in->get());
      FF_RETURN_IF_ERROR(CheckDecodable(p, page + 1));
      if (CanCopyRaw(p, /*require_g4=*/true)) {
        FF_RETURN_IF_ERROR(CopyRawPage(*in, *out, p, page, static_cast<uint16_t>(total), page + 1));
      } else {
        FF_ASSIGN_OR_RETURN(Bitmap bm, DecodeCurrent(*in, page + 1));
        FF_RETURN_IF_ERROR(WriteG4Page(*out, bm, p, page, static_cast<uint16_t>(total)));
      }
    }
  }
  FF_RETURN_IF_ERROR(out->Close());
  return result;
}

Result<PageFormat> ValidateFaxPage(std::string_view single_page_tiff) {
  FF_ASSIGN_OR_RETURN(auto t, Tiff::OpenRead(single_page_tiff));
  FF_ASSIGN_OR_RETURN(int n, CountOpen(*t));
  if (n != 1) return DocError("expected a single page, found " + std::to_string(n));
  PageInfo p = ReadInfo(t->get());
  if (p.bps != 1) return DocError(std::to_string(p.bps) + " bits per sample (a fax page has 1)");
  if (p.spp != 1) return DocError(std::to_string(p.spp) + " samples per pixel (a fax page has 1)");
  if (p.tiled) return DocError("tiled image (a fax page is stored in strips)");
  if (p.width != 1728) return DocError("width " + std::to_string(p.width) + " (a fax page is 1728 pixels wide)");
  if (p.length == 0) return DocError("length 0");
  if (!p.x_res || !p.y_res) return DocError("no resolution tags (a fax page is 204x98 or 204x196 dpi)");
  if (p.res_unit != RESUNIT_INCH && p.res_unit != RESUNIT_CENTIMETER)
    return DocError("resolution has no unit (a fax page is 204x98 or 204x196 dpi)");
  PageFormat f;
  f.width = p.width;
  f.length = p.length;
  f.x_dpi = ToDpi(*p.x_res, p.res_unit);
  f.y_dpi = ToDpi(*p.y_res, p.res_unit);
  if (!Near(f.x_dpi, 204)) return DocError("horizontal resolution " + FormatDpi(f.x_dpi) + " dpi (a fax page has 204)");
  if (!Near(f.y_dpi, 98) && !Near(f.y_dpi, 196))
    return DocError("vertical resolution " + FormatDpi(f.y_dpi) + " dpi (a fax page has 98 or 196)");
  return f;
}

Bitmap HalveRows(const Bitmap& fine) {
  Bitmap out;
  out.width = fine.width;
  out.stride = fine.stride;
  out.length = (fine.length + 1) / 2;
  out.bits.assign(out.stride * out.length, 0);
  for (uint32_t r = 0; r < fine.length; ++r) {
    const uint8_t* src = fine.bits.data() + static_cast<size_t>(r) * fine.stride;
    uint8_t* dst = out.bits.data() + static_cast<size_t>(r / 2) * out.stride;
    for (size_t i = 0; i < fine.stride; ++i) dst[i] = static_cast<uint8_t>(dst[i] | src[i]);
  }
  return out;
}

Result<std::string> ToNormalResolution(std::string_view tiff) {
  FF_ASSIGN_OR_RETURN(auto in, Tiff::OpenRead(tiff));
  FF_ASSIGN_OR_RETURN(int count, CountOpen(*in));
  std::string result;
  FF_ASSIGN_OR_RETURN(auto out, Tiff::OpenWrite(&result));
  for (int i = 0; i < count; ++i) {
    FF_RETURN_IF_ERROR(SelectPage(*in, i));
    PageInfo p = ReadInfo(in->get());
    FF_RETURN_IF_ERROR(CheckDecodable(p, i + 1));
    const double y_dpi = p.y_res ? ToDpi(*p.y_res, p.res_unit) : 0;
    const auto page = static_cast<uint16_t>(i);
    const auto total = static_cast<uint16_t>(count);
    if (p.y_res && Near(y_dpi, 98) && CanCopyRaw(p, /*require_g4=*/true)) {
      FF_RETURN_IF_ERROR(CopyRawPage(*in, *out, p, page, total, i + 1));
      continue;
    }
    FF_ASSIGN_OR_RETURN(Bitmap bm, DecodeCurrent(*in, i + 1));
    if (p.y_res && Near(y_dpi, 98)) {
      FF_RETURN_IF_ERROR(WriteG4Page(*out, bm, p, page, total));
      continue;
    }
    if (!p.y_res || !Near(y_dpi, 196))
      return DocError("page " + std::to_string(i + 1) + ": vertical resolution " + FormatDpi(y_dpi) +
                      " dpi cannot be converted to normal (needs 196)");
    PageInfo normal = p;
    normal.y_res = static_cast<float>(p.res_unit == RESUNIT_CENTIMETER ? 98.0 / 2.54 : 98.0);
    FF_RETURN_IF_ERROR(WriteG4Page(*out, HalveRows(bm), normal, page, total));
  }
  FF_RETURN_IF_ERROR(out->Close());
  return result;
}

Result<std::vector<Bitmap>> DecodePages(std::string_view tiff) {
  FF_ASSIGN_OR_RETURN(auto t, Tiff::OpenRead(tiff));
  FF_ASSIGN_OR_RETURN(int count, CountOpen(*t));
  std::vector<Bitmap> pages;
  for (int i = 0; i < count; ++i) {
    FF_RETURN_IF_ERROR(SelectPage(*t, i));
    FF_ASSIGN_OR_RETURN(Bitmap bm, DecodeCurrent(*t, i + 1));
    pages.push_back(std::move(bm));
  }
  return pages;
}

Result<std::vector<Bitmap>> DecodeFile(const std::string& path) {
  struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) return Status::Permanent(Code::kIoError, "cannot open " + path);
  std::string bytes;
  char buf[65536];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) bytes.append(buf, n);
  if (std::ferror(f.get())) return Status::Permanent(Code::kIoError, "cannot read " + path);
  return DecodePages(bytes);
}

Status ComparePages(const std::vector<Bitmap>& expected, const std::vector<Bitmap>& actual) {
  auto differ = [](std::string m) { return Status::Permanent(Code::kFailedPrecondition, std::move(m)); };
  if (expected.size() != actual.size())
    return differ("page count differs: expected " + std::to_string(expected.size()) + ", got " +
                  std::to_string(actual.size()));
  for (size_t i = 0; i < expected.size(); ++i) {
    const Bitmap& e = expected[i];
    const Bitmap& a = actual[i];
    std::string page = "page " + std::to_string(i + 1) + ": ";
    if (e.width != a.width || e.length != a.length)
      return differ(page + "size differs: expected " + std::to_string(e.width) + "x" + std::to_string(e.length) +
                    ", got " + std::to_string(a.width) + "x" + std::to_string(a.length));
    for (uint32_t row = 0; row < e.length; ++row) {
      if (std::memcmp(e.bits.data() + row * e.stride, a.bits.data() + row * a.stride, e.stride) != 0)
        return differ(page + "row " + std::to_string(row) + " differs");
    }
  }
  return Status::Ok();
}

}  // namespace faxflow::pages
