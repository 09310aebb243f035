// The CLI's client side: `faxflow send` and `faxflow status` talk to a running gateway over the
// public REST API, exactly as any integration would.
#pragma once

#include <string>
#include <vector>

namespace faxflow::cli {

struct SendArgs {
  std::string server = "http://127.0.0.1:8080";
  std::vector<std::string> to;
  std::vector<std::string> files;
  bool normal = false;
  bool wait = false;
  double wait_timeout_seconds = 900;
  std::string header_text;
  std::string tsi;
  int priority = -1;
};

// Exit codes: 0 accepted (and delivered, with --wait); 1 request failed; 3 finished but not
// every recipient was delivered.
int Send(const SendArgs& args);
int ShowStatus(const std::string& server, const std::string& fax_id, bool json);

}  // namespace faxflow::cli
