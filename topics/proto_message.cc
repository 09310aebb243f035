#include "topics/proto_message.h"

#include "topics/catalogue.h"

namespace faxflow::bus {

Message ProtoMessage(std::string_view topic, std::string key, const google::protobuf::Message& proto) {
  Message m;
  m.topic = std::string(topic);
  m.key = std::move(key);
  m.value = proto.SerializeAsString();
  m.headers.push_back({std::string(header::kSchema), proto.GetDescriptor()->full_name()});
  return m;
}

}  // namespace faxflow::bus
