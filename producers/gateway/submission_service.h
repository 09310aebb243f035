// Accepting a fax: the one path every submission takes (REST today, CLI through REST, Kafka
// ingestion later). It validates the request, makes the documents durable in the blob store,
// then produces the Submission to fax.submissions and waits for the bus to acknowledge it.
// Only then is the client told 202: an accepted fax is never lost. Validation errors are
// reported with an API error code, a message and the offending field; nothing is written.
//
// Threading: Submit is thread-safe (the producer, blob store and status store are).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "schemas/submission.pb.h"
#include "storage/blob_store.h"
#include "storage/status_store.h"
#include "topics/bus.h"

namespace faxflow {

struct SubmissionLimits {
  int64_t max_document_bytes = 50LL << 20;
  int64_t max_recipients = 100;
  int64_t max_documents = 10;
  std::string default_region = "US";
  int64_t max_pages = 200;  // checked here for TIFF and PDF (page objects); imaging enforces it exactly
};

struct UploadedDocument {
  std::string filename;
  std::string content;
  // Ingestion: a document already in the blob store. When set, `content` is ignored; the blob
  // must exist (400 unknown_blob otherwise) and its type is sniffed from the stored bytes.
  std::string blob_id = {};
  // REST content_url: where the gateway fetched `content` from (recorded on the DocumentRef).
  std::string url = {};
};

struct SubmitRequest {
  std::string tenant = "default";
  std::vector<std::string> to;
  std::vector<UploadedDocument> documents;
  v1::FaxOptions options;
  std::string source = "rest";
  // Keyed submissions (Idempotency-Key): the fax id is fixed by the caller and recipient ids are
  // derived from it, so a re-run of the same request produces the same fax.
  std::string fax_id = {};
  std::string idempotency_key = {};
  std::string api_key_id = {};
  // Broadcast covers (producers/gateway/broadcast.cc): per recipient, parallel to `to`, the blob
  // id of that recipient's own cover page (Recipient.cover_blob_id); empty = none.
  std::vector<std::string> cover_blob_ids = {};
};

// 202 on success with the submission; otherwise an HTTP status and a stable error code.
struct SubmitOutcome {
  int http_status = 202;
  std::string error_code;  // "invalid_number", "unsupported_document", "too_many_recipients", ...
  std::string message;
  std::string field;
  v1::Submission submission;
  bool ok() const { return http_status == 202; }
};

// Chooses the fax.submissions partition of a submission (no ordering key ties a new fax to a
// partition); nullopt means key hashing. The pipeline feeds it from the imaging workers' member
// table so that less loaded workers get more (topics/claims, docs/claims.md).
using PartitionChooser = std::function<std::optional<int32_t>(const v1::Submission&)>;

// Detects the document type from content; returns a MIME type or a permanent error.
using DocumentSniffer = std::function<Result<std::string>(std::string_view content)>;

class SubmissionService {
 public:
  SubmissionService(SubmissionLimits limits, bus::Producer& producer, BlobStore& blobs, StatusStore& status,
                    Clock& clock, DocumentSniffer sniffer);
  SubmitOutcome Submit(const SubmitRequest& request);
  // The limits Submit enforces (ingestion checks the document count before fetching URLs).
  const SubmissionLimits& limits() const { return limits_; }
  // Optional partition preference; set before the first Submit.
  void SetPartitionChooser(PartitionChooser chooser) { chooser_ = std::move(chooser); }

 private:
  SubmissionLimits limits_;
  bus::Producer& producer_;
  BlobStore& blobs_;
  StatusStore& status_;
  Clock& clock_;
  DocumentSniffer sniffer_;
  PartitionChooser chooser_;
};

}  // namespace faxflow
