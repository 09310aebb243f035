#include "storage/status_store.h"

#include <algorithm>
#include <map>
#include <mutex>

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

namespace faxflow {
namespace {

constexpr char kFaxPrefix[] = "f/";     // f/<fax_id> -> FaxStatus
constexpr char kTenantPrefix[] = "t/";  // t/<tenant>/<fax_id> -> "" (fax ids sort by time)
constexpr char kTimePrefix[] = "T/";    // T/<tenant>/<submitted_at 20 digits>/<fax_id> -> ""
constexpr char kTagPrefix[] = "g/";     // g/<tenant>/<tag>/<submitted_at 20 digits>/<fax_id> -> ""
constexpr char kEventPrefix[] = "e/";   // e/<fax_id>/<at_ms 20 digits>/<event key> -> DeliveryEvent
constexpr char kBooksAccepted[] = "b/accepted";
constexpr char kBooksTerminal[] = "b/terminal/";

struct DbDeleter {
  void operator()(rocksdb::DB* db) const { delete db; }
};
using DbPtr = std::unique_ptr<rocksdb::DB, DbDeleter>;

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  if (s.IsCorruption()) return Status::Fatal(Code::kCorruption, what + ": " + s.ToString());
  if (s.IsBusy() || s.IsTryAgain() || s.IsTimedOut())
    return Status::Retryable(Code::kUnavailable, what + ": " + s.ToString());
  return Status::Fatal(Code::kIoError, what + ": " + s.ToString());
}

std::string EncodeCount(int64_t v) { return std::to_string(v); }
int64_t DecodeCount(const std::string& s) { return s.empty() ? 0 : std::stoll(s); }

std::string Pad20(int64_t v) {
  std::string digits = std::to_string(v < 0 ? 0 : v);
  return std::string(digits.size() < 20 ? 20 - digits.size() : 0, '0') + digits;
}

// A stable key for an event: its id, or what identifies it when it has none.
std::string EventKey(const v1::DeliveryEvent& e) {
  if (!e.event_id().empty()) return e.event_id();
  std::string k = e.recipient_id() + "." + std::to_string(static_cast<int>(e.kind_case()));
  if (e.has_attempt_started()) k += "." + std::to_string(e.attempt_started().attempt());
  if (e.has_page_confirmed())
    k += "." + std::to_string(e.page_confirmed().attempt()) + "." + std::to_string(e.page_confirmed().page());
  if (e.has_result()) k += "." + std::to_string(e.result().attempt());
  return k;
}

class RocksStatusStore final : public StatusStore {
 public:
  explicit RocksStatusStore(DbPtr db) : db_(std::move(db)) {}

  Status RecordSubmission(const v1::Submission& submission) override {
    std::lock_guard lock(mu_);
    FF_ASSIGN_OR_RETURN(auto existing, Load(submission.fax_id()));
    v1::FaxStatus status = existing.value_or(v1::FaxStatus());
    const bool fresh_fax = !existing.has_value();
    status.set_fax_id(submission.fax_id());
    status.set_tenant(submission.tenant());
    // The first submission record fixes the time (a duplicate record of a retried keyed
    // submission carries a later time and must not move the fax in the time index).
    const bool first_record = status.submitted_at_ms() == 0;
    if (first_record) status.set_submitted_at_ms(submission.submitted_at_ms());
    status.clear_tags();
    for (const auto& t : submission.options().tags()) status.add_tags(t);
    int64_t newly_accepted = 0;
    for (const auto& r : submission.recipients()) {
      v1::RecipientStatus* rs = FindRecipient(status, r.recipient_id());
      if (rs == nullptr) {
        rs = status.add_recipients();
        rs->set_recipient_id(r.recipient_id());
        rs->set_state(v1::STATE_QUEUED);
        rs->set_pages_total(status.page_count());
        ++newly_accepted;
      } else if (!rs->number().empty()) {
        continue;  // already recorded from this submission
      } else {
        ++newly_accepted;  // a stub created by an early event
      }
      rs->set_number(r.number());
      if (rs->updated_at_ms() == 0) rs->set_updated_at_ms(submission.submitted_at_ms());
    }
    rocksdb::WriteBatch batch;
    batch.Put(std::string(kFaxPrefix) + status.fax_id(), status.SerializeAsString());
    if (fresh_fax) batch.Put(std::string(kTenantPrefix) + status.tenant() + "/" + status.fax_id(), "");
    if (first_record) {
      const std::string when = Pad20(status.submitted_at_ms()) + "/" + status.fax_id();
      batch.Put(std::string(kTimePrefix) + status.tenant() + "/" + when, "");
      for (const auto& t : status.tags()) batch.Put(std::string(kTagPrefix) + status.tenant() + "/" + t + "/" + when, "");
    }
    if (newly_accepted > 0) {
      FF_ASSIGN_OR_RETURN(int64_t accepted, ReadCount(kBooksAccepted));
      batch.Put(kBooksAccepted, EncodeCount(accepted + newly_accepted));
    }
    return Write(batch);
  }

  Status Apply(const v1::DeliveryEvent& event) override {
    std::lock_guard lock(mu_);
    FF_ASSIGN_OR_RETURN(auto existing, Load(event.fax_id()));
    v1::FaxStatus status = existing.value_or(v1::FaxStatus());
    const bool fresh_fax = !existing.has_value();
    if (fresh_fax) {
      status.set_fax_id(event.fax_id());
      status.set_tenant(event.tenant());
    }
    rocksdb::WriteBatch batch;
    std::string newly_terminal;
    switch (event.kind_case()) {
      case v1::DeliveryEvent::kRendered: {
        status.set_page_count(event.rendered().page_count());
        status.clear_page_blob_ids();
        for (const auto& id : event.rendered().page_blob_ids()) status.add_page_blob_ids(id);
        // Each recipient's own cover page (broadcast covers). A recipient not recorded yet (the
        // chunk's submission comes later on another topic) gets a stub, completed by
        // RecordSubmission, so the cover page is not lost.
        const std::map<std::string, std::string> covers(event.rendered().recipient_cover_page_ids().begin(),
                                                        event.rendered().recipient_cover_page_ids().end());
        for (const auto& [recipient_id, page_id] : covers) {  // sorted: stubs in a stable order
          v1::RecipientStatus* rs = FindRecipient(status, recipient_id);
          if (rs == nullptr) {
            rs = status.add_recipients();
            rs->set_recipient_id(recipient_id);
            rs->set_state(v1::STATE_QUEUED);
          }
          rs->set_cover_page_blob_id(page_id);
        }
        for (auto& rs : *status.mutable_recipients()) {
          rs.set_pages_total(event.rendered().page_count());
          if (rs.state() == v1::STATE_QUEUED) rs.set_state(v1::STATE_RENDERED);
        }
        break;
      }
      case v1::DeliveryEvent::kAttemptStarted: {
        v1::RecipientStatus* rs = RecipientFor(status, event);
        if (!IsTerminal(rs->state())) rs->set_state(v1::STATE_SENDING);
        rs->set_attempts(std::max(rs->attempts(), event.attempt_started().attempt()));
        rs->set_updated_at_ms(event.at_ms());
        break;
      }
      case v1::DeliveryEvent::kPageConfirmed: {
        v1::RecipientStatus* rs = RecipientFor(status, event);
        if (!IsTerminal(rs->state())) rs->set_pages_sent(std::max(rs->pages_sent(), event.page_confirmed().page()));
        rs->set_updated_at_ms(event.at_ms());
        break;
      }
      case v1::DeliveryEvent::kResult: {
        const auto& r = event.result();
        v1::RecipientStatus* rs = RecipientFor(status, event);
        if (IsTerminal(rs->state())) break;  // a terminal state is final
        rs->set_attempts(std::max(rs->attempts(), r.attempt()));
        rs->set_pages_sent(std::max(rs->pages_sent(), r.pages_sent()));
        if (r.pages_total() > 0) rs->set_pages_total(r.pages_total());
        rs->set_reason(r.reason());
        rs->set_completion_name(r.completion_name());
        rs->set_remote_csid(r.remote_csid());
        rs->set_bit_rate(r.bit_rate());
        rs->set_detail(r.detail());
        rs->set_updated_at_ms(event.at_ms());
        if (r.terminal()) {
          rs->set_state(r.state());
          newly_terminal = StateName(r.state());
          if (r.reason() == v1::REASON_DOCUMENT_ERROR) status.set_error(r.detail());
        } else {
          rs->set_state(v1::STATE_RENDERED);  // waiting for the next attempt
        }
        break;
      }
      case v1::DeliveryEvent::kConnected: {
        v1::RecipientStatus* rs = RecipientFor(status, event);
        if (!IsTerminal(rs->state())) {
          rs->set_state(v1::STATE_SENDING);
          rs->set_remote_csid(event.connected().remote_csid());
          rs->set_bit_rate(event.connected().bit_rate());
        }
        rs->set_updated_at_ms(event.at_ms());
        break;
      }
      case v1::DeliveryEvent::kRetryScheduled:
      case v1::DeliveryEvent::kReport:
        break;  // kept in the event log below (GET /v1/faxes/{id}/events, the report's blob ids)
      case v1::DeliveryEvent::KIND_NOT_SET:
        return Status::Permanent(Code::kInvalidArgument, "delivery event " + event.event_id() + " has no kind");
    }
    batch.Put(std::string(kFaxPrefix) + status.fax_id(), status.SerializeAsString());
    if (fresh_fax) batch.Put(std::string(kTenantPrefix) + status.tenant() + "/" + status.fax_id(), "");
    batch.Put(std::string(kEventPrefix) + status.fax_id() + "/" + Pad20(event.at_ms()) + "/" + EventKey(event),
              event.SerializeAsString());
    if (!newly_terminal.empty()) {
      const std::string key = std::string(kBooksTerminal) + newly_terminal;
      FF_ASSIGN_OR_RETURN(int64_t n, ReadCount(key));
      batch.Put(key, EncodeCount(n + 1));
    }
    return Write(batch);
  }

  Result<std::optional<v1::FaxStatus>> Get(const std::string& fax_id) override {
    std::lock_guard lock(mu_);
    return Load(fax_id);
  }

  Result<std::vector<v1::FaxStatus>> List(const std::string& tenant, size_t limit,
                                          const std::string& after_fax_id) override {
    std::vector<std::string> ids;
    {
      const std::string prefix = std::string(kTenantPrefix) + tenant + "/";
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
      if (after_fax_id.empty()) {
        it->SeekForPrev(prefix + "\xff");
      } else {
        it->SeekForPrev(prefix + after_fax_id);
        if (it->Valid() && it->key().ToString() == prefix + after_fax_id) it->Prev();
      }
      for (; it->Valid() && ids.size() < limit; it->Prev()) {
        const std::string key = it->key().ToString();
        if (key.rfind(prefix, 0) != 0) break;
        ids.push_back(key.substr(prefix.size()));
      }
      FF_RETURN_IF_ERROR(FromRocks(it->status(), "status store list"));
    }
    std::vector<v1::FaxStatus> out;
    std::lock_guard lock(mu_);
    for (const auto& id : ids) {
      FF_ASSIGN_OR_RETURN(auto s, Load(id));
      if (s) out.push_back(std::move(*s));
    }
    return out;
  }

  Result<FaxPage> Query(const FaxQuery& q) override {
    std::string prefix = std::string(kTimePrefix) + q.tenant + "/";
    if (!q.tag.empty()) prefix = std::string(kTagPrefix) + q.tenant + "/" + q.tag + "/";
    std::vector<std::pair<std::string, std::string>> found;  // (position, fax id)
    FaxPage page;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    std::string start = prefix + "\xff";
    if (q.to_ms > 0) start = std::min(start, prefix + Pad20(q.to_ms));
    if (!q.cursor.empty()) start = std::min(start, prefix + q.cursor);
    it->SeekForPrev(start);
    if (it->Valid() && it->key().ToString() == start) it->Prev();
    size_t scanned = 0;
    std::string last_position;
    const size_t limit = std::max<size_t>(q.limit, 1);
    std::lock_guard lock(mu_);
    for (; it->Valid(); it->Prev()) {
      const std::string key = it->key().ToString();
      if (key.rfind(prefix, 0) != 0) break;
      const std::string position = key.substr(prefix.size());  // "<ts20>/<fax_id>"
      if (position.size() < 22) continue;
      const int64_t ts = std::stoll(position.substr(0, 20));
      if (ts < q.from_ms) break;
      if (page.faxes.size() == limit) {  // one more exists: the page ends at the previous entry
        page.next_cursor = last_position;
        return page;
      }
      if (++scanned > q.max_scan) {
        page.next_cursor = last_position;
        return page;
      }
      last_position = position;
      FF_ASSIGN_OR_RETURN(auto s, Load(position.substr(21)));
      if (!s || s->tenant() != q.tenant) continue;
      if (q.filter && !q.filter(*s)) continue;
      page.faxes.push_back(std::move(*s));
    }
    FF_RETURN_IF_ERROR(FromRocks(it->status(), "status store query"));
    return page;
  }

  Result<std::vector<v1::DeliveryEvent>> Events(const std::string& fax_id) override {
    const std::string prefix = std::string(kEventPrefix) + fax_id + "/";
    std::vector<v1::DeliveryEvent> out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      v1::DeliveryEvent e;
      if (!e.ParseFromString(it->value().ToString()))
        return Status::Fatal(Code::kCorruption, "event record of " + fax_id + " does not decode");
      out.push_back(std::move(e));
    }
    FF_RETURN_IF_ERROR(FromRocks(it->status(), "status store events"));
    return out;
  }

  Result<Books> GetBooks() override {
    std::lock_guard lock(mu_);
    Books books;
    FF_ASSIGN_OR_RETURN(books.accepted, ReadCount(kBooksAccepted));
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(kBooksTerminal); it->Valid() && it->key().starts_with(kBooksTerminal); it->Next()) {
      books.terminal[it->key().ToString().substr(sizeof(kBooksTerminal) - 1)] = DecodeCount(it->value().ToString());
    }
    FF_RETURN_IF_ERROR(FromRocks(it->status(), "status store books"));
    return books;
  }

 private:
  static v1::RecipientStatus* FindRecipient(v1::FaxStatus& status, const std::string& id) {
    for (auto& rs : *status.mutable_recipients())
      if (rs.recipient_id() == id) return &rs;
    return nullptr;
  }

  static v1::RecipientStatus* RecipientFor(v1::FaxStatus& status, const v1::DeliveryEvent& event) {
    v1::RecipientStatus* rs = FindRecipient(status, event.recipient_id());
    if (rs == nullptr) {  // event before submission: stub, completed by RecordSubmission
      rs = status.add_recipients();
      rs->set_recipient_id(event.recipient_id());
      rs->set_state(v1::STATE_QUEUED);
      rs->set_pages_total(status.page_count());
    }
    return rs;
  }

  Result<std::optional<v1::FaxStatus>> Load(const std::string& fax_id) {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), std::string(kFaxPrefix) + fax_id, &value);
    if (s.IsNotFound()) return std::optional<v1::FaxStatus>();
    FF_RETURN_IF_ERROR(FromRocks(s, "status store get " + fax_id));
    v1::FaxStatus status;
    if (!status.ParseFromString(value))
      return Status::Fatal(Code::kCorruption, "status record of " + fax_id + " does not decode");
    return std::optional<v1::FaxStatus>(std::move(status));
  }

  Result<int64_t> ReadCount(const std::string& key) {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), key, &value);
    if (s.IsNotFound()) return int64_t{0};
    FF_RETURN_IF_ERROR(FromRocks(s, "status store read " + key));
    return DecodeCount(value);
  }

  Status Write(rocksdb::WriteBatch& batch) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    return FromRocks(db_->Write(wo, &batch), "status store write");
  }

  std::mutex mu_;
  DbPtr db_;
};

}  // namespace

int64_t Books::in_flight() const {
  int64_t done = 0;
  for (const auto& [state, n] : terminal) done += n;
  return accepted - done;
}

int CoverPages(const v1::FaxStatus& fax) {
  // Rendered.page_count = cover_pages + shared pages (schemas/event.proto).
  return std::max(0, fax.page_count() - fax.page_blob_ids_size());
}

std::vector<std::string> RecipientPageIds(const v1::FaxStatus& fax, const v1::RecipientStatus& recipient) {
  std::vector<std::string> ids;
  if (fax.page_blob_ids_size() == 0) return ids;  // not rendered (or the document failed)
  if (!recipient.cover_page_blob_id().empty())
    ids.push_back(recipient.cover_page_blob_id());
  else if (CoverPages(fax) > 0)
    return ids;  // its cover failed: nothing was sent to it
  ids.insert(ids.end(), fax.page_blob_ids().begin(), fax.page_blob_ids().end());
  return ids;
}

bool IsTerminal(v1::RecipientState state) {
  return state == v1::STATE_DELIVERED || state == v1::STATE_PARTIAL || state == v1::STATE_FAILED ||
         state == v1::STATE_CANCELLED || state == v1::STATE_EXPIRED;
}

std::string StateName(v1::RecipientState state) {
  switch (state) {
    case v1::STATE_QUEUED: return "queued";
    case v1::STATE_RENDERED: return "rendered";
    case v1::STATE_SENDING: return "sending";
    case v1::STATE_DELIVERED: return "delivered";
    case v1::STATE_PARTIAL: return "partial";
    case v1::STATE_FAILED: return "failed";
    case v1::STATE_CANCELLED: return "cancelled";
    case v1::STATE_EXPIRED: return "expired";
    default: return "unknown";
  }
}

std::string ReasonName(v1::FailureReason reason) {
  switch (reason) {
    case v1::REASON_UNSPECIFIED: return "";
    case v1::REASON_BUSY: return "busy";
    case v1::REASON_NO_ANSWER: return "no_answer";
    case v1::REASON_NOT_A_FAX: return "not_a_fax";
    case v1::REASON_TRAINING_FAILED: return "training_failed";
    case v1::REASON_CAPABILITY_MISMATCH: return "capability_mismatch";
    case v1::REASON_DROPPED: return "dropped";
    case v1::REASON_DOCUMENT_ERROR: return "document_error";
    case v1::REASON_PROTOCOL_ERROR: return "protocol_error";
    case v1::REASON_INTERNAL: return "internal";
    default: return "unknown";
  }
}

Result<std::unique_ptr<StatusStore>> OpenRocksStatusStore(const std::string& path) {
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, path, &raw);
  if (!s.ok()) return Status::Fatal(Code::kIoError, "cannot open status store at " + path + ": " + s.ToString());
  return std::unique_ptr<StatusStore>(new RocksStatusStore(DbPtr(raw)));
}

}  // namespace faxflow
