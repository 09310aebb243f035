#include "producers/gateway/cover.h"

#include <ctime>
#include <set>
#include <sstream>

#include "common/time_format.h"

namespace faxflow {
namespace {

const std::set<std::string>& KnownFields() {
  static const std::set<std::string> f = {"to_name",    "to_company", "from_name", "from_company",
                                          "from_phone", "subject",    "message"};
  return f;
}

// A PostScript string literal: ( ... ) with \, ( and ) escaped.
std::string PsString(const std::string& s) {
  std::string out = "(";
  for (char c : s) {
    if (c == '\\' || c == '(' || c == ')') out.push_back('\\');
    out.push_back(c);
  }
  return out + ")";
}

// Splits `text` into lines of at most `width` characters at spaces.
std::vector<std::string> Wrap(const std::string& text, size_t width) {
  std::vector<std::string> lines;
  std::istringstream words(text);
  std::string word, line;
  while (words >> word) {
    if (!line.empty() && line.size() + 1 + word.size() > width) {
      lines.push_back(line);
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word.substr(0, width);
  }
  if (!line.empty()) lines.push_back(line);
  return lines;
}

}  // namespace

bool IsCoverField(const std::string& name) { return KnownFields().count(name) > 0; }

Status ValidateCoverPage(const v1::CoverPage& cover) {
  if (cover.template_() != "basic" && cover.template_() != "confidential")
    return Status::Permanent(Code::kInvalidArgument, "cover.template must be basic or confidential");
  for (const auto& [k, v] : cover.fields()) {
    if (!KnownFields().count(k))
      return Status::Permanent(Code::kInvalidArgument, "unknown cover field '" + k + "'");
    if (v.size() > (k == "message" ? 2000u : 500u))
      return Status::Permanent(Code::kInvalidArgument, "cover field '" + k + "' is too long");
    for (unsigned char c : v)
      if ((c < 0x20 || c > 0x7e) && c != '\n')
        return Status::Permanent(Code::kInvalidArgument, "cover field '" + k + "' must be printable ASCII");
  }
  return Status::Ok();
}

std::string RenderCoverPage(const v1::CoverPage& cover, const std::vector<std::string>& to,
                            const std::string& date) {
  auto field = [&](const char* k) {
    auto it = cover.fields().find(k);
    return it == cover.fields().end() ? std::string() : it->second;
  };
  std::ostringstream ps;
  ps << "%!PS-Adobe-3.0\n%%Pages: 1\n%%EndComments\n%%Page: 1 1\n";
  ps << "/Helvetica-Bold findfont 40 scalefont setfont 72 700 moveto (FAX) show\n";
  if (cover.template_() == "confidential") {
    ps << "/Helvetica-Bold findfont 22 scalefont setfont 300 708 moveto (CONFIDENTIAL) show\n";
    ps << "newpath 290 698 moveto 480 698 lineto 480 736 lineto 290 736 lineto closepath 3 setlinewidth "
          "stroke\n";
  }
  ps << "newpath 72 680 moveto 540 680 lineto 2 setlinewidth stroke\n";
  ps << "/Helvetica findfont 14 scalefont setfont\n";
  int y = 650;
  std::string recipients;
  for (size_t i = 0; i < to.size() && i < 3; ++i) recipients += (i ? ", " : "") + to[i];
  if (to.size() > 3) recipients += ", ...";
  const std::vector<std::pair<std::string, std::string>> rows = {{"To:", field("to_name")},
                                                                 {"Company:", field("to_company")},
                                                                 {"Fax:", recipients},
                                                                 {"From:", field("from_name")},
                                                                 {"Company:", field("from_company")},
                                                                 {"Phone:", field("from_phone")},
                                                                 {"Date:", date},
                                                                 {"Subject:", field("subject")}};
  for (const auto& [label, value] : rows) {
    if (value.empty()) continue;
    ps << "72 " << y << " moveto " << PsString(label) << " show 170 " << y << " moveto "
       << PsString(value.substr(0, 60)) << " show\n";
    y -= 24;
  }
  y -= 12;
  ps << "newpath 72 " << y << " moveto 540 " << y << " lineto 1 setlinewidth stroke\n";
  y -= 30;
  ps << "/Helvetica findfont 12 scalefont setfont\n";
  std::string message = field("message");
  std::istringstream paragraphs(message);
  std::string paragraph;
  while (std::getline(paragraphs, paragraph) && y > 90) {
    for (const auto& line : Wrap(paragraph, 80)) {
      if (y <= 90) break;
      ps << "72 " << y << " moveto " << PsString(line) << " show\n";
      y -= 16;
    }
    y -= 8;
  }
  ps << "showpage\n%%EOF\n";
  return ps.str();
}

std::string CoverDate(int64_t ms) { return FormatUtc(ms, "%Y-%m-%d %H:%M UTC"); }

}  // namespace faxflow
