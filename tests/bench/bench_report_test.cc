// bench/report.py (the table bench/run prints): targets are judged in the row's direction
// ("better" higher/lower, "compare" ratio/absolute), failed benches and skipped rows are listed
// instead of crashing the report, and the issue-target section says which targets are met.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/support.h"

namespace faxflow::testing {
namespace {

TEST(BenchReport, JudgesEveryDirectionAndKeepsFailedRows) {
  TempDir dir;
  const std::string rows = dir.path() + "/rows";
  {
    using nlohmann::json;
    const json null;
    const std::vector<json> lines = {
        // ratio, higher: 0.9 >= 0.8 met; 0.5 not met (no better/compare: defaults higher/ratio).
        {{"bench", "a.ratio_met"},
         {"faxflow", 9},
         {"raw", 10},
         {"unit", "msg/s"},
         {"ratio", 0.9},
         {"target", 0.8},
         {"better", "higher"},
         {"compare", "ratio"}},
        {{"bench", "b.ratio_missed"},
         {"faxflow", 5},
         {"raw", 10},
         {"unit", "msg/s"},
         {"ratio", 0.5},
         {"target", 0.8}},
        // absolute, lower: 7 ms <= 10 met; 60 ms > 50 not met.
        {{"bench", "c.p99_met"},
         {"faxflow", 7},
         {"raw", null},
         {"unit", "ms"},
         {"ratio", null},
         {"target", 10},
         {"better", "lower"},
         {"compare", "absolute"}},
        {{"bench", "d.p99_missed"},
         {"faxflow", 60},
         {"raw", null},
         {"unit", "ms"},
         {"ratio", null},
         {"target", 50},
         {"better", "lower"},
         {"compare", "absolute"}},
        {{"bench", "e.info"},
         {"faxflow", 3},
         {"raw", null},
         {"unit", "ms"},
         {"ratio", null},
         {"target", null},
         {"better", "lower"},
         {"compare", "absolute"}},
        {{"bench", "f.skipped"}, {"skipped", "no broker"}},
        {{"bench", "g_bench"}, {"failed", "timed out after 60 s (budget)"}, {"log_tail", "stuck"}},
        {{"_timing", "g_bench"}, {"seconds", 60.0}, {"rc", 124}},
    };
    std::ofstream out(rows);
    for (const auto& l : lines) out << l.dump() << "\n";
  }
  const std::string base = dir.path() + "/report";
  const std::string cmd = "python3 " + SourceDir() + "/bench/report.py " + rows + " " + base + " >" +
                          dir.path() + "/stdout 2>" + dir.path() + "/stderr";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << ReadFileOrDie(dir.path() + "/stderr");

  const std::string md = ReadFileOrDie(base + ".md");
  EXPECT_NE(md.find("**2 of 4 targets are met.** 1 bench(es) failed, 1 row(s) skipped."), std::string::npos)
      << md;
  EXPECT_NE(md.find("| a.ratio_met | 9 | 10.0 | msg/s | 0.90 | ratio >= 0.8 | higher | yes |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| d.p99_missed | 60.0 |  | ms |  | <= 50.0 ms | lower | **NO** |"), std::string::npos)
      << md;
  EXPECT_NE(md.find("| e.info |"), std::string::npos);
  EXPECT_NE(md.find("info |"), std::string::npos);
  EXPECT_NE(md.find("**FAILED**: timed out after 60 s (budget)"), std::string::npos) << md;
  EXPECT_NE(md.find("- `b.ratio_missed`: 0.50, target ratio >= 0.8"), std::string::npos) << md;
  EXPECT_NE(md.find("- `c.p99_met`: 7 ms, target <= 10.0 ms"), std::string::npos) << md;
  EXPECT_EQ(ReadFileOrDie(dir.path() + "/stdout").find("# faxflow benchmarks"), 0u);

  const auto j = nlohmann::json::parse(ReadFileOrDie(base + ".json"));
  EXPECT_EQ(j["summary"]["met"], 2);
  EXPECT_EQ(j["summary"]["judged"], 4);
  EXPECT_EQ(j["summary"]["failed"], 1);
  EXPECT_EQ(j["results"].size(), 7u);
}

}  // namespace
}  // namespace faxflow::testing
