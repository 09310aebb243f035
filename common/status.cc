#include "common/status.h"

namespace faxflow {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid_argument";
    case Code::kNotFound: return "not_found";
    case Code::kAlreadyExists: return "already_exists";
    case Code::kFailedPrecondition: return "failed_precondition";
    case Code::kUnavailable: return "unavailable";
    case Code::kTimeout: return "timeout";
    case Code::kIoError: return "io_error";
    case Code::kCorruption: return "corruption";
    case Code::kDocumentError: return "document_error";
    case Code::kFenced: return "fenced";
    case Code::kAborted: return "aborted";
    case Code::kCancelled: return "cancelled";
    case Code::kResourceExhausted: return "resource_exhausted";
    case Code::kUnauthenticated: return "unauthenticated";
    case Code::kPermissionDenied: return "permission_denied";
    case Code::kInternal: return "internal";
  }
  return "unknown";
}

std::string_view SeverityName(Severity severity) {
  switch (severity) {
    case Severity::kNone: return "none";
    case Severity::kRetryable: return "retryable";
    case Severity::kPermanent: return "permanent";
    case Severity::kFatal: return "fatal";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string out(CodeName(code_));
  out += " (";
  out += SeverityName(severity_);
  out += "): ";
  out += message_;
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  return Status(code_, severity_, std::string(context) + ": " + message_);
}

}  // namespace faxflow
