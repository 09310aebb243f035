// bus::ProtoMessage: the value parses back into the message and the schema header names it.
#include "topics/proto_message.h"

#include <gtest/gtest.h>

#include "schemas/load.pb.h"
#include "topics/catalogue.h"

namespace faxflow::bus {
namespace {

TEST(ProtoMessageTest, SerializesTheMessageAndNamesItsSchema) {
  v1::WorkerLoad load;
  load.set_lag(42);
  const Message m = ProtoMessage(topic::kMembers, "worker-1", load);
  EXPECT_EQ(m.topic, topic::kMembers);
  EXPECT_EQ(m.key, "worker-1");
  EXPECT_FALSE(m.partition.has_value());
  ASSERT_EQ(m.headers.size(), 1u);
  EXPECT_EQ(m.headers[0].key, header::kSchema);
  EXPECT_EQ(m.headers[0].value, "faxflow.v1.WorkerLoad");
  v1::WorkerLoad back;
  ASSERT_TRUE(back.ParseFromString(m.value));
  EXPECT_EQ(back.lag(), 42);
}

}  // namespace
}  // namespace faxflow::bus
