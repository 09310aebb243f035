#include "workers/modem/report.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <nlohmann/json.hpp>
#include <sstream>

namespace faxflow::modem {
namespace {

std::string Lower(std::string s, std::string_view prefix) {
  if (s.rfind(prefix, 0) == 0) s = s.substr(prefix.size());
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// PDF string literal: escapes \ ( ) and replaces non-printable bytes.
std::string PdfText(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '(' || c == ')') out += '\\';
    out += (c >= 32 && c < 127) ? c : '?';
  }
  return out;
}

const AttemptRecord* LastAnswered(const ReportInput& in) {
  for (auto it = in.attempts.rbegin(); it != in.attempts.rend(); ++it)
    if (it->bit_rate > 0 || !it->remote_csid.empty()) return &*it;
  return nullptr;
}

int64_t LineTime(const ReportInput& in) {
  int64_t total = 0;
  for (const auto& a : in.attempts) total += a.duration_ms;
  return total;
}

}  // namespace

std::string StateName(int state) {
  return v1::RecipientState_IsValid(state)
             ? Lower(v1::RecipientState_Name(static_cast<v1::RecipientState>(state)), "STATE_")
             : "unknown";
}

std::string ReasonName(int reason) {
  if (reason == v1::REASON_UNSPECIFIED) return "";
  return v1::FailureReason_IsValid(reason)
             ? Lower(v1::FailureReason_Name(static_cast<v1::FailureReason>(reason)), "REASON_")
             : "unknown";
}

Thumbnail MakeThumbnail(const pages::Bitmap& page, uint32_t target_width) {
  Thumbnail t;
  if (page.width == 0 || page.length == 0 || target_width == 0) return t;
  const uint32_t fx = std::max<uint32_t>(1, page.width / target_width);
  // Fine pages (about 2 rows per column-pixel at 196 dpi) use the same factor; normal ones half.
  const bool fine = page.length > 1600;
  const uint32_t fy = std::max<uint32_t>(1, fine ? fx : fx / 2);
  t.width = page.width / fx;
  t.height = page.length / fy;
  t.gray.assign(static_cast<size_t>(t.width) * t.height, 255);
  for (uint32_t ty = 0; ty < t.height; ++ty) {
    for (uint32_t tx = 0; tx < t.width; ++tx) {
      uint32_t black = 0;
      for (uint32_t y = ty * fy; y < (ty + 1) * fy && y < page.length; ++y) {
        const uint8_t* row = page.bits.data() + static_cast<size_t>(y) * page.stride;
        for (uint32_t x = tx * fx; x < (tx + 1) * fx && x < page.width; ++x)
          black += (row[x >> 3] >> (7 - (x & 7))) & 1u;
      }
      const uint32_t area = fx * fy;
      t.gray[static_cast<size_t>(ty) * t.width + tx] = static_cast<uint8_t>(255 - (255 * black) / area);
    }
  }
  return t;
}

std::string ReportJson(const ReportInput& in) {
  using nlohmann::json;
  json attempts = json::array();
  for (const auto& a : in.attempts) {
    attempts.push_back({{"attempt", a.attempt},
                        {"started_at_ms", a.started_ms},
                        {"duration_ms", a.duration_ms},
                        {"first_page", a.first_page},
                        {"pages_confirmed", a.pages_confirmed},
                        {"state", StateName(a.state)},
                        {"reason", ReasonName(a.reason)},
                        {"completion", a.completion},
                        {"remote_csid", a.remote_csid},
                        {"bit_rate", a.bit_rate},
                        {"ecm", a.ecm},
                        {"channel", a.channel},
                        {"line_plan", a.line_plan}});
  }
  json pages = json::array();
  for (int32_t p = 1; p <= in.pages_total; ++p) {
    json entry = {{"page", p}, {"status", p <= in.pages_sent ? "confirmed" : "not_confirmed"}};
    for (const auto& r : in.pages)
      if (r.page == p) {
        entry["attempt"] = r.attempt;
        entry["confirmed_at_ms"] = r.confirmed_ms;
      }
    pages.push_back(entry);
  }
  const AttemptRecord* answered = LastAnswered(in);
  json out = {{"kind", "transmission_report"},
              {"fax_id", in.job.fax_id()},
              {"recipient_id", in.job.job_id()},
              {"tenant", in.job.tenant()},
              {"to", in.job.number()},
              {"tsi", in.job.tsi().empty() ? in.local_ident : in.job.tsi()},
              {"state", StateName(in.state)},
              {"reason", ReasonName(in.reason)},
              {"detail", in.detail},
              {"pages_total", in.pages_total},
              {"pages_sent", in.pages_sent},
              {"attempts_count", static_cast<int>(in.attempts.size())},
              {"remote_csid", answered ? answered->remote_csid : ""},
              {"bit_rate", answered ? answered->bit_rate : 0},
              {"ecm", answered ? answered->ecm : false},
              {"line_ms", LineTime(in)},
              {"completion", in.attempts.empty() ? "" : in.attempts.back().completion},
              {"first_page_blob_id", in.job.pages_size() > 0 ? in.job.pages(0).blob_id() : ""},
              {"site", in.site},
              {"generated_at_ms", in.generated_ms},
              {"attempts", attempts},
              {"pages", pages}};
  return out.dump(2);
}

std::string ReportPdf(const ReportInput& in) {
  // Content: text lines top-left, thumbnail top-right.
  std::ostringstream content;
  double y = 790;
  auto line = [&](double x, double size, const std::string& text, bool bold = false) {
    content << "BT /" << (bold ? "F2 " : "F1 ") << size << " Tf " << x << ' ' << y << " Td (" << PdfText(text)
            << ") Tj ET\n";
  };
  auto next = [&](double dy) { y -= dy; };
  line(40, 18, "TRANSMISSION REPORT", true);
  next(26);
  line(40, 10, "Generated " + FormatUtc(in.generated_ms) + "   site " + in.site);
  next(22);
  const AttemptRecord* answered = LastAnswered(in);
  const std::vector<std::pair<std::string, std::string>> fields = {
      {"To", in.job.number()},
      {"Fax ID", in.job.fax_id()},
      {"Recipient ID", in.job.job_id()},
      {"From (TSI)", in.job.tsi().empty() ? in.local_ident : in.job.tsi()},
      {"Remote CSID", answered ? answered->remote_csid : "-"},
      {"Result",
       StateName(in.state) + (in.reason != v1::REASON_UNSPECIFIED ? " (" + ReasonName(in.reason) + ")" : "")},
      {"Pages", std::to_string(in.pages_sent) + " of " + std::to_string(in.pages_total) + " confirmed"},
      {"Rate / ECM",
       answered ? std::to_string(answered->bit_rate) + " bps / " + (answered->ecm ? "on" : "off") : "-"},
      {"Attempts", std::to_string(in.attempts.size())},
      {"Line time", std::to_string(LineTime(in) / 1000) + " s"},
  };
  for (const auto& [k, v] : fields) {
    line(40, 11, k + ":", true);
    line(130, 11, v);
    next(16);
  }
  if (!in.detail.empty()) {
    line(40, 9, in.detail.substr(0, 90));
    next(14);
  }
  next(10);
  line(40, 11, "Attempts", true);
  next(15);
  line(40, 8,
       "#   start                     secs  pages  result                 completion          rate   ECM");
  next(11);
  size_t shown = 0;
  for (const auto& a : in.attempts) {
    if (++shown > 14) {
      line(40, 8, "... " + std::to_string(in.attempts.size() - 14) + " more attempts (see the JSON report)");
      next(11);
      break;
    }
    std::ostringstream row;
    row << a.attempt << "   " << FormatUtc(a.started_ms) << "   " << a.duration_ms / 1000 << "   "
        << a.first_page << "-" << (a.first_page + a.pages_confirmed - 1) << "   " << StateName(a.state)
        << (a.reason ? "/" + ReasonName(a.reason) : "") << "   " << a.completion << "   " << a.bit_rate
        << "   " << (a.ecm ? "on" : "off");
    line(40, 8, row.str());
    next(11);
  }
  next(10);
  line(40, 11, "Pages", true);
  next(15);
  for (int32_t p = 1; p <= in.pages_total; ++p) {
    if (y < 60) {
      line(40, 8,
           "... pages " + std::to_string(p) + "-" + std::to_string(in.pages_total) + " in the JSON report");
      break;
    }
    std::string text = "page " + std::to_string(p) + ": ";
    if (p <= in.pages_sent) {
      text += "confirmed";
      for (const auto& r : in.pages)
        if (r.page == p)
          text += " on attempt " + std::to_string(r.attempt) + " at " + FormatUtc(r.confirmed_ms);
    } else {
      text += "not confirmed";
    }
    line(40, 8, text);
    next(10);
  }

  Thumbnail thumb;
  if (in.first_page) thumb = MakeThumbnail(*in.first_page);
  const bool has_thumb = thumb.width > 0 && thumb.height > 0;
  // Thumbnail box: 150 pt wide at the top right.
  const double tw = 150;
  const double th = has_thumb ? tw * thumb.height / thumb.width : 0;
  if (has_thumb) {
    const double tx = 595 - 40 - tw;
    const double ty = 800 - th;
    content << "q 0.5 w " << tx - 1 << ' ' << ty - 1 << ' ' << tw + 2 << ' ' << th + 2 << " re S Q\n";
    content << "q " << tw << " 0 0 " << th << ' ' << tx << ' ' << ty << " cm /Im1 Do Q\n";
    y = ty - 14;
    line(tx, 8, "Page 1");
  }

  const std::string stream = content.str();
  std::vector<std::string> objects;
  objects.push_back("<< /Type /Catalog /Pages 2 0 R >>");
  objects.push_back("<< /Type /Pages /Kids [3 0 R] /Count 1 >>");
  objects.push_back(std::string("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R ") +
                    "/Resources << /Font << /F1 5 0 R /F2 6 0 R >>" +
                    (has_thumb ? " /XObject << /Im1 7 0 R >>" : "") + " >> >>");
  objects.push_back("<< /Length " + std::to_string(stream.size()) + " >>\nstream\n" + stream + "endstream");
  objects.push_back("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>");
  objects.push_back("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold >>");
  if (has_thumb) {
    std::string img(thumb.gray.begin(), thumb.gray.end());
    objects.push_back("<< /Type /XObject /Subtype /Image /Width " + std::to_string(thumb.width) +
                      " /Height " + std::to_string(thumb.height) +
                      " /ColorSpace /DeviceGray /BitsPerComponent 8 /Length " + std::to_string(img.size()) +
                      " >>\nstream\n" + img + "\nendstream");
  }
  std::string pdf = "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n";
  std::vector<size_t> offsets;
  for (size_t i = 0; i < objects.size(); ++i) {
    offsets.push_back(pdf.size());
    pdf += std::to_string(i + 1) + " 0 obj\n" + objects[i] + "\nendobj\n";
  }
  const size_t xref = pdf.size();
  pdf += "xref\n0 " + std::to_string(objects.size() + 1) + "\n0000000000 65535 f \n";
  for (size_t off : offsets) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%010zu 00000 n \n", off);
    pdf += buf;
  }
  pdf += "trailer\n<< /Size " + std::to_string(objects.size() + 1) + " /Root 1 0 R >>\nstartxref\n" +
         std::to_string(xref) + "\n%%EOF\n";
  return pdf;
}

}  // namespace faxflow::modem
