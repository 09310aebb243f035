// The CLI's client side: `faxflow send` and `faxflow status` talk to a running gateway over the
// public REST API, exactly as any integration would.
#pragma once

#include <string>
#include <vector>

namespace faxflow::bus {
class Bus;
}

namespace faxflow::cli {

// The API key sent as `Authorization: Bearer` (--api-key, else $FAXFLOW_API_KEY; empty: none).
std::string ApiKeyOrEnv(const std::string& flag);

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
  std::string api_key;          // see ApiKeyOrEnv
  std::string idempotency_key;  // empty: a random one per invocation (retries reuse it)
};

// Exit codes: 0 accepted (and delivered, with --wait); 1 request failed; 3 finished but not
// every recipient was delivered.
int Send(const SendArgs& args);
int ShowStatus(const std::string& server, const std::string& fax_id, bool json, const std::string& api_key = "");

// `faxflow keys create|list|revoke`: through a gateway's admin API (server + admin token) or,
// without a server, straight on the configured bus (`bus` non-null).
struct KeysArgs {
  std::string action;  // create | list | revoke
  std::string tenant;
  std::string name;
  std::string key_id;
  std::string server;       // empty: use `bus`
  std::string admin_token;  // --admin-token or $FAXFLOW_ADMIN_TOKEN
};
int Keys(const KeysArgs& args, bus::Bus* bus);

}  // namespace faxflow::cli
