// Test documents for the modem tests: a fax of N distinct pages rendered by real Ghostscript
// (tiffg4, 204x196 dpi, A4 -> 1728 px wide), as single-page TIFFs (what the blob store holds)
// and as one multi-page TIFF (what SpanDSP sends).
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace faxflow::modem::testing {

struct TestDoc {
  std::string multipage_path;           // all pages
  std::vector<std::string> page_paths;  // one file per page
  std::vector<std::string> page_bytes;  // their contents
};

inline std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

inline std::string MakeTempDir(const std::string& tag) {
  std::string templ = (std::filesystem::temp_directory_path() / ("faxflow-" + tag + "-XXXXXX")).string();
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) return "";
  return std::string(buf.data());
}

// PostScript with `pages` pages, each with its own title, text lines and a box at a different
// place, so that pages differ visibly and a swapped or missing page is detected.
inline std::string TestPostScript(int pages) {
  std::ostringstream ps;
  ps << "%!PS-Adobe-3.0\n";
  for (int p = 1; p <= pages; ++p) {
    ps << "/Helvetica-Bold findfont 36 scalefont setfont 72 760 moveto (faxflow test page " << p << " of "
       << pages << ") show\n";
    ps << "/Times-Roman findfont 14 scalefont setfont\n";
    for (int line = 0; line < 12; ++line) {
      ps << "72 " << (700 - line * 22) << " moveto (Page " << p << " line " << line + 1
         << ": the quick brown fox jumps over the lazy dog " << (p * 1000 + line * 7) << ") show\n";
    }
    ps << "4 setlinewidth " << (72 + p * 60) << " " << (150 + p * 25) << " 120 90 rectstroke\n";
    ps << "newpath 400 " << (120 + p * 30) << " " << (20 + p * 8) << " 0 360 arc fill\n";
    ps << "showpage\n";
  }
  return ps.str();
}

inline bool RunGs(const std::string& args) {
  const std::string cmd =
      "gs -q -dSAFER -dBATCH -dNOPAUSE -sDEVICE=tiffg4 -r204x196 -sPAPERSIZE=a4 -dFIXEDMEDIA " + args;
  return std::system(cmd.c_str()) == 0;
}

// Renders the document into `dir`. Empty multipage_path on failure.
inline TestDoc MakeTestDoc(const std::string& dir, int pages) {
  TestDoc doc;
  const std::string ps_path = dir + "/doc.ps";
  {
    std::ofstream out(ps_path);
    out << TestPostScript(pages);
  }
  if (!RunGs("-sOutputFile=" + dir + "/doc.tif " + ps_path)) return doc;
  if (!RunGs("-sOutputFile=" + dir + "/page-%d.tif " + ps_path)) return doc;
  for (int p = 1; p <= pages; ++p) {
    doc.page_paths.push_back(dir + "/page-" + std::to_string(p) + ".tif");
    doc.page_bytes.push_back(ReadFileBytes(doc.page_paths.back()));
  }
  doc.multipage_path = dir + "/doc.tif";
  return doc;
}

}  // namespace faxflow::modem::testing
