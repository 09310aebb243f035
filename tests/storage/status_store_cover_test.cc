// The status store keeps each broadcast recipient's own cover page (Rendered.recipient_cover_page_ids)
// and RecipientPageIds gives a recipient's pages as sent: its cover first, then the shared pages.
// The Rendered event may arrive before or after the chunk's submission, and more than once.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "storage/status_store.h"
#include "tests/support/support.h"

namespace faxflow {
namespace {

v1::Submission Chunk(const std::string& fax_id, const std::vector<std::string>& recipients) {
  v1::Submission s;
  s.set_fax_id(fax_id);
  s.set_tenant("acme");
  s.set_submitted_at_ms(1000);
  int i = 0;
  for (const auto& id : recipients) {
    auto* r = s.add_recipients();
    r->set_recipient_id(id);
    r->set_number("+1555010000" + std::to_string(i++));
  }
  return s;
}

// Rendered: shared pages s1, s2; covers as given (recipient -> cover page id).
v1::DeliveryEvent Rendered(const std::string& fax_id,
                           const std::vector<std::pair<std::string, std::string>>& covers,
                           int32_t cover_pages) {
  v1::DeliveryEvent e;
  e.set_event_id("evt_" + fax_id);
  e.set_fax_id(fax_id);
  e.set_tenant("acme");
  e.set_at_ms(2000);
  auto* r = e.mutable_rendered();
  r->add_page_blob_ids("s1");
  r->add_page_blob_ids("s2");
  r->set_cover_pages(cover_pages);
  r->set_page_count(2 + cover_pages);
  for (const auto& [rid, page] : covers) (*r->mutable_recipient_cover_page_ids())[rid] = page;
  return e;
}

const v1::RecipientStatus& Recipient(const v1::FaxStatus& fax, const std::string& id) {
  for (const auto& r : fax.recipients())
    if (r.recipient_id() == id) return r;
  static const v1::RecipientStatus none;
  ADD_FAILURE() << "no recipient " << id;
  return none;
}

using Ids = std::vector<std::string>;

TEST(StatusStoreCoverTest, EachRecipientsCoverPageComesFirstInItsPages) {
  testing::TempDir dir("faxflow-status-cover");
  auto store = OpenRocksStatusStore(dir.path() + "/status");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  StatusStore& s = **store;

  // Submission first, then Rendered (twice: at-least-once).
  ASSERT_TRUE(s.RecordSubmission(Chunk("fax_a", {"rcp_1", "rcp_2", "rcp_3"})).ok());
  // rcp_3's cover failed: not in the map.
  const auto rendered = Rendered("fax_a", {{"rcp_1", "c_alice"}, {"rcp_2", "c_bob"}}, 1);
  ASSERT_TRUE(s.Apply(rendered).ok());
  ASSERT_TRUE(s.Apply(rendered).ok());
  auto fax = s.Get("fax_a");
  ASSERT_TRUE(fax.ok() && fax->has_value());
  EXPECT_EQ(CoverPages(**fax), 1);
  EXPECT_EQ(RecipientPageIds(**fax, Recipient(**fax, "rcp_1")), (Ids{"c_alice", "s1", "s2"}));
  EXPECT_EQ(RecipientPageIds(**fax, Recipient(**fax, "rcp_2")), (Ids{"c_bob", "s1", "s2"}));
  EXPECT_EQ(RecipientPageIds(**fax, Recipient(**fax, "rcp_3")), Ids{}) << "its cover failed: nothing sent";
  EXPECT_EQ((**fax).recipients_size(), 3);

  // Rendered before the submission (another topic): stubs keep the covers, the submission
  // completes them, and the books count each recipient once.
  auto before = s.GetBooks();
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(s.Apply(Rendered("fax_b", {{"rcp_5", "c_carol"}, {"rcp_4", "c_alice"}}, 1)).ok());
  ASSERT_TRUE(s.RecordSubmission(Chunk("fax_b", {"rcp_4", "rcp_5"})).ok());
  fax = s.Get("fax_b");
  ASSERT_TRUE(fax.ok() && fax->has_value());
  ASSERT_EQ((**fax).recipients_size(), 2);
  EXPECT_EQ(RecipientPageIds(**fax, Recipient(**fax, "rcp_4")), (Ids{"c_alice", "s1", "s2"}));
  EXPECT_EQ(RecipientPageIds(**fax, Recipient(**fax, "rcp_5")), (Ids{"c_carol", "s1", "s2"}));
  EXPECT_FALSE(Recipient(**fax, "rcp_4").number().empty());
  EXPECT_EQ(Recipient(**fax, "rcp_5").pages_total(), 3);
  auto after = s.GetBooks();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->accepted - before->accepted, 2);

  // Without covers nothing changes: every recipient's pages are the fax's pages.
  ASSERT_TRUE(s.RecordSubmission(Chunk("fax_c", {"rcp_6"})).ok());
  auto plain = Rendered("fax_c", {}, 0);
  EXPECT_EQ(plain.rendered().recipient_cover_page_ids_size(), 0);
  ASSERT_TRUE(s.Apply(plain).ok());
  fax = s.Get("fax_c");
  ASSERT_TRUE(fax.ok() && fax->has_value());
  EXPECT_EQ(CoverPages(**fax), 0);
  EXPECT_EQ(RecipientPageIds(**fax, Recipient(**fax, "rcp_6")), (Ids{"s1", "s2"}));

  // Not rendered yet: no pages.
  ASSERT_TRUE(s.RecordSubmission(Chunk("fax_d", {"rcp_7"})).ok());
  fax = s.Get("fax_d");
  ASSERT_TRUE(fax.ok() && fax->has_value());
  EXPECT_EQ(RecipientPageIds(**fax, Recipient(**fax, "rcp_7")), Ids{});
}

}  // namespace
}  // namespace faxflow
