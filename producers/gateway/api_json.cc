#include "producers/gateway/api_json.h"

#include "storage/status_store.h"

namespace faxflow {

std::string AggregateState(const v1::FaxStatus& status) {
  if (status.recipients().empty()) return "queued";
  bool all_terminal = true, all_queued = true, any_ok = false, all_delivered = true, all_cancelled = true;
  for (const auto& r : status.recipients()) {
    all_terminal &= IsTerminal(r.state());
    all_queued &= r.state() == v1::STATE_QUEUED;
    any_ok |= r.state() == v1::STATE_DELIVERED || r.state() == v1::STATE_PARTIAL;
    all_delivered &= r.state() == v1::STATE_DELIVERED;
    all_cancelled &= r.state() == v1::STATE_CANCELLED;
  }
  if (!all_terminal) return all_queued ? "queued" : "in_progress";
  if (all_delivered) return "delivered";
  if (all_cancelled) return "cancelled";
  return any_ok ? "partial" : "failed";
}

nlohmann::json FaxStatusJson(const v1::FaxStatus& status) {
  nlohmann::json j;
  j["id"] = status.fax_id();
  j["state"] = AggregateState(status);
  bool done = !status.recipients().empty();
  for (const auto& r : status.recipients()) done &= IsTerminal(r.state());
  j["done"] = done;
  j["submitted_at_ms"] = status.submitted_at_ms();
  j["pages"] = status.page_count();
  if (!status.error().empty()) j["error"] = status.error();
  j["tags"] = nlohmann::json::array();
  for (const auto& t : status.tags()) j["tags"].push_back(t);
  j["recipients"] = nlohmann::json::array();
  for (const auto& r : status.recipients()) {
    nlohmann::json rj;
    rj["id"] = r.recipient_id();
    rj["to"] = r.number();
    rj["state"] = StateName(r.state());
    rj["reason"] = ReasonName(r.reason());
    rj["pages_sent"] = r.pages_sent();
    rj["pages_total"] = r.pages_total();
    rj["attempts"] = r.attempts();
    if (!r.completion_name().empty()) rj["completion"] = r.completion_name();
    if (!r.remote_csid().empty()) rj["remote_csid"] = r.remote_csid();
    if (r.bit_rate() > 0) rj["bit_rate"] = r.bit_rate();
    if (!r.detail().empty()) rj["detail"] = r.detail();
    rj["updated_at_ms"] = r.updated_at_ms();
    j["recipients"].push_back(std::move(rj));
  }
  return j;
}

nlohmann::json AcceptedJson(const v1::Submission& submission) {
  nlohmann::json j;
  j["id"] = submission.fax_id();
  j["state"] = "queued";
  j["recipients"] = nlohmann::json::array();
  for (const auto& r : submission.recipients()) j["recipients"].push_back({{"id", r.recipient_id()}, {"to", r.number()}});
  return j;
}

nlohmann::json ErrorJson(const std::string& code, const std::string& message, const std::string& field) {
  nlohmann::json e{{"code", code}, {"message", message}};
  if (!field.empty()) e["field"] = field;
  return nlohmann::json{{"error", e}};
}

}  // namespace faxflow
