// `faxflow loadgen`: drives a running deployment with synthetic faxes and reports throughput and
// latency per stage (accepted, rendered, queued for a line, first dial, terminal).
//
// Submissions go through the public REST API (POST /v1/faxes, like any integration) or, with
// --via ingest, onto the fax.ingest topic (Kafka only). Stage times come from what the pipeline
// emits, read one of two ways (docs/performance.md, "faxflow loadgen"):
//   - events "bus" (with --kafka): loadgen reads fax.submissions, fax.jobs and fax.events itself
//     (read_committed, its own group, from the end offsets at start). Rendered, first dial and
//     terminal are the `at_ms` of the Rendered, AttemptStarted and terminal AttemptResult events;
//     "queued for a line" is when loadgen's read_committed consumer saw the job on fax.jobs.
//   - events "poll" (any deployment, the only way into an embedded `faxflow all`, whose bus is
//     inside that process): loadgen polls GET /v1/faxes/{id} of every unfinished fax. Rendered and
//     first dial are the times a poll first saw the state (resolution: the poll round), terminal
//     is the recipient's updated_at_ms (the event time). "Queued for a line" is not observable.
// Every latency is measured from the moment loadgen started sending the request (the submission),
// in wall-clock milliseconds, so it is only exact when loadgen and the pipeline share a clock.
//
// Threading: Run() starts `concurrency` sender threads, one event reader (bus or poll) and one
// progress printer (stderr, once a second), joins them and returns.
#pragma once

#include <string>

namespace faxflow::loadgen {

struct Options {
  std::string server = "http://127.0.0.1:8080";       // gateway base URL (--via rest, and --events poll)
  std::string api_key;                                // sent as `Authorization: Bearer` and `X-API-Key`
  std::string via = "rest";                           // rest | ingest
  std::string kafka;                                  // bootstrap servers: events from the bus, ingest
  std::string events;                                 // bus | poll; empty: bus with --kafka, else poll
  double rate = 0;                                    // submissions per second; 0: as fast as possible
  double duration_seconds = 0;                        // submit for this long (or until count)
  long count = 0;                                     // submit this many faxes (0: until duration)
  int concurrency = 4;                                // sender threads (HTTP connections)
  std::string pages = "1=60,3=30,10=10";              // pages per document: value=weight,...
  std::string recipients = "1=90,3=10";               // recipients per fax: value=weight,...
  std::string far_end = "answer=100";                 // sim behaviours (docs/sim.md): name=weight,...
  std::string doc_kind = "ps";                        // ps (generated, rendered by gs) | tiff
  std::string tiff_page = "tests/data/fax-page.tif";  // one fax page, repeated, for doc_kind tiff
  double drain_timeout_seconds = 600;                 // wait this long for terminal states at the end
  double poll_interval_seconds = 0.05;                // minimum interval between polls of one fax
  bool json = false;                                  // print the report as one JSON object
  unsigned seed = 1;
};

// Runs the load and prints the report on stdout. Exit code: 0 every submission accepted and
// every recipient terminal in time; 1 setup error; 3 rejections, errors or unfinished recipients.
int Run(const Options& options);

}  // namespace faxflow::loadgen
