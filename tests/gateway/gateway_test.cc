// The submission path and the status store, on the real embedded bus and RocksDB stores.
#include <gtest/gtest.h>

#include "common/clock.h"
#include "producers/gateway/api_json.h"
#include "producers/gateway/phone.h"
#include "producers/gateway/submission_service.h"
#include "storage/blob_store.h"
#include "storage/status_store.h"
#include "topics/embedded/embedded_bus.h"
#include "tests/support/support.h"

namespace faxflow {
namespace {

using testing::TempDir;

TEST(PhoneTest, NormalisesToE164) {
  EXPECT_EQ(*NormalizeNumber("+1 (650) 253-0000", "US"), "+16502530000");
  EXPECT_EQ(*NormalizeNumber("650-253-0000", "US"), "+16502530000");
  EXPECT_EQ(*NormalizeNumber("020 7946 0018", "GB"), "+442079460018");
  EXPECT_EQ(*NormalizeNumber("+15550100000", "US"), "+15550100000");  // sim test range
  for (const char* bad : {"", "12", "call me", "+1 555", "+999 123 456", "+1650253000000000000000"}) {
    auto r = NormalizeNumber(bad, "US");
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(NormalizeNumber("+15550100000", "US", /*allow_test_numbers=*/false).ok());
}

v1::DeliveryEvent Event(const std::string& fax, const std::string& rcp) {
  v1::DeliveryEvent e;
  e.set_fax_id(fax);
  e.set_recipient_id(rcp);
  e.set_tenant("default");
  e.set_at_ms(1000);
  return e;
}

class StatusStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = OpenRocksStatusStore(dir_.path() + "/status");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    sub_.set_fax_id("fax_1");
    sub_.set_tenant("default");
    sub_.set_submitted_at_ms(500);
    auto* r = sub_.add_recipients();
    r->set_recipient_id("rcp_1");
    r->set_number("+15550100000");
  }
  v1::FaxStatus Get() { return **store_->Get("fax_1"); }
  TempDir dir_;
  std::unique_ptr<StatusStore> store_;
  v1::Submission sub_;
};

TEST_F(StatusStoreTest, FollowsAFaxToDeliveredAndKeepsTheBooks) {
  ASSERT_TRUE(store_->RecordSubmission(sub_).ok());
  ASSERT_TRUE(store_->RecordSubmission(sub_).ok());  // redelivered: counted once
  EXPECT_EQ(Get().recipients(0).state(), v1::STATE_QUEUED);
  auto rendered = Event("fax_1", "");
  rendered.mutable_rendered()->set_page_count(3);
  rendered.mutable_rendered()->add_page_blob_ids("a");
  ASSERT_TRUE(store_->Apply(rendered).ok());
  EXPECT_EQ(Get().recipients(0).state(), v1::STATE_RENDERED);
  EXPECT_EQ(Get().recipients(0).pages_total(), 3);
  auto started = Event("fax_1", "rcp_1");
  started.mutable_attempt_started()->set_attempt(1);
  ASSERT_TRUE(store_->Apply(started).ok());
  EXPECT_EQ(Get().recipients(0).state(), v1::STATE_SENDING);
  for (int p = 1; p <= 3; ++p) {
    auto page = Event("fax_1", "rcp_1");
    page.mutable_page_confirmed()->set_page(p);
    ASSERT_TRUE(store_->Apply(page).ok());
  }
  auto result = Event("fax_1", "rcp_1");
  result.mutable_result()->set_state(v1::STATE_DELIVERED);
  result.mutable_result()->set_pages_sent(3);
  result.mutable_result()->set_pages_total(3);
  result.mutable_result()->set_terminal(true);
  result.mutable_result()->set_completion_name("T30_ERR_OK");
  ASSERT_TRUE(store_->Apply(result).ok());
  ASSERT_TRUE(store_->Apply(result).ok());  // duplicate event
  EXPECT_EQ(Get().recipients(0).state(), v1::STATE_DELIVERED);
  EXPECT_EQ(Get().recipients(0).pages_sent(), 3);
  EXPECT_EQ(AggregateState(Get()), "delivered");

  // A late, conflicting event does not move a terminal state.
  auto late = Event("fax_1", "rcp_1");
  late.mutable_result()->set_state(v1::STATE_FAILED);
  late.mutable_result()->set_reason(v1::REASON_BUSY);
  late.mutable_result()->set_terminal(true);
  ASSERT_TRUE(store_->Apply(late).ok());
  EXPECT_EQ(Get().recipients(0).state(), v1::STATE_DELIVERED);

  auto books = *store_->GetBooks();
  EXPECT_EQ(books.accepted, 1);
  EXPECT_EQ(books.terminal["delivered"], 1);
  EXPECT_EQ(books.in_flight(), 0);
}

TEST_F(StatusStoreTest, EventsBeforeTheSubmissionAreKept) {
  auto result = Event("fax_1", "rcp_1");
  result.mutable_result()->set_state(v1::STATE_FAILED);
  result.mutable_result()->set_reason(v1::REASON_DOCUMENT_ERROR);
  result.mutable_result()->set_terminal(true);
  result.mutable_result()->set_detail("corrupt");
  ASSERT_TRUE(store_->Apply(result).ok());
  ASSERT_TRUE(store_->RecordSubmission(sub_).ok());
  auto st = Get();
  ASSERT_EQ(st.recipients_size(), 1);
  EXPECT_EQ(st.recipients(0).number(), "+15550100000");
  EXPECT_EQ(st.recipients(0).state(), v1::STATE_FAILED);
  EXPECT_EQ(st.error(), "corrupt");
  auto books = *store_->GetBooks();
  EXPECT_EQ(books.accepted, 1);
  EXPECT_EQ(books.in_flight(), 0);
  auto j = FaxStatusJson(st);
  EXPECT_EQ(j["recipients"][0]["reason"], "document_error");
  EXPECT_EQ(j["state"], "failed");
}

TEST_F(StatusStoreTest, ListsNewestFirstWithACursor) {
  for (int i = 0; i < 5; ++i) {
    v1::Submission s = sub_;
    s.set_fax_id("fax_" + std::to_string(i));
    ASSERT_TRUE(store_->RecordSubmission(s).ok());
  }
  auto first = *store_->List("default", 2, "");
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].fax_id(), "fax_4");
  auto next = *store_->List("default", 10, first.back().fax_id());
  ASSERT_EQ(next.size(), 3u);
  EXPECT_EQ(next[0].fax_id(), "fax_2");
  EXPECT_TRUE(store_->List("other-tenant", 10, "")->empty());
}

class SubmissionServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto b = bus::EmbeddedBus::Open(dir_.path() + "/bus");
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    bus_ = std::move(*b);
    ASSERT_TRUE(bus_->EnsureTopics(bus::Catalogue()).ok());
    producer_ = std::move(*bus_->NewProducer("test"));
    blobs_ = std::move(*OpenRocksBlobStore(dir_.path() + "/blobs", {}, [] { return int64_t{1}; }));
    status_ = std::move(*OpenRocksStatusStore(dir_.path() + "/status"));
    service_ = std::make_unique<SubmissionService>(
        SubmissionLimits{1000, 3, 2, "US"}, *producer_, *blobs_, *status_, clock_,
        [](std::string_view content) -> Result<std::string> {
          if (content.rfind("%PDF-", 0) == 0) return std::string("application/pdf");
          return Status::Permanent(Code::kInvalidArgument, "unsupported document type");
        });
  }
  int64_t Queued() {
    int64_t n = 0;
    auto consumer = std::move(*bus_->NewConsumer({"probe", "probe", true}));
    auto parts = bus::AllPartitions(*bus_, std::string(bus::topic::kSubmissions));
    for (const auto& tp : parts.value()) n += consumer->EndOffset(tp).value();
    return n;
  }
  SubmitRequest Valid() {
    SubmitRequest r;
    r.to = {"+15550100000", "650 253 0000"};
    r.documents = {{"a.pdf", "%PDF-1.4 tiny"}};
    return r;
  }
  TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<bus::EmbeddedBus> bus_;
  std::unique_ptr<bus::Producer> producer_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<StatusStore> status_;
  std::unique_ptr<SubmissionService> service_;
};

TEST_F(SubmissionServiceTest, AcceptedMeansDurableOnTheBusAndVisible) {
  auto out = service_->Submit(Valid());
  ASSERT_TRUE(out.ok()) << out.message;
  EXPECT_EQ(Queued(), 1);
  const auto& sub = out.submission;
  EXPECT_EQ(sub.recipients_size(), 2);
  EXPECT_EQ(sub.recipients(1).number(), "+16502530000");
  EXPECT_EQ(sub.options().resolution(), v1::RESOLUTION_FINE);
  EXPECT_EQ(sub.documents(0).blob_id(), BlobId("%PDF-1.4 tiny"));
  EXPECT_TRUE(*blobs_->Exists(sub.documents(0).blob_id()));
  auto st = status_->Get(sub.fax_id());
  ASSERT_TRUE(st.ok() && st->has_value());
  EXPECT_EQ((*st)->recipients_size(), 2);
}

TEST_F(SubmissionServiceTest, RejectionsAreTypedAndWriteNothing) {
  struct Case {
    std::function<void(SubmitRequest&)> mutate;
    int http;
    std::string code;
    std::string field;
  };
  std::vector<Case> cases = {
      {[](SubmitRequest& r) { r.to.clear(); }, 400, "missing_recipient", "to"},
      {[](SubmitRequest& r) { r.to.push_back("12"); }, 400, "invalid_number", "to[2]"},
      {[](SubmitRequest& r) { r.to = {"1", "2", "3", "4"}; }, 422, "too_many_recipients", "to"},
      {[](SubmitRequest& r) { r.documents.clear(); }, 400, "missing_document", "file"},
      {[](SubmitRequest& r) { r.documents.push_back({"x.bin", "\x7f" "ELF"}); }, 415, "unsupported_document", "file[1]"},
      {[](SubmitRequest& r) { r.documents[0].content = "%PDF-" + std::string(2000, 'x'); }, 413, "document_too_large", "file[0]"},
      {[](SubmitRequest& r) { r.documents[0].content.clear(); }, 400, "empty_document", "file[0]"},
      {[](SubmitRequest& r) { r.options.set_tsi(std::string(21, 'a')); }, 400, "invalid_option", "tsi"},
      {[](SubmitRequest& r) { r.options.set_header_text(std::string(51, 'a')); }, 400, "invalid_option", "header_text"},
      {[](SubmitRequest& r) { r.options.set_priority(10); }, 400, "invalid_option", "priority"},
  };
  for (const auto& c : cases) {
    SubmitRequest r = Valid();
    c.mutate(r);
    auto out = service_->Submit(r);
    EXPECT_EQ(out.http_status, c.http) << c.code;
    EXPECT_EQ(out.error_code, c.code);
    EXPECT_EQ(out.field, c.field) << c.code;
    EXPECT_FALSE(out.message.empty());
  }
  EXPECT_EQ(Queued(), 0);
  EXPECT_TRUE(status_->List("default", 10, "")->empty());
}

}  // namespace
}  // namespace faxflow
