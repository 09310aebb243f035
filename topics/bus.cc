#include "topics/bus.h"

namespace faxflow::bus {

Result<std::vector<TopicPartition>> AllPartitions(Bus& bus, const std::string& topic) {
  FF_ASSIGN_OR_RETURN(int32_t n, bus.PartitionCount(topic));
  std::vector<TopicPartition> out;
  for (int32_t p = 0; p < n; ++p) out.push_back({topic, p});
  return out;
}

}  // namespace faxflow::bus
