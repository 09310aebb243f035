// `faxflow broadcast recipients.csv doc.pdf ...`: submits a broadcast to a running gateway
// (POST /v1/broadcasts) and shows a progress bar on stderr until every recipient is terminal;
// optionally saves the per-recipient results CSV. `faxflow webhooks ...`: manages webhook
// endpoints (create, list, show with the delivery log, rotate, delete) and verifies a signature.
#pragma once

#include <string>
#include <vector>

namespace faxflow::cli {

struct BroadcastArgs {
  std::string recipients;          // CSV (header with a `to` column) or JSON array
  std::vector<std::string> files;  // documents
  std::string server = "http://127.0.0.1:8080";
  std::string api_key;
  std::string header_text;
  std::string tsi;
  int max_dials = 0;
  // Per-recipient cover page: template (basic | confidential; empty = no cover) and shared
  // fields as key=value (from_name=Acme, subject=...); each recipient's name/company columns fill
  // to_name/to_company (docs/broadcast.md).
  std::string cover;
  std::vector<std::string> cover_fields;
  bool no_wait = false;
  std::string results;  // write results.csv here when done
  double poll_seconds = 0.5;
};
int Broadcast(const BroadcastArgs& args);

struct WebhooksArgs {
  std::string action;  // create | list | show | rotate | delete | verify
  std::string server = "http://127.0.0.1:8080";
  std::string api_key;
  std::string url;                  // create
  std::vector<std::string> events;  // create
  std::string id;                   // show | rotate | delete
  // verify: checks a received webhook (headers + body file) against a secret.
  std::string secret, webhook_id, timestamp, signature, body_file;
};
int Webhooks(const WebhooksArgs& args);

}  // namespace faxflow::cli
