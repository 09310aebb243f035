#include "workers/modem/retry_policy.h"

#include <algorithm>

#include "workers/modem/fax_session.h"

namespace faxflow::modem {

RetryPolicy RetryPolicy::FromConfig(const Config& config) {
  RetryPolicy p;
  p.busy_seconds = config.modem_retry_busy_seconds;
  p.no_answer_seconds = config.modem_retry_no_answer_seconds;
  p.other_seconds = config.modem_retry_no_answer_seconds;
  p.protocol_seconds = config.modem_retry_protocol_seconds;
  p.max_tries = static_cast<int32_t>(config.modem_retry_max_tries);
  p.max_dials = static_cast<int32_t>(config.modem_retry_max_dials);
  p.fallback_training_failures =
      static_cast<int32_t>(std::max<int64_t>(1, config.modem_fallback_training_failures));
  return p;
}

RetryPolicy RetryPolicy::WithOverrides(const v1::RetryOverrides& o) const {
  RetryPolicy p = *this;
  if (o.busy_seconds() > 0) p.busy_seconds = o.busy_seconds();
  if (o.no_answer_seconds() > 0) p.no_answer_seconds = o.no_answer_seconds();
  if (o.protocol_seconds() > 0) p.protocol_seconds = o.protocol_seconds();
  if (o.other_seconds() > 0) p.other_seconds = o.other_seconds();
  if (o.max_tries() > 0) p.max_tries = o.max_tries();
  if (o.max_dials() > 0) p.max_dials = o.max_dials();
  return p;
}

bool RetryableReason(v1::FailureReason reason) {
  switch (reason) {
    case v1::REASON_BUSY:
    case v1::REASON_NO_ANSWER:
    case v1::REASON_TRAINING_FAILED:
    case v1::REASON_DROPPED:
    case v1::REASON_PROTOCOL_ERROR:
    case v1::REASON_INTERNAL:
      return true;
    default:  // unspecified (delivered), not_a_fax, capability_mismatch, document_error
      return false;
  }
}

int64_t RetryDelayMs(const RetryPolicy& policy, v1::FailureReason reason) {
  switch (reason) {
    case v1::REASON_BUSY:
      return policy.busy_seconds * 1000;
    case v1::REASON_NO_ANSWER:
      return policy.no_answer_seconds * 1000;
    case v1::REASON_TRAINING_FAILED:
    case v1::REASON_PROTOCOL_ERROR:
      return policy.protocol_seconds * 1000;
    default:
      return policy.other_seconds * 1000;
  }
}

RetryDecision DecideRetry(const RetryPolicy& policy, const Classification& outcome, bool answered,
                          const RetryBudget& budget) {
  RetryDecision d;
  const std::string reason = v1::FailureReason_Name(outcome.reason);
  if (outcome.state == v1::STATE_DELIVERED || outcome.state == v1::STATE_CANCELLED ||
      outcome.state == v1::STATE_EXPIRED) {
    d.why = "final state";
    return d;
  }
  if (!RetryableReason(outcome.reason)) {
    d.why = reason + " is not retried";
    return d;
  }
  if (budget.dials >= policy.max_dials) {
    d.why = "max dials (" + std::to_string(policy.max_dials) + ") reached";
    return d;
  }
  if (answered && budget.tries >= policy.max_tries) {
    d.why = "max tries (" + std::to_string(policy.max_tries) + " connected calls) reached";
    return d;
  }
  d.retry = true;
  d.delay_ms = std::max<int64_t>(0, RetryDelayMs(policy, outcome.reason));
  d.why = reason + ": retry in " + std::to_string(d.delay_ms / 1000) + " s";
  return d;
}

LinePlan LinePlanForStep(int step) {
  LinePlan p;
  p.step = std::clamp(step, 0, kMaxFallbackStep);
  p.ecm = p.step < 2;
  p.modems = p.step == 0 ? kModemAll : (static_cast<int>(kModemV27ter) | static_cast<int>(kModemV29));
  return p;
}

std::string LinePlan::ToString() const {
  return std::string(step == 0 ? "v17" : "9600") + (ecm ? "+ecm" : "-ecm");
}

int FallbackStep(const RetryPolicy& policy, int32_t training_failures, int remembered_step) {
  const int per = std::max<int32_t>(1, policy.fallback_training_failures);
  return std::clamp(std::max(remembered_step, training_failures / per), 0, kMaxFallbackStep);
}

}  // namespace faxflow::modem
