// `faxflow sink`: a stand-alone receiving fax endpoint for tests and demos.
//
// Answers T.38 calls of the `t38` line driver on a UDP port (workers/modem/t38_sink.h: UDPTL
// with redundancy, SpanDSP t38_terminal receivers), stores every received fax as a TIFF under
// --dir (<digits of the number>/<job_id>-a<attempt>.tif, plus calls.jsonl) and serves a small
// HTTP status endpoint: GET /v1/received -> {"faxes":[{call_id, number, job_id, attempt, state,
// result, pages, csid, bit_rate, ecm, path, seconds, recovered, lost}], "received", "active",
// "pages"}; GET /healthz -> ok. Runs until SIGINT/SIGTERM (the caller blocks them first).
#pragma once

#include <string>

namespace faxflow {

struct SinkArgs {
  std::string listen = "127.0.0.1:4560";  // T.38 (UDP)
  std::string http = "127.0.0.1:4580";    // status endpoint (TCP); port 0 = any free port
  std::string dir = "sink-received";
  std::string ident = "FAXFLOW SINK";
  std::string behaviours;  // per-number behaviours (sim.behaviours syntax)
  int redundancy = 3;
  bool paced = true;
  double idle_timeout_seconds = 30;
  std::string log_level = "info";
};

// Returns the exit code. Prints "sink ready: t38 udp <host:port>, http <host:port>" on stdout
// once both are listening.
int RunSink(const SinkArgs& args);

}  // namespace faxflow
