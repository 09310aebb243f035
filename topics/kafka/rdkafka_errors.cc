#include <string>

#include "topics/kafka/rdkafka_handles.h"

namespace faxflow::bus::kafka_internal {
namespace {

std::string Describe(rd_kafka_resp_err_t err, std::string_view what, std::string_view detail) {
  std::string out(what);
  out += ": ";
  if (!detail.empty()) {
    out += detail;
  } else {
    out += rd_kafka_err2str(err);
  }
  out += " (";
  out += rd_kafka_err2name(err);
  out += ")";
  return out;
}

}  // namespace

bool IsFencedErr(rd_kafka_resp_err_t err) {
  return err == RD_KAFKA_RESP_ERR__FENCED || err == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
         err == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

Status StatusFromErr(rd_kafka_resp_err_t err, std::string_view what, std::string_view detail) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::Ok();
  const std::string msg = Describe(err, what, detail);
  if (IsFencedErr(err)) return Status::Fatal(Code::kFenced, msg);
  switch (err) {
    case RD_KAFKA_RESP_ERR__FATAL:
      return Status::Fatal(Code::kInternal, msg);

    // Connectivity: the broker is down, restarting or unreachable.
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
    case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS:
    case RD_KAFKA_RESP_ERR_UNSTABLE_OFFSET_COMMIT:
    case RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_FETCH_SESSION_ID_NOT_FOUND:
    case RD_KAFKA_RESP_ERR_INVALID_FETCH_SESSION_EPOCH:
    case RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR__RETRY:
    case RD_KAFKA_RESP_ERR__IN_PROGRESS:
    case RD_KAFKA_RESP_ERR__PREV_IN_PROGRESS:
      return Status::Retryable(Code::kUnavailable, msg);

    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
      return Status::Retryable(Code::kTimeout, msg);

    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR__UNKNOWN_GROUP:
      return Status::Permanent(Code::kNotFound, msg);

    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
      return Status::Permanent(Code::kResourceExhausted, msg);

    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
      return Status::Permanent(Code::kPermissionDenied, msg);

    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR__SSL:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
      return Status::Permanent(Code::kUnauthenticated, msg);

    case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
      return Status::Permanent(Code::kAlreadyExists, msg);

    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
    case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
      return Status::Permanent(Code::kInvalidArgument, msg);

    case RD_KAFKA_RESP_ERR__STATE:
    case RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID:
    case RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION:
      return Status::Permanent(Code::kFailedPrecondition, msg);

    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    case RD_KAFKA_RESP_ERR__DESTROY:
      return Status::Permanent(Code::kCancelled, msg);

    default:
      return Status::Permanent(Code::kInternal, msg);
  }
}

Status StatusFromError(const rd_kafka_error_t* error, std::string_view what) {
  if (error == nullptr) return Status::Ok();
  const rd_kafka_resp_err_t err = rd_kafka_error_code(error);
  std::string msg(what);
  msg += ": ";
  msg += rd_kafka_error_string(error);
  msg += " (";
  msg += rd_kafka_error_name(error);
  msg += ")";
  if (rd_kafka_error_is_fatal(error)) {
    return Status::Fatal(IsFencedErr(err) ? Code::kFenced : Code::kInternal, msg);
  }
  if (rd_kafka_error_txn_requires_abort(error)) return Status::Retryable(Code::kAborted, msg);
  if (rd_kafka_error_is_retriable(error)) {
    return Status::Retryable(err == RD_KAFKA_RESP_ERR__TIMED_OUT ? Code::kTimeout : Code::kUnavailable, msg);
  }
  // Not flagged (most non-transactional calls never set the flags): classify by code.
  return StatusFromErr(err, what, rd_kafka_error_string(error));
}

}  // namespace faxflow::bus::kafka_internal
