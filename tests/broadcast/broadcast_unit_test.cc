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

// Cover fields of a recipient: shared fields, then the recipient's columns on top (cover field
// names and the aliases name/company, case-insensitive); other columns and empty values ignored.
TEST(BroadcastRecipientsTest, RecipientCoverMergesColumnsOverSharedFields) {
  v1::CoverPage shared;
  shared.set_template_("confidential");
  (*shared.mutable_fields())["from_name"] = "Acme";
  (*shared.mutable_fields())["to_company"] = "Default Co";
  (*shared.mutable_fields())["subject"] = "Invoice";
  BroadcastRecipient r{
      "+15550100000",
      {{"Name", "Jane Doe"}, {"account", "A-1"}, {"Subject", "Your invoice"}, {"company", ""}}};
  const v1::CoverPage c = RecipientCover(shared, r);
  EXPECT_EQ(c.template_(), "confidential");
  EXPECT_EQ(c.fields().at("to_name"), "Jane Doe");
  EXPECT_EQ(c.fields().at("subject"), "Your invoice");
  EXPECT_EQ(c.fields().at("from_name"), "Acme");
  EXPECT_EQ(c.fields().at("to_company"), "Default Co");  // empty column: the shared value stays
  EXPECT_EQ(c.fields().count("account"), 0u);
  EXPECT_EQ(c.fields().size(), 4u);
  BroadcastRecipient other{"+15550100001", {{"to_company", "Initech"}, {"TO_NAME", "Bob"}}};
  const v1::CoverPage d = RecipientCover(shared, other);
  EXPECT_EQ(d.fields().at("to_company"), "Initech");
  EXPECT_EQ(d.fields().at("to_name"), "Bob");
}

}  // namespace
}  // namespace faxflow
