// Decoding one fax.ingest record (JSON or Protobuf, see docs/ingest.md) into an IngestRequest.
// Pure logic: no I/O. Every error is permanent (the record itself is wrong) and its message is
// the readable reason written to the dead-letter topic ("options.priority: expected an integer,
// got string").
//
// Format rule: the `faxflow-schema` header decides ("faxflow.v1.Submission" = Protobuf,
// "faxflow.v1.IngestJson" = JSON); else a `content-type` header containing "json" or "protobuf";
// else the first non-whitespace byte: '{' means JSON, anything else is tried as Protobuf.
//
// Threading: free functions, thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "schemas/submission.pb.h"
#include "topics/bus.h"

namespace faxflow::ingest {

inline constexpr std::string_view kJsonSchema = "faxflow.v1.IngestJson";
inline constexpr std::string_view kProtobufSchema = "faxflow.v1.Submission";

struct IngestDocument {
  enum class Kind { kBlob, kUrl, kContent };
  Kind kind = Kind::kBlob;
  std::string blob_id;   // kBlob
  std::string url;       // kUrl
  std::string content;   // kContent (decoded base64)
  std::string filename;  // optional
};

struct IngestRequest {
  std::string format;      // "json" or "protobuf"
  std::string client_ref;  // JSON "id" (optional)
  std::string tenant = "default";
  std::vector<std::string> to;
  std::vector<IngestDocument> documents;
  v1::FaxOptions options;
};

// Decodes and type-checks the record value. Limits on counts, numbers and options are NOT
// checked here: the SubmissionService applies the same rules as the REST API.
Result<IngestRequest> DecodeIngestRecord(const bus::Record& record);

// Strict RFC 4648 base64 (standard alphabet, '=' padding optional, CR/LF ignored).
Result<std::string> DecodeBase64(std::string_view text);

}  // namespace faxflow::ingest
