// The status store: the materialised state of every fax and recipient, answered by
// GET /v1/faxes/{id}. Fed by the status worker (workers/status) from fax.submissions and
// fax.events, and written directly by the gateway at acceptance so a GET right after the 202
// finds the fax.
//
// Applying is idempotent and order-tolerant (events are delivered at least once and may arrive
// before the submission): a terminal recipient state never changes again, page counts only
// grow, and a stub created by an early event is completed by the submission later.
//
// Broadcast covers: the fax's page_blob_ids are the pages every recipient shares; each
// recipient's own cover page (sent first) is kept on the recipient (cover_page_blob_id, from the
// Rendered event's recipient_cover_page_ids). RecipientPageIds gives one recipient's pages.
//
// Also keeps "the books": how many recipients were accepted and how many ended in each terminal
// state, so accepted = terminal + in_flight can be checked.
//
// Threading: thread-safe (one mutex around each read-modify-write).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "schemas/event.pb.h"
#include "schemas/status.pb.h"
#include "schemas/submission.pb.h"

namespace faxflow {

// GET /v1/faxes: a tenant's faxes, newest first, by submission time.
struct FaxQuery {
  std::string tenant;
  std::string tag;         // only faxes with this tag (tag index); "" = all
  int64_t from_ms = 0;     // submitted_at >= from_ms
  int64_t to_ms = 0;       // submitted_at < to_ms; 0 = no bound
  size_t limit = 50;
  std::string cursor;      // next_cursor of the previous page; "" = from the newest
  std::function<bool(const v1::FaxStatus&)> filter;  // e.g. by state; null = all
  size_t max_scan = 5000;  // index entries examined per call (a sparse filter returns a short page + cursor)
};
struct FaxPage {
  std::vector<v1::FaxStatus> faxes;
  std::string next_cursor;  // "" when there is nothing more
};

struct Books {
  int64_t accepted = 0;                      // recipients accepted
  std::map<std::string, int64_t> terminal;   // by state name ("delivered", "failed", ...)
  int64_t in_flight() const;
};

class StatusStore {
 public:
  virtual ~StatusStore() = default;
  // Creates the fax record from an accepted submission, or completes a stub. Idempotent.
  virtual Status RecordSubmission(const v1::Submission& submission) = 0;
  // Applies one delivery event. Idempotent for redelivered events.
  virtual Status Apply(const v1::DeliveryEvent& event) = 0;
  virtual Result<std::optional<v1::FaxStatus>> Get(const std::string& fax_id) = 0;
  // Faxes of a tenant, newest first, at most `limit`, starting after `after_fax_id` if set.
  virtual Result<std::vector<v1::FaxStatus>> List(const std::string& tenant, size_t limit,
                                                  const std::string& after_fax_id) = 0;
  virtual Result<Books> GetBooks() = 0;
  // Filtered, cursor-paginated listing (tenant-scoped time and tag indexes).
  virtual Result<FaxPage> Query(const FaxQuery& query) = 0;
  // Every delivery event applied for the fax, in time order (duplicates applied once).
  virtual Result<std::vector<v1::DeliveryEvent>> Events(const std::string& fax_id) = 0;
};

Result<std::unique_ptr<StatusStore>> OpenRocksStatusStore(const std::string& path);

// The pages `recipient` is sent, in order: its own cover page (broadcast covers), then the fax's
// shared pages. Empty before rendering, and for a recipient of a fax with covers whose cover page
// is not recorded (its cover could not be rendered).
std::vector<std::string> RecipientPageIds(const v1::FaxStatus& fax, const v1::RecipientStatus& recipient);
// Pages each recipient of `fax` gets before the shared pages (1 for broadcast covers, else 0).
int CoverPages(const v1::FaxStatus& fax);

// Terminal recipient states.
bool IsTerminal(v1::RecipientState state);
// API names: "queued", "delivered", "busy", ... (lower case, stable).
std::string StateName(v1::RecipientState state);
std::string ReasonName(v1::FailureReason reason);

}  // namespace faxflow
