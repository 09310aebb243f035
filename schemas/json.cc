#include "schemas/json.h"

#include <google/protobuf/util/json_util.h>

namespace faxflow {

Result<std::string> ToProtoJson(const google::protobuf::Message& message, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.preserve_proto_field_names = true;
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok())
    return Status::Permanent(Code::kInvalidArgument,
                             "cannot write " + message.GetTypeName() + " as JSON: " + std::string(status.message()));
  return out;
}

Status FromProtoJson(const std::string& json, google::protobuf::Message& message, bool ignore_unknown) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = ignore_unknown;
  auto status = google::protobuf::util::JsonStringToMessage(json, &message, options);
  if (!status.ok())
    return Status::Permanent(Code::kInvalidArgument,
                             "not a valid " + message.GetTypeName() + " JSON: " + std::string(status.message()));
  return Status::Ok();
}

}  // namespace faxflow
