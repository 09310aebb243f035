#include "topics/dead_letter.h"

namespace faxflow::bus {

Message DeadLetterMessage(const Record& record, std::string_view reason, std::string_view dead_letter_topic) {
  Message m;
  m.topic = std::string(dead_letter_topic);
  m.key = record.key;
  m.value = record.value;
  m.headers = record.headers;
  m.headers.push_back({std::string(header::kReason), std::string(reason)});
  m.headers.push_back({std::string(header::kOrigin),
                       record.topic + "/" + std::to_string(record.partition) + "/" + std::to_string(record.offset)});
  return m;
}

}  // namespace faxflow::bus
