#include <gtest/gtest.h>

#include "schemas/event.pb.h"
#include "schemas/json.h"
#include "schemas/outbound_job.h"
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

// The one builder of jobs (imaging and the broadcast fan-out): the cover page first, every
// scheduling option carried, normal resolution only when asked for.
TEST(SchemasTest, OutboundJobForCarriesTheRecipientPagesAndOptions) {
  v1::Submission s;
  s.set_fax_id("fax_1");
  s.set_tenant("acme");
  s.set_submitted_at_ms(1'000);
  v1::FaxOptions& o = *s.mutable_options();
  o.set_resolution(v1::RESOLUTION_NORMAL);
  o.set_tsi("+1 555 0100");
  o.set_header_text("ACME BILLING");
  o.set_priority(7);
  o.set_send_at_ms(5'000);
  o.set_expires_at_ms(9'000);
  o.mutable_retry()->set_busy_seconds(30);
  v1::Recipient r;
  r.set_recipient_id("rcp_1");
  r.set_number("+15550100000");

  const v1::OutboundJob job = OutboundJobFor(s, r, "cover", {"p1", "p2"}, 2'000);
  EXPECT_EQ(job.job_id(), "rcp_1");
  EXPECT_EQ(job.fax_id(), "fax_1");
  EXPECT_EQ(job.tenant(), "acme");
  EXPECT_EQ(job.number(), "+15550100000");
  ASSERT_EQ(job.pages_size(), 3);
  EXPECT_EQ(job.pages(0).blob_id(), "cover");
  EXPECT_EQ(job.pages(2).blob_id(), "p2");
  EXPECT_EQ(job.resolution(), v1::RESOLUTION_NORMAL);
  EXPECT_EQ(job.tsi(), "+1 555 0100");
  EXPECT_EQ(job.header_text(), "ACME BILLING");
  EXPECT_EQ(job.priority(), 7);
  EXPECT_EQ(job.submitted_at_ms(), 1'000);
  EXPECT_EQ(job.rendered_at_ms(), 2'000);
  EXPECT_EQ(job.send_at_ms(), 5'000);
  EXPECT_EQ(job.expires_at_ms(), 9'000);
  EXPECT_EQ(job.retry().busy_seconds(), 30);

  o.clear_resolution();  // unspecified renders fine
  o.clear_retry();
  const v1::OutboundJob plain = OutboundJobFor(s, r, "", {"p1"}, 2'000);
  ASSERT_EQ(plain.pages_size(), 1);
  EXPECT_EQ(plain.pages(0).blob_id(), "p1");
  EXPECT_EQ(plain.resolution(), v1::RESOLUTION_FINE);
  EXPECT_FALSE(plain.has_retry());
}

}  // namespace
}  // namespace faxflow
