// Enterprise ingestion: external systems produce submissions straight onto fax.ingest (JSON or
// Protobuf, documents by blob id, URL or inline base64; format in docs/ingest.md). The worker
// consumes fax.ingest (group faxflow-ingest), decodes and type-checks each record, fetches URL
// documents through the SSRF-guarded UrlFetcher, and hands the result to the SubmissionService,
// the same acceptance path (limits, number and option rules, blob durability, produce to
// fax.submissions) as POST /v1/faxes, with source "ingest". A record that is invalid goes to
// fax.dlq with its original bytes and headers plus faxflow-dlq-reason / faxflow-dlq-origin; the
// stream never stops on a bad record.
//
// Delivery: at-least-once. The offset of a record is committed only after its Submission (or its
// dead-letter record) is durable on the bus, one commit per record. A crash between the produce
// and the commit re-ingests the record and creates a second fax (see docs/ingest.md).
// Transient failures: a URL fetch that fails transiently is retried `fetch_retries` times with
// exponential backoff, then dead-lettered ("url unreachable: ..."); a bus or blob store outage
// (503 from the service, DLQ produce failure) is not the record's fault: the record is not
// committed, the partition is rewound and retried after a backoff, forever.
//
// Lifecycle: Start() assigns the partitions and spawns one thread; Stop() (also the destructor)
// interrupts backoffs, lets the current record finish and joins. Threading: the bus, service,
// blob store and fetcher are shared and thread-safe; the consumer is owned by the worker thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/registry.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/heartbeat.h"
#include "common/status.h"
#include "producers/gateway/submission_service.h"
#include "producers/ingest/ingest_record.h"
#include "producers/ingest/metrics.h"
#include "producers/ingest/url_fetcher.h"
#include "storage/blob_store.h"
#include "topics/bus.h"

namespace faxflow::ingest {

// The fax id of an ingest record that carries the client's `id`: "fax_" + 20 hex characters of
// SHA-256 over (tenant, id). Stable, so re-handled records and re-sent ids map to one fax.
std::string IngestFaxId(std::string_view tenant, std::string_view client_ref);

struct IngestOptions {
  std::string topic = "fax.ingest";
  std::string group = "faxflow-ingest";
  std::vector<int32_t> partitions;  // empty: every partition of the topic
  std::string instance = "0";       // client id suffix
  int64_t max_record_bytes = 16LL << 20;
  int fetch_retries = 3;
  std::chrono::milliseconds fetch_backoff{1000};   // doubled per retry
  std::chrono::milliseconds outage_backoff{1000};  // bus/store unavailable: wait before retrying the record
  std::chrono::milliseconds poll_timeout{200};

  // ingest.max_record_bytes, ingest.fetch_retries.
  static IngestOptions FromConfig(const Config& config);
};

// UrlFetcherOptions from ingest.max_url_bytes, ingest.url_timeout_seconds, ingest.allow_private_urls.
UrlFetcherOptions UrlFetcherOptionsFromConfig(const Config& config);
// Splits net.allowed_private_networks ("a/n, b/m") into CIDR strings.
std::vector<std::string> SplitNetworks(const std::string& list);

class IngestWorker {
 public:
  IngestWorker(IngestOptions options, bus::Bus& bus, SubmissionService& submissions, BlobStore& blobs,
               UrlFetcher& fetcher, prometheus::Registry& registry, Clock& clock);
  ~IngestWorker();
  IngestWorker(const IngestWorker&) = delete;
  IngestWorker& operator=(const IngestWorker&) = delete;

  Status Start();
  void Stop();

  // Handles one record: OK once it is accepted (produced to fax.submissions) or dead-lettered;
  // a retryable error when neither could be done now (bus or store outage, or stopping). Exposed
  // for tests; needs Start() (for the DLQ producer) or is called from the worker thread.
  Status Handle(const bus::Record& record);

  // Liveness of this component's loop ("ingest", common/heartbeat.h); call before Start().
  // Null (the default): none. Must outlive the loop.
  void SetHeartbeats(Heartbeats* heartbeats) { heartbeats_ = heartbeats; }

 private:
  Heartbeats* heartbeats_ = nullptr;
  void Run();
  Status DeadLetterRecord(const bus::Record& record, const std::string& reason);
  // Fetches with bounded retries. Errors: kCancelled when stopping (do not dead-letter); any other
  // error (permanent, or transient after the retries) is the dead-letter reason.
  Result<FetchedDocument> FetchWithRetries(const std::string& url);
  // Sleeps on the injected clock in slices; false if Stop() was called meanwhile.
  bool Backoff(std::chrono::milliseconds delay);

  IngestOptions options_;
  bus::Bus& bus_;
  SubmissionService& submissions_;
  BlobStore& blobs_;
  UrlFetcher& fetcher_;
  Clock& clock_;
  IngestMetrics metrics_;
  std::unique_ptr<bus::Consumer> consumer_;
  std::unique_ptr<bus::Producer> dlq_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace faxflow::ingest
