#include <gtest/gtest.h>

#include "schemas/event.pb.h"
#include "schemas/json.h"
#include "schemas/submission.pb.h"

namespace faxflow {
namespace {

TEST(SchemasTest, SubmissionRoundTripsThroughProtoJson) {
  v1::Submission s;
  s.set_fax_id("fax_1");
  s.set_tenant("acme");
  s.set_submitted_at_ms(1'763'785'400'000);
  auto* r = s.add_recipients();
  r->set_recipient_id("rcp_1");
  r->set_number("+15550100000");
  s.add_documents()->set_blob_id(std::string(64, 'a'));
  s.mutable_options()->set_resolution(v1::RESOLUTION_NORMAL);
  s.mutable_options()->add_tags("invoices");
  auto json = ToProtoJson(s);
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  EXPECT_NE(json->find("\"RESOLUTION_NORMAL\""), std::string::npos) << *json;
  EXPECT_NE(json->find("\"submitted_at_ms\":\"1763785400000\""), std::string::npos) << *json;
  v1::Submission back;
  ASSERT_TRUE(FromProtoJson(*json, back).ok());
  EXPECT_EQ(back.SerializeAsString(), s.SerializeAsString());
}

TEST(SchemasTest, BadJsonIsATypedError) {
  v1::DeliveryEvent e;
  EXPECT_EQ(FromProtoJson("{not json", e).code(), Code::kInvalidArgument);
  EXPECT_EQ(FromProtoJson(R"({"no_such_field": 1})", e).code(), Code::kInvalidArgument);
  EXPECT_TRUE(FromProtoJson(R"({"no_such_field": 1})", e, /*ignore_unknown=*/true).ok());
  EXPECT_EQ(FromProtoJson(R"({"result": {"state": "STATE_BOGUS"}})", e).code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace faxflow
