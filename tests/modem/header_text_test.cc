// The page header SpanDSP stamps while transmitting (job.header_text -> FaxCallOptions.header_info
// -> t30_set_tx_page_header_info), checked on the pages the far end RECEIVED over the sim line:
//   - with a header, every received page starts with a non-blank band of header rows, followed by
//     the sent page pixel for pixel; the band differs between page 1 and page 2 (page numbers);
//   - with an empty header there is no band at all: the received pages equal the sent ones;
//   - an OCR of the band (tesseract) finds the header text and the page number.
// SpanDSP 0.0.6 (t4_tx.h) ADDS the header rows above the image, so a received page is taller
// than the sent page by the band; the test measures that instead of assuming a height.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "pages/pages.h"
#include "tests/modem/sim_call_fixture.h"
#include "workers/modem/fax_call.h"

namespace faxflow::modem {
namespace {

class HeaderTextTest : public SimCallFixture<2> {
 protected:
  // One call of the 2-page test document with `header` as the page header; the received pages.
  std::vector<pages::Bitmap> Send(const std::string& header) {
    CallRequest request;
    request.number = "+15550100000";
    request.job_id = "job_header_" + std::to_string(++seq_);
    request.attempt = 1;
    request.first_page = 1;
    request.pages_total = kPages;
    FaxCallOptions o;
    o.tiff_path = doc_->multipage_path;
    o.ident = "+1 555 0100";
    o.header_info = header;
    auto r = RunFaxCall(*line_, request, o, clock_, {});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return {};
    EXPECT_EQ(CompletionCodeName(r->completion_code), "T30_ERR_OK");
    auto got = pages::DecodeFile(line_->ReceivedPath(request));
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    return got.ok() ? *got : std::vector<pages::Bitmap>{};
  }

  // OCR of a bitmap with tesseract (Debian tesseract-ocr; --psm 7 = one text line), "" when
  // tesseract is not installed. The band is scaled up 2x with a white margin (the scale that
  // read the text best among 1x-8x with tesseract 5.3).
  static std::string Ocr(const pages::Bitmap& bm, const std::string& base) {
    const uint32_t kx = 2, ky = 2, margin = 16;
    const uint32_t w = bm.width * kx + 2 * margin, h = bm.length * ky + 2 * margin;
    const size_t stride = (w + 7) / 8;
    std::vector<uint8_t> out(stride * h, 0);
    for (uint32_t y = 0; y < bm.length; ++y)
      for (uint32_t x = 0; x < bm.width; ++x) {
        if (!((bm.bits[y * bm.stride + x / 8] >> (7 - x % 8)) & 1)) continue;
        for (uint32_t dy = 0; dy < ky; ++dy)
          for (uint32_t dx = 0; dx < kx; ++dx) {
            const uint32_t X = margin + x * kx + dx, Y = margin + y * ky + dy;
            out[Y * stride + X / 8] |= static_cast<uint8_t>(0x80 >> (X % 8));
          }
      }
    {
      std::ofstream f(base + ".pbm", std::ios::binary);
      f << "P4\n" << w << " " << h << "\n";
      f.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
    }
    const std::string cmd = "tesseract " + base + ".pbm " + base + " --psm 7 >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) return "";
    std::ifstream in(base + ".txt");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\f'))
      text.pop_back();
    return text;
  }

  // Rows [from, from + count) of `page` as a page of their own.
  static pages::Bitmap Rows(const pages::Bitmap& page, uint32_t from, uint32_t count) {
    pages::Bitmap out;
    out.width = page.width;
    out.stride = page.stride;
    out.length = count;
    out.bits.assign(page.bits.begin() + static_cast<std::ptrdiff_t>(from * page.stride),
                    page.bits.begin() + static_cast<std::ptrdiff_t>((from + count) * page.stride));
    return out;
  }
};

TEST_F(HeaderTextTest, HeaderBandOnTopOfEachPageWithPageNumbersAndNothingWithoutHeader) {
  const std::vector<pages::Bitmap> sent = Sent();
  ASSERT_EQ(sent.size(), 2u);

  // Empty header: no band, the received pages are the sent pages.
  const auto plain = Send("");
  ASSERT_EQ(plain.size(), 2u);
  EXPECT_TRUE(pages::ComparePages(sent, plain).ok()) << pages::ComparePages(sent, plain).ToString();

  // With a header: a band of rows on top, then the sent page unchanged.
  const auto stamped = Send("ACME BILLING DEPT");
  ASSERT_EQ(stamped.size(), 2u);
  std::vector<pages::Bitmap> bands;
  for (size_t p = 0; p < 2; ++p) {
    const auto& got = stamped[p];
    ASSERT_EQ(got.width, sent[p].width);
    ASSERT_GT(got.length, sent[p].length) << "page " << p + 1 << ": the header adds rows";
    const uint32_t band = got.length - sent[p].length;
    std::printf("[ measure ] page %zu: header band of %u rows (%u rows sent, %u received)\n", p + 1, band,
                sent[p].length, got.length);
    EXPECT_LE(band, 64u) << "a header is one text line";
    const pages::Bitmap top = Rows(got, 0, band);
    EXPECT_GT(top.BlackPixels(), 200u) << "page " << p + 1 << ": the header band is blank";
    const pages::Bitmap rest = Rows(got, band, sent[p].length);
    EXPECT_TRUE(pages::ComparePages({sent[p]}, {rest}).ok())
        << "page " << p + 1 << " below the header differs from the sent page: "
        << pages::ComparePages({sent[p]}, {rest}).ToString();
    bands.push_back(top);
  }
  ASSERT_EQ(bands[0].length, bands[1].length);
  EXPECT_NE(bands[0], bands[1]) << "page numbers: the header of page 1 and page 2 must differ";

  // The real visual check: OCR with tesseract (scripts/deps installs it). The OCR of SpanDSP's
  // 8x16 font misreads some digits (0 as 6 or 8), so only the letters of the header text and the
  // page marker "p.N" at the end are asserted. The header reads like
  // "22-Nov-2026 12:09 ACME BILLING DEPT +1 555 0100 p.1" (date, header_info, TSI, page).
  ASSERT_EQ(std::system("tesseract --version >/dev/null 2>&1"), 0)
      << "tesseract is missing: run scripts/deps (it installs tesseract-ocr for this check)";
  for (size_t p = 0; p < bands.size(); ++p) {
    const std::string text = Ocr(bands[p], dir_ + "/band" + std::to_string(p + 1));
    std::printf("[ ocr ] page %zu header: %s\n", p + 1, text.c_str());
    std::string alnum;
    for (char c : text)
      if (std::isalnum(static_cast<unsigned char>(c))) alnum += static_cast<char>(std::toupper(c));
    EXPECT_NE(alnum.find("BILLINGDEPT"), std::string::npos) << "OCR of page " << p + 1 << ": " << text;
    ASSERT_FALSE(alnum.empty());
    EXPECT_EQ(alnum.back(), static_cast<char>('1' + p))
        << "page number in the header of page " << p + 1 << ": " << text;
  }
}

}  // namespace
}  // namespace faxflow::modem
