// Recipient list parsing: CSV (quoted fields, CRLF, column checks) and JSON.
#include <gtest/gtest.h>

#include "producers/gateway/broadcast.h"

namespace faxflow {
namespace {

TEST(BroadcastRecipientsTest, CsvWithQuotedFieldsAndCrlf) {
  auto r = ParseRecipients(
      "Name,To,Company\r\n\"Doe, Jane\",+15550100000,\"ACME \"\"East\"\"\"\r\nBob,+15550100001,\r\n");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].to, "+15550100000");
  ASSERT_EQ((*r)[0].fields.size(), 2u);
  EXPECT_EQ((*r)[0].fields[0].first, "Name");
  EXPECT_EQ((*r)[0].fields[0].second, "Doe, Jane");
  EXPECT_EQ((*r)[0].fields[1].second, "ACME \"East\"");
  EXPECT_EQ((*r)[1].fields[1].second, "");
}

TEST(BroadcastRecipientsTest, JsonNumbersAndObjects) {
  auto r = ParseRecipients(R"(["+15550100000", {"to": "+15550100001", "name": "Bob", "n": 3}])");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[1].to, "+15550100001");
  EXPECT_EQ((*r)[1].fields.size(), 2u);
}

TEST(BroadcastRecipientsTest, ErrorsNameTheProblem) {
  EXPECT_NE(ParseRecipients("name\nBob\n").status().message().find("'to'"), std::string::npos);
  EXPECT_NE(ParseRecipients("to,name\n+15550100000\n").status().message().find("line 2"), std::string::npos);
  EXPECT_FALSE(ParseRecipients("").ok());
  EXPECT_FALSE(ParseRecipients("[1, 2]").ok());
  EXPECT_FALSE(ParseRecipients("[{\"name\": \"x\"}]").ok());
}

}  // namespace
}  // namespace faxflow
