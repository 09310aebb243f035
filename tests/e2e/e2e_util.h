// A `faxflow all` process in a temp data dir, driven through its public REST API.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/support.h"

namespace faxflow::testing {

class FaxflowAll {
 public:
  // Starts `faxflow all` on `data_dir` with extra `--set key=value` overrides, waits for /readyz.
  FaxflowAll(const std::string& data_dir, std::vector<std::string> sets = {}, int port = 0);
  ~FaxflowAll();

  int port() const { return port_; }
  ChildProcess& process() { return *proc_; }
  const std::string& data_dir() const { return data_dir_; }

  // POST /v1/faxes with files (paths) and numbers; returns the HTTP response.
  HttpResponse Submit(const std::vector<std::string>& files, const std::vector<std::string>& to,
                      const std::string& options_json = "");
  // Submits and expects 202; returns the fax id.
  std::string SubmitOk(const std::vector<std::string>& files, const std::vector<std::string>& to,
                       const std::string& options_json = "");
  nlohmann::json Status(const std::string& fax_id);
  // Waits until every recipient is terminal; returns the final status.
  nlohmann::json AwaitDone(const std::string& fax_id, std::chrono::milliseconds timeout = std::chrono::minutes(3));
  // Every line of the simulated far end's call log (received_dir/calls.jsonl).
  std::vector<nlohmann::json> Calls() const;

 private:
  std::string data_dir_;
  int port_;
  std::unique_ptr<ChildProcess> proc_;
};

// Writes a PostScript document of `pages` pages, each with distinct large text and a pattern.
std::string WriteNumberedPostScript(const std::string& path, int pages);

}  // namespace faxflow::testing
