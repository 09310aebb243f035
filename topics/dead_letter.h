// The dead-letter record every stage writes for input it cannot decode or validate: the original
// key, value and headers, plus the reason (faxflow-dlq-reason) and where it came from
// (faxflow-dlq-origin = "<topic>/<partition>/<offset>"). One builder, so every stage's dead
// letters look the same and can be replayed the same way. Stages produce it themselves (plainly,
// or inside their transaction) and must not commit the bad record before the dead letter is
// acknowledged.
#pragma once

#include <string_view>

#include "topics/bus.h"

namespace faxflow::bus {

Message DeadLetterMessage(const Record& record, std::string_view reason,
                          std::string_view dead_letter_topic = topic::kDeadLetter);

}  // namespace faxflow::bus
