// faxflow's one error vocabulary.
//
// Every fallible call returns a `Status` or a `Result<T>`. A non-OK status carries a `Code`
// (what went wrong) and a `Severity` that tells the caller what to do about it:
//   - kRetryable: a transient condition (broker unavailable, busy line, timeout); try again later.
//   - kPermanent: the input or request is wrong (corrupt document, invalid number); retrying the
//     same thing gives the same answer. Report it to the user with the message.
//   - kFatal: this process can no longer make progress safely (fenced producer, corrupt store);
//     stop the component and let a supervisor restart it.
// Both types are [[nodiscard]]: an ignored error is a compile error under -Werror. To drop one on
// purpose, call `.IgnoreError()` and say why in a comment.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace faxflow {

enum class Code {
  kOk = 0,
  kInvalidArgument,   // bad request or malformed input
  kNotFound,
  kAlreadyExists,
  kFailedPrecondition,
  kUnavailable,       // dependency not reachable right now
  kTimeout,
  kIoError,
  kCorruption,        // stored data does not decode
  kDocumentError,     // a document cannot be rendered (corrupt, hostile, unsupported)
  kFenced,            // a newer owner took over (transactional id, claim epoch)
  kAborted,           // a transaction was aborted
  kCancelled,
  kResourceExhausted, // limits (size, pages, rate)
  kUnauthenticated,
  kPermissionDenied,
  kInternal,
};

enum class Severity { kNone = 0, kRetryable, kPermanent, kFatal };

std::string_view CodeName(Code code);
std::string_view SeverityName(Severity severity);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(Code code, Severity severity, std::string message)
      : code_(code), severity_(code == Code::kOk ? Severity::kNone : severity),
        message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status Retryable(Code code, std::string message) {
    return Status(code, Severity::kRetryable, std::move(message));
  }
  static Status Permanent(Code code, std::string message) {
    return Status(code, Severity::kPermanent, std::move(message));
  }
  static Status Fatal(Code code, std::string message) {
    return Status(code, Severity::kFatal, std::move(message));
  }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  Severity severity() const { return severity_; }
  bool retryable() const { return severity_ == Severity::kRetryable; }
  bool permanent() const { return severity_ == Severity::kPermanent; }
  bool fatal() const { return severity_ == Severity::kFatal; }
  const std::string& message() const { return message_; }

  // "invalid_argument (permanent): recipient 12 is not a valid number"
  std::string ToString() const;

  // Prefixes the message with context, keeping code and severity.
  Status WithContext(std::string_view context) const;

  // Explicitly discards the status. Use only where losing the error is harmless.
  void IgnoreError() const {}

 private:
  Code code_ = Code::kOk;
  Severity severity_ = Severity::kNone;
  std::string message_;
};

// Result<T>: a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT: implicit by design
    assert(!std::get<Status>(v_).ok() && "Result constructed from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T value_or(T fallback) const { return ok() ? std::get<T>(v_) : std::move(fallback); }
  void IgnoreError() const {}

 private:
  std::variant<T, Status> v_;
};

}  // namespace faxflow

#define FF_CONCAT_INNER(a, b) a##b
#define FF_CONCAT(a, b) FF_CONCAT_INNER(a, b)

// Returns the status from the enclosing function if it is not OK.
#define FF_RETURN_IF_ERROR(expr)                 \
  do {                                           \
    ::faxflow::Status ff_status_ = (expr);       \
    if (!ff_status_.ok()) return ff_status_;     \
  } while (0)

// `FF_ASSIGN_OR_RETURN(auto x, Compute());` binds the value or returns the error.
#define FF_ASSIGN_OR_RETURN(lhs, expr) FF_ASSIGN_OR_RETURN_IMPL(FF_CONCAT(ff_result_, __LINE__), lhs, expr)
#define FF_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()
