// Renderer against the real gs binary: page geometry of real documents, and containment of
// corrupt, hostile and runaway input (typed errors within bounded time, renderer usable after).
#include "workers/imaging/renderer.h"

#include <chrono>
#include <cstdio>
#include <thread>

#include <gtest/gtest.h>

#include "common/clock.h"
#include "pages/pages.h"
#include "tests/imaging/test_util.h"

namespace faxflow::imaging {
namespace {

using testing::ReadData;

RendererOptions FastOptions() {
  RendererOptions o;
  o.timeout_seconds = 30;
  o.cpu_seconds = 20;
  return o;
}

// Every page is a valid fax page of the expected size with ink on it.
void ExpectFaxPages(const RenderOutput& out, uint32_t rows) {
  for (size_t i = 0; i < out.pages.size(); ++i) {
    auto format = pages::ValidateFaxPage(out.pages[i]);
    ASSERT_TRUE(format.ok()) << "page " << i + 1 << ": " << format.status().ToString();
    EXPECT_EQ(format->width, 1728u);
    EXPECT_EQ(format->length, rows) << "page " << i + 1;
    auto bitmap = pages::DecodePages(out.pages[i]);
    ASSERT_TRUE(bitmap.ok());
    EXPECT_GT((*bitmap)[0].BlackPixels(), 1000u) << "page " << i + 1 << " is blank";
  }
}

TEST(RendererTest, SamplePdfFineA4) {
  Renderer r(FastOptions(), SystemClock::Instance());
  ASSERT_TRUE(r.CheckGhostscript().ok());
  auto out = r.Render(ReadData("sample.pdf"), DocumentType::kPdf, {FaxResolution::kFine, PaperSize::kA4});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->pages.size(), 4u);
  ExpectFaxPages(*out, 2292);
  // Pages differ (nothing duplicated or reordered into sameness).
  auto p1 = pages::DecodePages(out->pages[0]);
  auto p2 = pages::DecodePages(out->pages[1]);
  ASSERT_TRUE(p1.ok() && p2.ok());
  EXPECT_FALSE(pages::ComparePages(*p1, *p2).ok());
  std::printf("[ measure  ] sample.pdf fine: %zu pages in %.3f s = %.1f ms/page\n", out->pages.size(), out->seconds,
              1000 * out->seconds / static_cast<double>(out->pages.size()));
}

TEST(RendererTest, SamplePdfNormalA4AndFineLetter) {
  Renderer r(FastOptions(), SystemClock::Instance());
  auto normal = r.Render(ReadData("sample.pdf"), DocumentType::kPdf, {FaxResolution::kNormal, PaperSize::kA4});
  ASSERT_TRUE(normal.ok()) << normal.status().ToString();
  ASSERT_EQ(normal->pages.size(), 4u);
  ExpectFaxPages(*normal, 1146);
  auto f = pages::ValidateFaxPage(normal->pages[0]);
  ASSERT_TRUE(f.ok());
  EXPECT_NEAR(f->y_dpi, 98, 1);
  std::printf("[ measure  ] sample.pdf normal: %.1f ms/page\n", 1000 * normal->seconds / 4);

  auto letter = r.Render(ReadData("sample.pdf"), DocumentType::kPdf, {FaxResolution::kFine, PaperSize::kLetter});
  ASSERT_TRUE(letter.ok()) << letter.status().ToString();
  ASSERT_EQ(letter->pages.size(), 4u);
  ExpectFaxPages(*letter, 2156);
}

TEST(RendererTest, PostScriptSourceRenders) {
  Renderer r(FastOptions(), SystemClock::Instance());
  auto out = r.Render(ReadData("sample.ps"), DocumentType::kPostScript, {});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->pages.size(), 4u);
  ExpectFaxPages(*out, 2292);
}

TEST(RendererTest, PlainTextRendersOnSeveralPages) {
  Renderer r(FastOptions(), SystemClock::Instance());
  auto out = r.Render(ReadData("hello.txt"), DocumentType::kPlainText, {});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_GE(out->pages.size(), 2u);
  EXPECT_LE(out->pages.size(), 4u);
  ExpectFaxPages(*out, 2292);
  // Characters that are PostScript syntax or outside ASCII must not break the program.
  auto tricky = r.Render("unbalanced ) ( \\ %!PS {} loop\n\xC3\xA9t\xC3\xA9 \xE2\x82\xAC\f\tpage two\x01\n",
                         DocumentType::kPlainText, {FaxResolution::kNormal, PaperSize::kLetter});
  ASSERT_TRUE(tricky.ok()) << tricky.status().ToString();
  EXPECT_EQ(tricky->pages.size(), 2u);
}

TEST(RendererTest, TextToPostScriptEscapesAndPaginates) {
  std::string ps = TextToPostScript("a(b)c\\d", PaperSize::kA4);
  EXPECT_NE(ps.find("(a\\(b\\)c\\\\d)"), std::string::npos) << ps;
  std::string many;
  for (int i = 0; i < 130; ++i) many += "line\n";
  std::string paged = TextToPostScript(many, PaperSize::kA4);
  size_t showpages = 0;
  for (size_t pos = 0; (pos = paged.find("showpage", pos)) != std::string::npos; ++pos) ++showpages;
  EXPECT_EQ(showpages, 3u);  // 61 lines per A4 page
  std::string latin = TextToPostScript("caf\xC3\xA9 \xE2\x82\xAC", PaperSize::kA4);
  EXPECT_NE(latin.find("(caf\\351 ?)"), std::string::npos) << latin;
}

TEST(RendererTest, FaxTiffIsAcceptedOtherTiffsAreNot) {
  Renderer r(FastOptions(), SystemClock::Instance());
  std::string tiff = ReadData("fax-page.tif");
  auto out = r.Render(tiff, DocumentType::kTiff, {});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->pages.size(), 1u);
  ExpectFaxPages(*out, 1146);
  auto before = pages::DecodePages(tiff);
  auto after = pages::DecodePages(out->pages[0]);
  ASSERT_TRUE(before.ok() && after.ok());
  EXPECT_TRUE(pages::ComparePages(*before, *after).ok());

  auto bad = r.Render(std::string_view(tiff).substr(0, 200), DocumentType::kTiff, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kDocumentError);
}

TEST(RendererTest, CorruptPdfIsADocumentError) {
  Renderer r(FastOptions(), SystemClock::Instance());
  auto out = r.Render(ReadData("corrupt.pdf"), DocumentType::kPdf, {});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), Code::kDocumentError);
  EXPECT_TRUE(out.status().permanent());
  EXPECT_NE(out.status().message().find("ghostscript rejected the document: "), std::string::npos)
      << out.status().message();
  std::printf("[ message  ] %s\n", out.status().message().c_str());
}

TEST(RendererTest, SaferBlocksFileAccess) {
  Renderer r(FastOptions(), SystemClock::Instance());
  auto out = r.Render("%!PS\n(/etc/passwd) (r) file 100 string readstring pop show showpage\n",
                      DocumentType::kPostScript, {});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), Code::kDocumentError);
  EXPECT_NE(out.status().message().find("invalidfileaccess"), std::string::npos) << out.status().message();
}

TEST(RendererTest, InfiniteLoopHitsTheCpuLimitAndRendererRecovers) {
  RendererOptions o = FastOptions();
  o.cpu_seconds = 2;
  o.timeout_seconds = 20;
  Renderer r(o, SystemClock::Instance());
  auto start = std::chrono::steady_clock::now();
  auto out = r.Render(ReadData("loop.ps"), DocumentType::kPostScript, {});
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), Code::kDocumentError);
  EXPECT_NE(out.status().message().find("CPU limit of 2 s"), std::string::npos) << out.status().message();
  EXPECT_LT(took, 15.0);  // 2 s of CPU; generous for a loaded 2-core machine
  std::printf("[ measure  ] loop.ps stopped after %.2f s: %s\n", took, out.status().message().c_str());

  auto again = r.Render(ReadData("sample.pdf"), DocumentType::kPdf, {});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->pages.size(), 4u);
}

TEST(RendererTest, WallClockTimeoutKillsTheProcessGroup) {
  RendererOptions o = FastOptions();
  o.cpu_seconds = 60;
  o.timeout_seconds = 1;
  Renderer r(o, SystemClock::Instance());
  auto start = std::chrono::steady_clock::now();
  auto out = r.Render(ReadData("loop.ps"), DocumentType::kPostScript, {});
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), Code::kDocumentError);
  EXPECT_EQ(out.status().message(), "render timed out after 1 s (killed)");
  EXPECT_LT(took, 4.0);
}

TEST(RendererTest, TooManyPagesIsADocumentError) {
  RendererOptions o = FastOptions();
  o.max_pages = 2;
  o.cpu_seconds = 3;  // the endless case below ends at the CPU limit
  Renderer r(o, SystemClock::Instance());
  auto out = r.Render(ReadData("sample.pdf"), DocumentType::kPdf, {});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), Code::kDocumentError);
  EXPECT_EQ(out.status().message(), "document has more than 2 pages");
  // A PostScript program producing pages forever is cut at max_pages + 1 and the time limit.
  auto endless = r.Render("%!PS\n/Helvetica findfont 20 scalefont setfont\n{ 100 100 moveto (x) show showpage } loop\n",
                          DocumentType::kPostScript, {});
  ASSERT_FALSE(endless.ok());
  EXPECT_EQ(endless.status().code(), Code::kDocumentError);
}

TEST(RendererTest, OutputSizeLimitIsEnforced) {
  RendererOptions o = FastOptions();
  o.max_output_bytes = 20000;  // one sample page is ~25-60 KB
  Renderer r(o, SystemClock::Instance());
  auto out = r.Render(ReadData("sample.pdf"), DocumentType::kPdf, {});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), Code::kDocumentError);
  std::printf("[ message  ] %s\n", out.status().message().c_str());
}

TEST(RendererTest, ConcurrentRendersAreIndependent) {
  Renderer r(FastOptions(), SystemClock::Instance());
  std::string pdf = ReadData("sample.pdf");
  std::vector<Result<RenderOutput>> results(3, Status::Permanent(Code::kInternal, "not run"));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i)
    threads.emplace_back([&, i] { results[i] = r.Render(pdf, DocumentType::kPdf, {}); });
  for (auto& t : threads) t.join();
  for (auto& res : results) {
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    EXPECT_EQ(res->pages, results[0]->pages);
  }
}

TEST(RendererTest, MissingGhostscriptIsReported) {
  RendererOptions o = FastOptions();
  o.gs_path = "/nonexistent/gs";
  Renderer r(o, SystemClock::Instance());
  Status s = r.CheckGhostscript();
  EXPECT_FALSE(s.ok());
  auto out = r.Render(ReadData("sample.pdf"), DocumentType::kPdf, {});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().code(), Code::kDocumentError);  // not the document's fault
}

}  // namespace
}  // namespace faxflow::imaging
