// Document sniffing on the test corpus and on a few classic non-documents.
#include "workers/imaging/sniff.h"

#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/imaging/test_util.h"

namespace faxflow::imaging {
namespace {

using testing::ReadData;

TEST(SniffTest, CorpusFilesGetTheirType) {
  struct Case {
    const char* file;
    DocumentType type;
  };
  for (const Case& c : {Case{"sample.pdf", DocumentType::kPdf}, Case{"corrupt.pdf", DocumentType::kPdf},
                        Case{"sample.ps", DocumentType::kPostScript}, Case{"loop.ps", DocumentType::kPostScript},
                        Case{"fax-page.tif", DocumentType::kTiff}, Case{"hello.txt", DocumentType::kPlainText}}) {
    std::string content = ReadData(c.file);
    ASSERT_FALSE(content.empty()) << c.file;
    auto type = DetectDocumentType(content);
    ASSERT_TRUE(type.ok()) << c.file << ": " << type.status().ToString();
    EXPECT_EQ(*type, c.type) << c.file;
  }
}

TEST(SniffTest, NonDocumentsAreRejectedWithTheirMimeType) {
  auto elf = DetectDocumentType(ReadData("not-a-document.bin"));
  ASSERT_FALSE(elf.ok());
  EXPECT_EQ(elf.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(elf.status().permanent());
  EXPECT_NE(elf.status().message().find("unsupported document type application/x-"), std::string::npos)
      << elf.status().message();

  const std::string png("\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x02\0\0\0\x90\x91h6", 33);
  auto p = DetectDocumentType(png);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("image/png"), std::string::npos) << p.status().message();

  const std::string zip("PK\x03\x04\x14\0\0\0\x08\0", 10);
  EXPECT_FALSE(DetectDocumentType(zip).ok());
  EXPECT_FALSE(DetectDocumentType("").ok());
  EXPECT_FALSE(DetectDocumentType(std::string("text with a NUL\0 inside", 23)).ok());
}

TEST(SniffTest, ContentWinsOverAnyName) {
  // PostScript disguised as a PDF is still PostScript (gs would execute it as such).
  EXPECT_EQ(DetectDocumentType("%!PS\n(%PDF-1.4) pop showpage\n").value_or(DocumentType::kPdf),
            DocumentType::kPostScript);
  // Junk before %PDF- is tolerated by PDF readers.
  EXPECT_EQ(DetectDocumentType("\r\n  junk %PDF-1.7\n...").value_or(DocumentType::kPlainText), DocumentType::kPdf);
  EXPECT_EQ(DetectDocumentType("Dear customer,\nplease find attached.\n").value_or(DocumentType::kPdf),
            DocumentType::kPlainText);
  EXPECT_EQ(DetectDocumentType(std::string("MM\0*\0\0\0\x08", 8)).value_or(DocumentType::kPdf), DocumentType::kTiff);
}

TEST(SniffTest, MimeNamesRoundTrip) {
  for (auto t : {DocumentType::kPdf, DocumentType::kPostScript, DocumentType::kTiff, DocumentType::kPlainText})
    EXPECT_EQ(DocumentTypeFromMime(MimeType(t)).value_or(DocumentType::kPdf), t);
  EXPECT_EQ(MimeType(DocumentType::kPdf), "application/pdf");
  EXPECT_FALSE(DocumentTypeFromMime("image/png").ok());
}

TEST(SniffTest, ConcurrentCallsAreSafe) {
  std::string text = ReadData("hello.txt");
  std::string elf = ReadData("not-a-document.bin");
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      for (int k = 0; k < 50; ++k) {
        if (DetectDocumentType(text).value_or(DocumentType::kPdf) != DocumentType::kPlainText) ++wrong;
        if (DetectDocumentType(elf).ok()) ++wrong;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace faxflow::imaging
