// Broadcasts (docs/broadcast.md): one document set to up to broadcast.max_recipients numbers,
// rendered ONCE.
//
// Design (a 100,000-recipient list does not fit in one 1 MB bus message):
//   1. POST /v1/broadcasts validates every number, stores the recipient list (numbers and
//      per-recipient fields) as ONE blob in the blob store and the broadcast record in the
//      broadcast store (RocksDB, <data_dir>/broadcasts), then submits chunk 0 (the first
//      `chunk_size` recipients) as an ordinary fax through SubmissionService: that is the only
//      fax the imaging worker renders.
//   2. The driver thread watches the status store until chunk 0 is rendered (page blob ids) and
//      then fans out the other recipients in chunks of `chunk_size`: each chunk is a fax of its
//      own (fax id + recipient ids persisted first, status record written, then one OutboundJob
//      per recipient produced to fax.jobs with the rendered pages, `batch_size` jobs per
//      ProduceBatch), and the fan-out cursor is stored after every batch. A crash re-produces at
//      most one batch with the same job ids, which the modem's dial ledger suppresses.
//   3. Progress (GET /v1/broadcasts/{id}) and the results CSV are read from the status store,
//      one record per chunk fax, so they cost O(chunks) reads. A render failure fails every
//      recipient with document_error.
//   With a cover (options.cover): every recipient gets its own cover page (shared fields merged
//   with the recipient's columns, RecipientCover), stored as PostScript in the blob store
//   (content-addressed: identical covers are one blob). Chunk 0 carries the covers
//   (Recipient.cover_blob_id) with the documents; chunks 1..k are produced to fax.submissions
//   with their covers and append_page_blob_ids = chunk 0's document pages, so imaging renders
//   only the covers and the documents stay rendered once. queued_ms is then set when every
//   chunk is rendered (its jobs are on fax.jobs).
//
// Lifecycle: construct, Start() (resumes unfinished broadcasts, starts the driver), Stop().
// Threading: Create/Progress/Results are thread-safe; the driver is one background thread.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/heartbeat.h"
#include "common/status.h"
#include "producers/gateway/submission_service.h"
#include "storage/blob_store.h"
#include "storage/status_store.h"
#include "topics/bus.h"

namespace rocksdb {
class DB;
}
namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace faxflow {

struct BroadcastRecipient {
  std::string to;                                           // as given; E.164 after validation
  std::vector<std::pair<std::string, std::string>> fields;  // per-recipient columns (name, ...)
};

struct BroadcastRequest {
  std::string tenant = "default";
  std::vector<UploadedDocument> documents;
  std::vector<BroadcastRecipient> recipients;
  v1::FaxOptions options;
};

struct BroadcastOptions {
  int64_t max_recipients = 100'000;
  int chunk_size = 100;   // recipients per fax (status record size stays small)
  int batch_size = 1000;  // jobs per ProduceBatch
  std::string default_region = "US";
  std::chrono::milliseconds poll_interval{100};
};

// Counts by state and where the broadcast is.
struct BroadcastProgress {
  std::string id;
  std::string tenant;
  std::string state;  // rendering | fanning_out | sending | done | failed
  int64_t recipients = 0;
  std::map<std::string, int64_t> counts;  // by recipient state name
  int64_t terminal = 0;
  int64_t created_ms = 0;
  int64_t queued_ms = 0;  // all jobs queued (0: not yet)
  int64_t done_ms = 0;
  std::string template_fax_id;
  std::string error;
};

// The cover page of one recipient: `shared` (the broadcast's template and fields) with the
// recipient's own columns on top. Column names are matched case-insensitively: cover field
// names (to_name, to_company, from_name, ...) and the aliases `name` -> to_name, `company` ->
// to_company; empty values and other columns are ignored.
v1::CoverPage RecipientCover(const v1::CoverPage& shared, const BroadcastRecipient& recipient);

// Parses a recipient list: CSV with a header row (a `to`, `number` or `fax` column, other
// columns are fields) or a JSON array of numbers / objects {"to": ..., other fields}.
Result<std::vector<BroadcastRecipient>> ParseRecipients(std::string_view content);

class BroadcastService {
 public:
  // `progress` (optional) is told about progress milestones (webhook broadcast.progress).
  using ProgressSink = std::function<void(const BroadcastProgress&)>;

  BroadcastService(BroadcastOptions options, SubmissionService& submissions, bus::Producer& producer,
                   BlobStore& blobs, StatusStore& status, prometheus::Registry& registry, Clock& clock);
  ~BroadcastService();
  BroadcastService(const BroadcastService&) = delete;
  BroadcastService& operator=(const BroadcastService&) = delete;

  // Opens <path> (the broadcast store).
  Status Open(const std::string& path);
  Status Start();
  void Stop();
  void SetProgressSink(ProgressSink sink) { sink_ = std::move(sink); }

  // 202 on success (outcome.submission is chunk 0); API error otherwise.
  struct CreateOutcome {
    int http_status = 202;
    std::string error_code;
    std::string message;
    std::string field;
    std::string id;
    std::string template_fax_id;
    int64_t recipients = 0;
    bool ok() const { return http_status == 202; }
  };
  CreateOutcome Create(const BroadcastRequest& request);

  // nullopt: unknown id, or another tenant's broadcast.
  Result<std::optional<BroadcastProgress>> Progress(const std::string& tenant, const std::string& id);
  // The per-recipient results as CSV (header + one row per recipient, in list order).
  Result<std::optional<std::string>> ResultsCsv(const std::string& tenant, const std::string& id);

  // Runs one driver round (tests): fans out rendered broadcasts, refreshes progress.
  Status DriveOnce();

  // Liveness of this component's loop ("broadcasts", common/heartbeat.h); call before Start().
  // Null (the default): none. Must outlive the loop.
  void SetHeartbeats(Heartbeats* heartbeats) { heartbeats_ = heartbeats; }

  // Several gateway nodes (broadcast_replica.h): every write of the broadcast store is first
  // handed to `mirror` (store key, value); the driver drives only broadcasts of tenants that
  // `drives` accepts (this node owns them). Call before Start().
  using Mirror = std::function<Status(const std::string& key, const std::string& value)>;
  void SetReplication(Mirror mirror, std::function<bool(const std::string& tenant)> drives) {
    mirror_ = std::move(mirror);
    drives_ = std::move(drives);
  }
  // Writes a record read back from fax.broadcasts: "c/<id>/<n>" unless present, "b/<id>" unless
  // the local copy is further along (its own echo never moves the cursor back).
  Status ApplyReplicated(const std::string& key, const std::string& value);

 private:
  Heartbeats* heartbeats_ = nullptr;
  Mirror mirror_;
  std::function<bool(const std::string& tenant)> drives_;
  Status Put(const std::string& key, const std::string& value);  // mirror_, then the store
  struct Record;
  Result<std::optional<Record>> Load(const std::string& id);
  Status Save(const Record& record);
  Status FanOut(Record& record, const v1::FaxStatus& rendered);
  // Cover broadcasts: the cover blob ids (PostScript, stored) of recipients [begin, end).
  Result<std::vector<std::string>> StoreCovers(const Record& record,
                                               const std::vector<BroadcastRecipient>& recipients,
                                               int64_t begin, int64_t end);
  // Cover broadcasts: true once every fanned-out chunk is rendered (advances rendered_chunks).
  Result<bool> ChunksRendered(Record& record);
  Result<BroadcastProgress> Compute(const Record& record);
  Result<std::vector<BroadcastRecipient>> LoadRecipients(const Record& record);
  void Run();

  BroadcastOptions options_;
  SubmissionService& submissions_;
  bus::Producer& producer_;
  BlobStore& blobs_;
  StatusStore& status_;
  Clock& clock_;
  prometheus::Counter& created_;
  prometheus::Counter& jobs_;
  prometheus::Histogram& fanout_seconds_;
  ProgressSink sink_;
  std::unique_ptr<rocksdb::DB> db_;
  std::mutex mu_;                          // serialises driver rounds and record writes
  std::map<std::string, int> milestones_;  // broadcast id -> last reported tenth
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Registers POST /v1/broadcasts, GET /v1/broadcasts/{id}, GET /v1/broadcasts/{id}/results.csv.
using BroadcastTenantOf =
    std::function<std::optional<std::string>(const httplib::Request&, httplib::Response&)>;
void RegisterBroadcastRoutes(httplib::Server& server, BroadcastService& service, BroadcastTenantOf tenant_of);

}  // namespace faxflow
