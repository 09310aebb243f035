// A modem channel: runs one attempt (one call) of an outbound job on a line.
//
// For the ModemWorker, which owns N channels (one thread each). An attempt: fetch the job's
// page blobs from the BlobStore, join the pages from the start page into a temporary
// multi-page TIFF (pages::JoinPages), run the `before_dial` hook (the worker writes its dial
// ledger there), dial through the LineDriver, run the T.30 session until phase E, a hang-up or
// the watchdog (line time > call_timeout_seconds, or the wall-clock cap), and report every
// confirmed page as it happens. Returns a typed AttemptOutcome (classification included).
//
// Errors vs outcomes: a document that cannot be sent (missing/corrupt blob, invalid page) is an
// outcome (failed + document_error, not dialled; before_dial still runs so the ledger records
// the attempt); only transient failures before dialling (blob store unavailable, temp file I/O)
// or a failing before_dial hook come back as an error Status, with nothing dialled.
//
// Several documents in one call (RunCall): the pages of several jobs to one number are joined
// into one transmit TIFF, in order; the far end's page confirmations are mapped back to each
// job's page range, and each job gets its own AttemptOutcome: delivered once all of its pages
// are confirmed (even if the call breaks later, in another job's pages), otherwise classified
// from the call's completion with its own pages. A job whose document cannot be prepared ends
// document_error and is left out of the call.
//
// Normal resolution: AttemptPlan::normal_resolution sends the pages converted to 204x98
// (pages::ToNormalResolution), for far ends that refused fine resolution.
//
// Threading: one thread at a time (the channel's worker thread).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "schemas/job.pb.h"
#include "storage/blob_store.h"
#include "workers/modem/fax_call.h"
#include "workers/modem/line_driver.h"
#include "workers/modem/outcome.h"

namespace faxflow::modem {

struct ChannelOptions {
  std::string name = "sim-0";           // shown in AttemptStarted events and logs
  std::string work_dir;                 // temporary TIFFs (required)
  std::string local_ident = "faxflow";  // TSI when the job sets none
  double call_timeout_seconds = 900;    // watchdog, line time
  double wall_timeout_seconds = 0;      // wall-clock cap; 0 = call timeout + 60 s
  bool ecm = true;
  int modems = kModemAll;
};

struct AttemptPlan {
  int32_t attempt = 1;
  int32_t first_page = 1;          // 1-based; pages before it were confirmed by earlier attempts
  int ecm = -1;                    // line fallback: 0 off, 1 on, -1 the channel's setting
  int modems = 0;                  // line fallback: ModemSupport bits, 0 the channel's setting
  bool normal_resolution = false;  // send the pages converted to 204x98
};

// One job's share of a call: its pages first_page..n, after the previous documents' pages.
struct CallDocument {
  const v1::OutboundJob* job = nullptr;
  int32_t attempt = 1;     // the job's own attempt number (ledger, events)
  int32_t first_page = 1;  // 1-based page of the job the call starts at
};

struct CallHooks {
  std::function<Status()> before_dial;
  // Page `page` (1-based page of the whole fax of documents[doc]) was confirmed.
  std::function<void(size_t doc, int32_t page)> on_page_confirmed;
  std::function<bool()> should_abort;
  std::function<void(const std::string& remote_csid, int bit_rate, bool ecm)> on_connected;
};

struct AttemptOutcome {
  int32_t attempt = 0;
  int32_t first_page = 1;
  bool dialled = false;
  CallSetup setup = CallSetup::kError;
  Classification classification;
  int completion_code = -1;
  std::string completion_name;  // "T30_ERR_OK"; the setup result ("busy") when not answered
  int32_t pages_total = 0;
  int32_t pages_confirmed_call = 0;   // confirmed in this call
  int32_t pages_confirmed_total = 0;  // contiguous 1..n over all attempts
  std::string remote_csid;
  int bit_rate = 0;
  bool ecm = false;
  int64_t line_ms = 0;   // answered call
  int64_t setup_ms = 0;  // ringing/busy
  bool watchdog = false;
  bool aborted = false;  // torn down by shutdown: not an outcome of the job, resume later
  double wall_seconds = 0;
  std::optional<T38CallStats> t38;  // the call's T.38 packet statistics (same for every job in it)
};

struct AttemptHooks {
  std::function<Status()> before_dial;
  // `page`: 1-based page of the whole fax.
  std::function<void(int32_t page)> on_page_confirmed;
  std::function<bool()> should_abort;
  // T.30 phase B done and the rate negotiated (the far end is a fax machine).
  std::function<void(const std::string& remote_csid, int bit_rate, bool ecm)> on_connected;
};

class Channel {
 public:
  Channel(ChannelOptions options, LineDriver& line, BlobStore& blobs, Clock& clock);
  const std::string& name() const { return options_.name; }
  Result<AttemptOutcome> RunAttempt(const v1::OutboundJob& job, const AttemptPlan& plan,
                                    const AttemptHooks& hooks);
  // One call carrying `documents` (same number) in order; one outcome per document (same
  // order). plan.attempt is ignored (each document carries its own).
  Result<std::vector<AttemptOutcome>> RunCall(const std::vector<CallDocument>& documents,
                                              const AttemptPlan& plan, const CallHooks& hooks);

 private:
  // The single-page TIFFs of pages first_page..n; a document problem is returned as kDocumentError.
  Result<std::vector<std::string>> PreparePages(const v1::OutboundJob& job, int32_t first_page);

  ChannelOptions options_;
  LineDriver& line_;
  BlobStore& blobs_;
  Clock& clock_;
};

}  // namespace faxflow::modem
