// The JSON mapping of every faxflow message, through Protobuf's JSON utilities (proto3 JSON:
// lowerCamelCase field names, enum value names, int64 as strings). Used for debugging tools,
// dead-letter inspection and any consumer that prefers JSON to Protobuf on a topic. The REST API
// and the ingest format are documented JSON shapes of their own (docs/api.md, docs/ingest.md).
#pragma once

#include <string>

#include <google/protobuf/message.h>

#include "common/status.h"

namespace faxflow {

// Serialises `message` as proto3 JSON.
Result<std::string> ToProtoJson(const google::protobuf::Message& message, bool pretty = false);

// Parses proto3 JSON into `message`. Unknown fields are an error unless `ignore_unknown`.
Status FromProtoJson(const std::string& json, google::protobuf::Message& message, bool ignore_unknown = false);

}  // namespace faxflow
