// pages library: split/join round trips, fax page validation and pixel comparison, on the
// checked-in fax TIFF (rendered by gs) and on small TIFFs built here with libtiff.
#include "pages/pages.h"

#include <tiffio.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <cstdio>
#include <random>

#include <gtest/gtest.h>

namespace faxflow::pages {
namespace {

std::string ReadFile(const std::string& path) {
  std::string bytes;
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    char buf[65536];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.append(buf, n);
    std::fclose(f);
  }
  return bytes;
}

std::string DataPath(const std::string& name) {
  const char* src = std::getenv("FAXFLOW_SOURCE_DIR");
  return std::string(src ? src : ".") + "/tests/data/" + name;
}

struct TiffSpec {
  uint32_t width = 1728;
  uint32_t length = 64;
  uint16_t bps = 1;
  uint16_t spp = 1;
  uint16_t photometric = PHOTOMETRIC_MINISWHITE;
  uint16_t compression = COMPRESSION_CCITTFAX4;
  float x_res = 204;
  float y_res = 196;
  uint16_t res_unit = RESUNIT_INCH;
  uint32_t rows_per_strip = 0;  // 0 = one strip
  int pages = 1;
};

// Raw rows (stride bytes each) of a recognisable pattern: a diagonal and a few bars.
std::vector<uint8_t> Pattern(const TiffSpec& s, int page) {
  size_t stride = (static_cast<size_t>(s.width) * s.bps * s.spp + 7) / 8;
  std::vector<uint8_t> bits(stride * s.length, 0);
  std::mt19937 rng(static_cast<unsigned>(page + 1));
  for (uint32_t r = 0; r < s.length; ++r) {
    uint8_t* row = bits.data() + r * stride;
    size_t x = (r * 7 + static_cast<size_t>(page) * 13) % stride;
    row[x] = 0xF0;
    if (r % 9 == 0)
      for (size_t i = 0; i < stride / 3; ++i) row[i] = static_cast<uint8_t>(rng());
  }
  return bits;
}

// Writes a TIFF with libtiff to a temp file and returns its bytes.
std::string MakeTiff(const TiffSpec& s) {
  auto path = std::filesystem::temp_directory_path() /
              ("pages_test_" + std::to_string(::getpid()) + "_" + std::to_string(std::rand()) + ".tif");
  TIFF* tif = TIFFOpen(path.c_str(), "w");
  EXPECT_NE(tif, nullptr);
  size_t stride = (static_cast<size_t>(s.width) * s.bps * s.spp + 7) / 8;
  for (int p = 0; p < s.pages; ++p) {
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, s.width);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, s.length);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, s.bps);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, s.spp);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, s.photometric);
    TIFFSetField(tif, TIFFTAG_COMPRESSION, s.compression);
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(tif, TIFFTAG_XRESOLUTION, static_cast<double>(s.x_res));
    TIFFSetField(tif, TIFFTAG_YRESOLUTION, static_cast<double>(s.y_res));
    TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, s.res_unit);
    TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, s.rows_per_strip ? s.rows_per_strip : s.length);
    TIFFSetField(tif, TIFFTAG_SUBFILETYPE, FILETYPE_PAGE);
    TIFFSetField(tif, TIFFTAG_PAGENUMBER, static_cast<uint16_t>(p), static_cast<uint16_t>(s.pages));
    auto bits = Pattern(s, p);
    for (uint32_t r = 0; r < s.length; ++r) EXPECT_EQ(TIFFWriteScanline(tif, bits.data() + r * stride, r, 0), 1);
    EXPECT_EQ(TIFFWriteDirectory(tif), 1);
  }
  TIFFClose(tif);
  std::string bytes = ReadFile(path);
  std::filesystem::remove(path);
  return bytes;
}

TEST(PagesTest, SplitJoinRoundTripOfGhostscriptOutputIsPixelIdentical) {
  std::string original = ReadFile(DataPath("fax-page.tif"));
  ASSERT_FALSE(original.empty());
  auto expected = DecodePages(original);
  ASSERT_TRUE(expected.ok()) << expected.status().ToString();
  ASSERT_EQ(expected->size(), 1u);
  EXPECT_EQ((*expected)[0].width, 1728u);
  EXPECT_EQ((*expected)[0].length, 1146u);
  EXPECT_GT((*expected)[0].BlackPixels(), 10000u);

  // A 3-page document made of copies, split then joined back.
  auto joined = JoinPages({original, original, original});
  ASSERT_TRUE(joined.ok()) << joined.status().ToString();
  auto split = SplitPages(*joined);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  ASSERT_EQ(split->size(), 3u);
  for (const auto& page : *split) {
    auto format = ValidateFaxPage(page);
    ASSERT_TRUE(format.ok()) << format.status().ToString();
    EXPECT_EQ(format->width, 1728u);
    EXPECT_NEAR(format->x_dpi, 204, 0.5);
    EXPECT_NEAR(format->y_dpi, 98, 0.5);
    auto decoded = DecodePages(page);
    ASSERT_TRUE(decoded.ok());
    EXPECT_TRUE(ComparePages(*expected, *decoded).ok());
  }
  auto rejoined = JoinPages(*split);
  ASSERT_TRUE(rejoined.ok());
  EXPECT_EQ(CountPages(*rejoined).value_or(-1), 3);
  auto all = DecodePages(*rejoined);
  ASSERT_TRUE(all.ok());
  std::vector<Bitmap> three = {(*expected)[0], (*expected)[0], (*expected)[0]};
  EXPECT_TRUE(ComparePages(three, *all).ok());
  // Raw G4 copy: the strip is carried unchanged, so the size stays close to the source.
  EXPECT_LT((*split)[0].size(), original.size() + 1024);
}

TEST(PagesTest, JoinSetsPageNumbersAndKeepsResolution) {
  TiffSpec spec;
  spec.y_res = 98;
  std::string a = MakeTiff(spec);
  auto joined = JoinPages({a, a});
  ASSERT_TRUE(joined.ok());
  auto path = std::filesystem::temp_directory_path() / ("pages_join_" + std::to_string(::getpid()) + ".tif");
  {
    std::ofstream out(path, std::ios::binary);
    out << *joined;
  }
  TIFF* tif = TIFFOpen(path.c_str(), "r");
  ASSERT_NE(tif, nullptr);
  for (uint16_t i = 0; i < 2; ++i) {
    ASSERT_EQ(TIFFSetDirectory(tif, i), 1);
    uint16_t n = 99, total = 99;
    ASSERT_EQ(TIFFGetField(tif, TIFFTAG_PAGENUMBER, &n, &total), 1);
    EXPECT_EQ(n, i);
    EXPECT_EQ(total, 2);
    uint32_t subfile = 0;
    ASSERT_EQ(TIFFGetField(tif, TIFFTAG_SUBFILETYPE, &subfile), 1);
    EXPECT_EQ(subfile, static_cast<uint32_t>(FILETYPE_PAGE));
    float y = 0;
    ASSERT_EQ(TIFFGetField(tif, TIFFTAG_YRESOLUTION, &y), 1);
    EXPECT_FLOAT_EQ(y, 98);
    uint16_t compression = 0;
    TIFFGetField(tif, TIFFTAG_COMPRESSION, &compression);
    EXPECT_EQ(compression, COMPRESSION_CCITTFAX4);
  }
  TIFFClose(tif);
  std::filesystem::remove(path);
}

TEST(PagesTest, MultiStripAndUncompressedPagesAreReencodedLosslessly) {
  TiffSpec spec;
  spec.compression = COMPRESSION_NONE;
  spec.rows_per_strip = 8;
  spec.pages = 3;
  std::string source = MakeTiff(spec);
  auto expected = DecodePages(source);
  ASSERT_TRUE(expected.ok()) << expected.status().ToString();
  ASSERT_EQ(expected->size(), 3u);
  auto split = SplitPages(source);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  ASSERT_EQ(split->size(), 3u);
  auto joined = JoinPages(*split);
  ASSERT_TRUE(joined.ok()) << joined.status().ToString();
  auto actual = DecodePages(*joined);
  ASSERT_TRUE(actual.ok());
  EXPECT_TRUE(ComparePages(*expected, *actual).ok());
  // Pages differ from each other, so a reordering would be caught.
  EXPECT_FALSE(ComparePages({(*expected)[0]}, {(*expected)[1]}).ok());
}

TEST(PagesTest, ValidateRejectsWhatSpanDspCannotSend) {
  TiffSpec good;
  auto ok = ValidateFaxPage(MakeTiff(good));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->length, good.length);

  TiffSpec cm = good;  // 204 dpi = 80.3 dots/cm
  cm.res_unit = RESUNIT_CENTIMETER;
  cm.x_res = 80.3f;
  cm.y_res = 38.5f;
  EXPECT_TRUE(ValidateFaxPage(MakeTiff(cm)).ok());

  struct Case {
    std::string name;
    TiffSpec spec;
    std::string expect_in_message;
  };
  std::vector<Case> cases;
  TiffSpec s = good;
  s.width = 1686;
  cases.push_back({"width 1686", s, "width 1686"});
  s = good;
  s.x_res = 72;
  s.y_res = 72;
  cases.push_back({"72 dpi", s, "resolution 72"});
  s = good;
  s.y_res = 150;
  cases.push_back({"150 dpi vertical", s, "vertical resolution 150"});
  s = good;
  s.bps = 8;
  s.compression = COMPRESSION_NONE;
  s.photometric = PHOTOMETRIC_MINISBLACK;
  cases.push_back({"8-bit", s, "8 bits per sample"});
  s = good;
  s.spp = 3;
  s.bps = 8;
  s.compression = COMPRESSION_NONE;
  s.photometric = PHOTOMETRIC_RGB;
  cases.push_back({"multi-sample", s, "bits per sample"});
  for (const auto& c : cases) {
    auto r = ValidateFaxPage(MakeTiff(c.spec));
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(r.status().code(), Code::kDocumentError) << c.name;
    EXPECT_TRUE(r.status().permanent()) << c.name;
    EXPECT_NE(r.status().message().find(c.expect_in_message), std::string::npos)
        << c.name << ": " << r.status().message();
  }
  s = good;
  s.spp = 2;
  s.bps = 1;
  s.compression = COMPRESSION_NONE;
  s.photometric = PHOTOMETRIC_MINISBLACK;
  auto two = ValidateFaxPage(MakeTiff(s));
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.status().message().find("2 samples per pixel"), std::string::npos) << two.status().message();

  TiffSpec multi = good;
  multi.pages = 2;
  EXPECT_FALSE(ValidateFaxPage(MakeTiff(multi)).ok());
}

TEST(PagesTest, SameBitsWithMinIsBlackCompareAsDifferent) {
  // Same stored bits, different Photometric: the MinIsBlack page is the visual negative of the
  // MinIsWhite one, so a correct comparison must report a difference (tiffcmp -t does not).
  TiffSpec white;
  TiffSpec black = white;
  black.photometric = PHOTOMETRIC_MINISBLACK;
  auto w = DecodePages(MakeTiff(white));
  auto b = DecodePages(MakeTiff(black));
  ASSERT_TRUE(w.ok() && b.ok());
  Status diff = ComparePages(*w, *b);
  EXPECT_FALSE(diff.ok());
  EXPECT_EQ(diff.code(), Code::kFailedPrecondition);
  EXPECT_NE(diff.message().find("page 1"), std::string::npos) << diff.message();
  // Decoded MinIsBlack is normalised to 1 = black: it is the exact inverse (pad bits excluded).
  size_t pixels = static_cast<size_t>(white.width) * white.length;
  EXPECT_EQ((*w)[0].BlackPixels() + (*b)[0].BlackPixels(), pixels);

  // And re-encoding the MinIsBlack page keeps what it looks like.
  auto split = SplitPages(MakeTiff(black));
  ASSERT_TRUE(split.ok());
  auto joined = JoinPages(*split);
  ASSERT_TRUE(joined.ok());
  auto again = DecodePages(*joined);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(ComparePages(*b, *again).ok());
}

TEST(PagesTest, PadBitsAreMasked) {
  TiffSpec odd;
  odd.width = 13;  // 3 pad bits per row
  odd.length = 4;
  odd.photometric = PHOTOMETRIC_MINISBLACK;  // inverting sets pad bits unless masked
  odd.compression = COMPRESSION_NONE;
  auto pages = DecodePages(MakeTiff(odd));
  ASSERT_TRUE(pages.ok());
  const Bitmap& bm = (*pages)[0];
  ASSERT_EQ(bm.stride, 2u);
  for (uint32_t r = 0; r < bm.length; ++r) EXPECT_EQ(bm.bits[r * 2 + 1] & 0x07, 0) << "row " << r;
}

TEST(PagesTest, GarbageIsADocumentError) {
  std::string garbage(4096, '\0');
  std::mt19937 rng(7);
  for (auto& c : garbage) c = static_cast<char>(rng());
  for (std::string_view input : {std::string_view(garbage), std::string_view("II*\0garbage", 11),
                                 std::string_view()}) {
    auto split = SplitPages(input);
    ASSERT_FALSE(split.ok());
    EXPECT_EQ(split.status().code(), Code::kDocumentError);
    EXPECT_TRUE(split.status().permanent());
    EXPECT_FALSE(ValidateFaxPage(input).ok());
    EXPECT_EQ(DecodePages(input).status().code(), Code::kDocumentError);
    EXPECT_EQ(CountPages(input).status().code(), Code::kDocumentError);
  }
  // Truncated real page: the header parses, the strip does not decode fully.
  std::string page = ReadFile(DataPath("fax-page.tif"));
  auto truncated = DecodePages(std::string_view(page).substr(0, page.size() / 2));
  EXPECT_FALSE(truncated.ok());
  EXPECT_EQ(truncated.status().code(), Code::kDocumentError);
  EXPECT_FALSE(JoinPages({}).ok());
}

TEST(PagesTest, HugeDimensionsAreRefusedBeforeDecoding) {
  // Claims 60000 x 60000 pixels (450 MB of bits) but holds one row: a decompression bomb shape.
  auto path = std::filesystem::temp_directory_path() / ("pages_bomb_" + std::to_string(::getpid()) + ".tif");
  TIFF* tif = TIFFOpen(path.c_str(), "w");
  ASSERT_NE(tif, nullptr);
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, 60000u);
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, 60000u);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, uint16_t{1});
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, uint16_t{1});
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISWHITE);
  TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_CCITTFAX4);
  TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 60000u);
  std::vector<uint8_t> row(7500, 0);
  ASSERT_EQ(TIFFWriteScanline(tif, row.data(), 0, 0), 1);
  TIFFClose(tif);
  std::string bytes = ReadFile(path);
  std::filesystem::remove(path);
  auto decoded = DecodePages(bytes);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), Code::kDocumentError);
  EXPECT_NE(decoded.status().message().find("too large"), std::string::npos) << decoded.status().message();
  EXPECT_FALSE(SplitPages(bytes).ok());
}

TEST(PagesTest, MutatedTiffsNeverCrash) {
  // Cheap mutation fuzzing of a real page (run under ASan/UBSan in CI): every call must return
  // a Status, never crash, hang or print through libtiff's global handlers.
  const std::string page = ReadFile(DataPath("fax-page.tif"));
  ASSERT_FALSE(page.empty());
  std::mt19937 rng(12345);
  int errors = 0;
  for (int i = 0; i < 300; ++i) {
    std::string m = page;
    int flips = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < flips; ++k) {
      // Mostly the header and directory (first 256 bytes), sometimes the strip.
      size_t pos = (rng() % 4 == 0) ? rng() % m.size() : rng() % std::min<size_t>(256, m.size());
      m[pos] = static_cast<char>(rng());
    }
    if (rng() % 5 == 0) m.resize(rng() % m.size());
    auto split = SplitPages(m);
    auto decoded = DecodePages(m);
    auto valid = ValidateFaxPage(m);
    if (!split.ok()) {
      EXPECT_EQ(split.status().code(), Code::kDocumentError) << split.status().ToString();
      ++errors;
    }
    if (!decoded.ok()) {
      EXPECT_EQ(decoded.status().code(), Code::kDocumentError) << decoded.status().ToString();
    }
    if (!valid.ok()) {
      EXPECT_EQ(valid.status().code(), Code::kDocumentError);
    }
  }
  EXPECT_GT(errors, 0);  // the mutations did hit something
}

TEST(PagesTest, DecodeFileReadsFromDisk) {
  auto pages = DecodeFile(DataPath("fax-page.tif"));
  ASSERT_TRUE(pages.ok()) << pages.status().ToString();
  EXPECT_EQ(pages->size(), 1u);
  EXPECT_EQ(DecodeFile("/nonexistent/x.tif").status().code(), Code::kIoError);
}

}  // namespace
}  // namespace faxflow::pages
