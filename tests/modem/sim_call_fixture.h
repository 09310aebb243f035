// Test fixture for one SpanDSP call at a time against the sim line's virtual far end, in this
// process: a test document of `Pages` pages rendered once per suite (gs), and a fresh
// SimLineDriver (received files, call log) per test. Used by the sim call and line-condition
// tests; the modem worker tests use ModemHarness (modem_harness.h) instead.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "pages/pages.h"
#include "tests/modem/test_doc.h"
#include "workers/modem/fax_call.h"
#include "workers/modem/outcome.h"
#include "workers/modem/sim_line.h"

namespace faxflow::modem {

template <int Pages>
class SimCallFixture : public ::testing::Test {
 protected:
  static constexpr int kPages = Pages;

  struct Run {
    FaxCallResult result;
    Classification cls;
    std::vector<int> confirmed;  // pages of this call confirmed by the far end, in order
    CallRequest request;
  };
  struct CallArgs {
    int first_page = 1;  // a resumed call starts here (pages before it were confirmed earlier)
    int attempt = 1;
    double timeout_s = 900;
  };

  static void SetUpTestSuite() {
    doc_dir_ = new std::string(testing::MakeTempDir("sim-call-doc"));
    doc_ = new testing::TestDoc(testing::MakeTestDoc(*doc_dir_, kPages));
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*doc_dir_);
    delete doc_;
    delete doc_dir_;
  }

  // Sim directory entries added for this suite ("number=behaviour,..."); built-in numbers
  // (docs/sim.md) always apply.
  virtual std::string DirectorySpec() const { return ""; }

  void SetUp() override {
    ASSERT_FALSE(doc_->multipage_path.empty()) << "gs failed to render the test document";
    dir_ = testing::MakeTempDir("sim-call");
    auto directory = SimDirectory::Create(DirectorySpec());
    ASSERT_TRUE(directory.ok()) << directory.status().ToString();
    SimLineOptions opts;
    opts.received_dir = dir_ + "/received";
    auto line = SimLineDriver::Create(opts, *directory, clock_);
    ASSERT_TRUE(line.ok()) << line.status().ToString();
    line_ = std::move(*line);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // One call of `tiff` to `number`, classified as the modem worker would.
  Run Call(const std::string& number, const std::string& tiff, CallArgs args = {}) {
    Run run;
    run.request.number = number;
    run.request.job_id = "job_" + std::to_string(++seq_);
    run.request.attempt = args.attempt;
    run.request.first_page = args.first_page;
    run.request.pages_total = kPages;
    FaxCallOptions o;
    o.tiff_path = tiff;
    o.ident = "+1 555 0100";
    o.call_timeout_seconds = args.timeout_s;
    FaxCallHooks hooks;
    hooks.on_confirmed = [&](int page) { run.confirmed.push_back(page); };
    auto r = RunFaxCall(*line_, run.request, o, clock_, hooks);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return run;
    run.result = *r;
    CallFacts f;
    f.setup = r->setup;
    f.completion_code = r->completion_code;
    f.phase_b_seen = r->phase_b_seen;
    f.watchdog = r->watchdog;
    f.pages_confirmed = args.first_page - 1 + r->pages_confirmed;
    f.pages_total = kPages;
    run.cls = Classify(f);
    return run;
  }

  // The pages the far end stored for `run` equal `expected`, pixel for pixel.
  void ExpectReceived(const Run& run, const std::vector<pages::Bitmap>& expected) {
    const std::string received = line_->ReceivedPath(run.request);
    ASSERT_TRUE(std::filesystem::exists(received)) << received;
    auto got = pages::DecodeFile(received);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->size(), expected.size());
    EXPECT_TRUE(pages::ComparePages(expected, *got).ok()) << pages::ComparePages(expected, *got).ToString();
  }
  // The test document's pages.
  std::vector<pages::Bitmap> Sent() {
    auto sent = pages::DecodeFile(doc_->multipage_path);
    EXPECT_TRUE(sent.ok()) << sent.status().ToString();
    return sent.ok() ? *sent : std::vector<pages::Bitmap>{};
  }
  std::vector<std::string> CallLog() {
    std::vector<std::string> lines;
    std::ifstream in(line_->CallLogPath());
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }

  static inline std::string* doc_dir_ = nullptr;
  static inline testing::TestDoc* doc_ = nullptr;
  int seq_ = 0;
  std::string dir_;
  SystemClock clock_;
  std::unique_ptr<SimLineDriver> line_;
};

}  // namespace faxflow::modem
