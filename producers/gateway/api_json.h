// JSON shapes of the REST API (documented in docs/api.md). Field and state names are stable
// API values: lower-case, never the Protobuf enum names.
#pragma once

#include <nlohmann/json.hpp>

#include "schemas/status.pb.h"
#include "schemas/submission.pb.h"

namespace faxflow {

// {"id", "state", "done", "submitted_at_ms", "pages", "error", "tags", "recipients": [...]}
nlohmann::json FaxStatusJson(const v1::FaxStatus& status);

// The 202 body: {"id", "state": "queued", "recipients": [{"id", "to"}]}
nlohmann::json AcceptedJson(const v1::Submission& submission);

// {"error": {"code", "message", "field"?}}
nlohmann::json ErrorJson(const std::string& code, const std::string& message, const std::string& field = "");

// The fax-level state summarising the recipients: "queued", "in_progress", "delivered",
// "partial" (some recipients or pages failed), "failed" (none delivered), "cancelled".
std::string AggregateState(const v1::FaxStatus& status);

}  // namespace faxflow
