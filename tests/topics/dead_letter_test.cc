#include <gtest/gtest.h>

#include "topics/dead_letter.h"

namespace faxflow::bus {
namespace {

TEST(DeadLetterTest, KeepsTheOriginalAndAddsReasonAndOrigin) {
  Record r;
  r.topic = "fax.jobs";
  r.partition = 7;
  r.offset = 42;
  r.key = "+15550100000";
  r.value = std::string("\x00\xff garbage", 10);
  r.headers = {{"faxflow-schema", "faxflow.v1.OutboundJob"}, {"trace", "abc"}};
  Message m = DeadLetterMessage(r, "undecodable OutboundJob");
  EXPECT_EQ(m.topic, topic::kDeadLetter);
  EXPECT_EQ(m.key, r.key);
  EXPECT_EQ(m.value, r.value);
  EXPECT_FALSE(m.partition.has_value());
  ASSERT_EQ(m.headers.size(), 4u);
  EXPECT_EQ(m.headers[0], r.headers[0]);
  EXPECT_EQ(m.headers[1], r.headers[1]);
  EXPECT_EQ(m.headers[2], (Header{std::string(header::kReason), "undecodable OutboundJob"}));
  EXPECT_EQ(m.headers[3], (Header{std::string(header::kOrigin), "fax.jobs/7/42"}));
  EXPECT_EQ(DeadLetterMessage(r, "x", "other.dlq").topic, "other.dlq");
}

}  // namespace
}  // namespace faxflow::bus
