// Helpers of the broadcast end-to-end tests (broadcast_e2e_test.cc, broadcast_cover_e2e_test.cc):
// numbers, the REST calls of a broadcast (create, progress, results CSV), one /metrics series,
// the `faxflow broadcast` CLI, and the bus settings of the `faxflow all` under test.
//
// Bus: embedded by default. A binary compiled with FAXFLOW_BROADCAST_TEST_KAFKA runs its
// pipelines on a private single-node Kafka broker (tests/support PrivateKafkaBroker), started by
// the first BroadcastBusSets() call and stopped at process exit; such a test needs the CTest
// RESOURCE_LOCK faxflow_private_broker. Header-only; the test links faxflow_e2e_util.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/e2e/e2e_util.h"
#include "tests/support/support.h"

namespace faxflow::testing {

// "+1555" + `block` (3 digits) + `i` (4 digits): one block of numbers per kind of far end.
inline std::string PhoneNumber(int block, int i) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "+1555%03d%04d", block, i);
  return buf;
}

// `--set` overrides putting a `faxflow all` on this binary's bus (see the file comment).
inline std::vector<std::string> BroadcastBusSets() {
#ifdef FAXFLOW_BROADCAST_TEST_KAFKA
  return {"bus.backend=kafka",
          "kafka.bootstrap=" + SharedPrivateKafkaBroker("faxflow-broadcast-kafka").bootstrap()};
#else
  return {};
#endif
}

// `sets` (`--set key=value` overrides of a `faxflow all`) after this binary's bus settings.
inline std::vector<std::string> OnTestBus(const std::vector<std::string>& sets = {}) {
  auto all = BroadcastBusSets();
  all.insert(all.end(), sets.begin(), sets.end());
  return all;
}

// The value of one exact series ("name{labels}") of /metrics on `port`, or -1 when it is absent.
inline double MetricSeries(int port, const std::string& series) {
  auto r = HttpGet(port, "/metrics");
  std::istringstream in(r.body);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return -1;
}

// The rows after the header of SplitCsv, each by column name.
inline std::vector<std::map<std::string, std::string>> CsvRecords(const std::string& csv) {
  const auto rows = SplitCsv(csv);
  std::vector<std::map<std::string, std::string>> out;
  for (size_t r = 1; r < rows.size(); ++r) {
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < rows[0].size() && i < rows[r].size(); ++i) row[rows[0][i]] = rows[r][i];
    out.push_back(row);
  }
  return out;
}

// POST /v1/broadcasts: the recipient list, one document, and the options part unless empty.
inline HttpResponse PostBroadcast(int port, const std::string& recipients_csv, const std::string& document,
                                  const std::string& document_name, const std::string& options_json = "") {
  std::vector<FormPart> parts = {{"recipients", recipients_csv, "recipients.csv"},
                                 {"file", document, document_name}};
  if (!options_json.empty()) parts.push_back({"options", options_json, ""});
  return HttpPostForm(port, "/v1/broadcasts", parts);
}

// GET /v1/broadcasts/{id} into `progress`; false when it does not answer 200.
inline bool GetBroadcast(int port, const std::string& id, nlohmann::json& progress) {
  auto g = HttpGet(port, "/v1/broadcasts/" + id);
  if (g.status != 200) return false;
  progress = nlohmann::json::parse(g.body);
  return true;
}

// Runs `faxflow broadcast <list> <document> --server <the app> <args...>` to its end (up to
// 180 s, output in `log_path`, returned in `log`): asserts exit status 0 and "<n>/<n>" (all
// terminal) in the output. Call it in ASSERT_NO_FATAL_FAILURE.
inline void RunBroadcastCli(int port, const std::string& list, const std::string& document,
                            const std::vector<std::string>& args, int recipients, const std::string& log_path,
                            std::string* log) {
  std::vector<std::string> argv = {FaxflowBinary(), "broadcast", list,
                                   document,        "--server",  "http://127.0.0.1:" + std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  ChildProcess cli(argv, log_path);
  const int st = cli.Wait(std::chrono::seconds(180));
  *log = cli.Log();
  ASSERT_NE(st, -1) << "CLI did not finish\n" << *log;
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << *log;
  const std::string all_done = std::to_string(recipients) + "/" + std::to_string(recipients);
  EXPECT_NE(log->find(all_done), std::string::npos) << *log;
}

}  // namespace faxflow::testing
