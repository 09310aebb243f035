// A bus record carrying a Protobuf message, as every producer of a catalogue topic writes it:
// the serialized message as the value and its full name (e.g. "faxflow.v1.Submission") in the
// faxflow-schema header, which consumers check before they parse.
#pragma once

#include <google/protobuf/message.h>

#include <string>
#include <string_view>

#include "topics/bus.h"

namespace faxflow::bus {

Message ProtoMessage(std::string_view topic, std::string key, const google::protobuf::Message& proto);

}  // namespace faxflow::bus
