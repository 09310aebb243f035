#include "tests/e2e/e2e_util.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>

namespace faxflow::testing {

FaxflowAll::FaxflowAll(const std::string& data_dir, std::vector<std::string> sets, int port)
    : data_dir_(data_dir), port_(port == 0 ? FreePort() : port) {
  std::vector<std::string> argv = {FaxflowBinary(), "all", "--set", "data_dir=" + data_dir,
                                   "--set", "gateway.listen=127.0.0.1:" + std::to_string(port_),
                                   "--set", "admin.listen=127.0.0.1:0",
                                   "--set", "gateway.auth=none"};  // the API-key tests are in tests/api
  for (const auto& s : sets) {
    argv.push_back("--set");
    argv.push_back(s);
  }
  proc_ = std::make_unique<ChildProcess>(argv, data_dir + "/faxflow.log");
  const bool ready = Await(
      [&] { return !proc_->Running() || HttpGet(port_, "/readyz").status == 200; }, std::chrono::seconds(60),
      std::chrono::milliseconds(100));
  if (!ready || !proc_->Running()) {
    throw std::runtime_error("faxflow all did not become ready; log:\n" + proc_->Log());
  }
}

FaxflowAll::~FaxflowAll() {
  if (proc_ && proc_->Running()) {
    proc_->Signal(SIGTERM);
    if (proc_->Wait(std::chrono::seconds(30)) == -1) proc_->Signal(SIGKILL);
  }
}

HttpResponse FaxflowAll::Submit(const std::vector<std::string>& files, const std::vector<std::string>& to,
                                const std::string& options_json) {
  std::vector<FormPart> parts;
  for (const auto& f : files) {
    const auto slash = f.rfind('/');
    parts.push_back({"file", ReadFileOrDie(f), slash == std::string::npos ? f : f.substr(slash + 1)});
  }
  for (const auto& n : to) parts.push_back({"to", n, ""});
  if (!options_json.empty()) parts.push_back({"options", options_json, ""});
  return HttpPostForm(port_, "/v1/faxes", parts);
}

std::string FaxflowAll::SubmitOk(const std::vector<std::string>& files, const std::vector<std::string>& to,
                                 const std::string& options_json) {
  auto r = Submit(files, to, options_json);
  if (r.status != 202) throw std::runtime_error("submit answered " + std::to_string(r.status) + ": " + r.body);
  return nlohmann::json::parse(r.body).at("id").get<std::string>();
}

nlohmann::json FaxflowAll::Status(const std::string& fax_id) {
  auto r = HttpGet(port_, "/v1/faxes/" + fax_id);
  if (r.status != 200) return nlohmann::json();
  return nlohmann::json::parse(r.body);
}

nlohmann::json FaxflowAll::AwaitDone(const std::string& fax_id, std::chrono::milliseconds timeout) {
  nlohmann::json last;
  const bool done = Await(
      [&] {
        last = Status(fax_id);
        return last.is_object() && last.value("done", false);
      },
      timeout, std::chrono::milliseconds(100));
  if (!done) ADD_FAILURE() << "fax " << fax_id << " not done in time; last status: " << last.dump();
  return last;
}

std::vector<nlohmann::json> FaxflowAll::Calls() const {
  std::vector<nlohmann::json> out;
  std::ifstream in(data_dir_ + "/received/calls.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

std::string WriteNumberedPostScript(const std::string& path, int pages) {
  std::ofstream out(path);
  out << "%!PS-Adobe-3.0\n%%Pages: " << pages << "\n";
  for (int p = 1; p <= pages; ++p) {
    out << "%%Page: " << p << " " << p << "\n"
        << "/Helvetica-Bold findfont 72 scalefont setfont 72 650 moveto (Page " << p << " of " << pages << ") show\n"
        << "/Helvetica findfont 14 scalefont setfont\n";
    for (int line = 0; line < 30; ++line) {
      out << "72 " << (600 - line * 16) << " moveto (Line " << line + 1 << " of page " << p
          << ": faxflow end-to-end test text, pixel compared after transmission.) show\n";
    }
    out << "newpath 72 72 moveto " << 100 + p * 60 << " 140 lineto 5 setlinewidth stroke\nshowpage\n";
  }
  out << "%%EOF\n";
  return path;
}

}  // namespace faxflow::testing
