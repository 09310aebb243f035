#include "topics/kafka/consumer_stats.h"

#include <nlohmann/json.hpp>

namespace faxflow::bus {
namespace {

int64_t IntField(const nlohmann::json& o, const char* key, int64_t otherwise) {
  auto it = o.find(key);
  if (it == o.end() || !it->is_number_integer()) return otherwise;
  return it->get<int64_t>();
}

}  // namespace

Result<std::vector<PartitionLag>> ParseConsumerLag(std::string_view stats_json) {
  auto doc = nlohmann::json::parse(stats_json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object())
    return Status::Permanent(Code::kInvalidArgument, "librdkafka statistics: not a JSON object");
  std::vector<PartitionLag> out;
  auto topics = doc.find("topics");
  if (topics == doc.end()) return out;  // no topic known to this client yet
  if (!topics->is_object())
    return Status::Permanent(Code::kInvalidArgument, "librdkafka statistics: \"topics\" is not an object");
  for (const auto& [name, topic] : topics->items()) {
    if (!topic.is_object()) continue;
    auto partitions = topic.find("partitions");
    if (partitions == topic.end() || !partitions->is_object()) continue;
    const std::string topic_name = topic.value("topic", name);
    for (const auto& [key, p] : partitions->items()) {
      if (!p.is_object()) continue;
      const int64_t partition = IntField(p, "partition", -1);
      if (partition < 0) continue;  // -1: the unassigned (UA) partition of librdkafka
      const int64_t lag = IntField(p, "consumer_lag", -1);
      if (lag < 0) continue;  // no committed offset or no watermark yet
      PartitionLag pl;
      pl.topic = topic_name;
      pl.partition = static_cast<int32_t>(partition);
      pl.consumer_lag = lag;
      pl.consumer_lag_stored = IntField(p, "consumer_lag_stored", -1);
      pl.committed_offset = IntField(p, "committed_offset", -1);
      pl.hi_offset = IntField(p, "hi_offset", -1);
      pl.ls_offset = IntField(p, "ls_offset", -1);
      out.push_back(std::move(pl));
    }
  }
  return out;
}

void ConsumerLagBoard::Update(uint64_t consumer, const std::string& group,
                              const std::vector<PartitionLag>& lags,
                              const std::set<TopicPartition>& assigned) {
  Report r;
  r.group = group;
  for (const auto& l : lags)
    if (assigned.count(TopicPartition{l.topic, l.partition}) > 0) r.lags.push_back(l);
  std::lock_guard lock(mu_);
  reports_[consumer] = std::move(r);
}

void ConsumerLagBoard::Forget(uint64_t consumer) {
  std::lock_guard lock(mu_);
  reports_.erase(consumer);
}

std::optional<int64_t> ConsumerLagBoard::Lag(const std::string& topic, const std::string& group) const {
  std::lock_guard lock(mu_);
  std::optional<int64_t> sum;
  for (const auto& [id, r] : reports_) {
    if (r.group != group) continue;
    for (const auto& l : r.lags)
      if (l.topic == topic) sum = sum.value_or(0) + l.consumer_lag;
  }
  return sum;
}

}  // namespace faxflow::bus
