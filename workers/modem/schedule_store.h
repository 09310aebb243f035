// The modem worker's durable scheduling memory, next to the dial ledger (storage/dedup_store.h):
//   - per job: calls placed/connected, training failures, when the next attempt may dial
//     (a retry delay survives a crash: a redelivered job waits out its delay), the highest page
//     a call reached (pages re-sent), and the attempt/page history for the transmission report;
//   - per destination (number digits): the line fallback step that last worked (rate, ECM), so
//     the next fax to that number starts there (HylaFAX info/<number>, gofaxip fallbacks).
// The ledger stays the authority for "was this attempt dialled" and "is the job terminal".
//
// Write order that keeps two workers racing on one job from dialling early: the worker writes
// the job's next_attempt_at_ms here *before* it closes the attempt in the ledger.
//
// Implementations: OpenRocksScheduleStore (RocksDB, one instance per path, synced writes; column
// families "jobs" and "destinations", values are JSON) and MemoryScheduleStore (tests, bench).
// Threading: thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace faxflow::modem {

struct AttemptRecord {
  int32_t attempt = 0;
  int64_t started_ms = 0;
  int64_t duration_ms = 0;  // line time when answered, else setup time
  int32_t first_page = 1;
  int32_t pages_confirmed = 0;  // in this call
  int32_t state = 0;            // v1::RecipientState of the attempt's own outcome
  int32_t reason = 0;           // v1::FailureReason
  std::string completion;       // "T30_ERR_OK", "busy", ...
  std::string remote_csid;
  int32_t bit_rate = 0;
  bool ecm = false;
  std::string channel;
  std::string line_plan;  // "v17+ecm", "9600+ecm", "9600-ecm"
};

struct PageRecord {
  int32_t page = 0;
  int32_t attempt = 0;
  int64_t confirmed_ms = 0;
};

struct JobSchedule {
  std::string job_id;
  int32_t dials = 0;  // calls placed with a recorded outcome (interrupted calls not counted)
  int32_t tries = 0;  // calls that were answered
  int32_t training_failures = 0;
  int64_t next_attempt_at_ms = 0;  // 0: now
  int32_t pages_reached = 0;       // highest page a call started sending (0: none)
  int64_t pages_resent = 0;
  // The far end refused fine resolution (T30_ERR_NORESSUPPORT): later attempts send the pages
  // converted to 204x98 (pages::ToNormalResolution).
  bool normal_resolution = false;
  std::vector<AttemptRecord> attempts;
  std::vector<PageRecord> pages;
};

struct DestinationProfile {
  std::string destination;  // number digits
  int32_t step = 0;         // LinePlanForStep
  int32_t bit_rate = 0;     // of the last successful call
  bool ecm = true;
  int32_t successes = 0;
  int32_t training_failures = 0;
  int64_t updated_ms = 0;
  bool normal_only = false;  // refused fine resolution: send 204x98 from the first attempt
};

std::string EncodeJobSchedule(const JobSchedule& s);
Result<JobSchedule> DecodeJobSchedule(const std::string& text);
std::string EncodeDestination(const DestinationProfile& d);
Result<DestinationProfile> DecodeDestination(const std::string& text);

class ScheduleStore {
 public:
  virtual ~ScheduleStore() = default;
  virtual Result<std::optional<JobSchedule>> GetJob(const std::string& job_id) = 0;
  virtual Status PutJob(const JobSchedule& schedule) = 0;  // synced
  virtual Status DeleteJob(const std::string& job_id) = 0;
  virtual Result<std::optional<DestinationProfile>> GetDestination(const std::string& destination) = 0;
  virtual Status PutDestination(const DestinationProfile& profile) = 0;  // synced
};

class MemoryScheduleStore final : public ScheduleStore {
 public:
  Result<std::optional<JobSchedule>> GetJob(const std::string& job_id) override;
  Status PutJob(const JobSchedule& schedule) override;
  Status DeleteJob(const std::string& job_id) override;
  Result<std::optional<DestinationProfile>> GetDestination(const std::string& destination) override;
  Status PutDestination(const DestinationProfile& profile) override;

 private:
  std::mutex mu_;
  std::map<std::string, JobSchedule> jobs_;
  std::map<std::string, DestinationProfile> destinations_;
};

Result<std::unique_ptr<ScheduleStore>> OpenRocksScheduleStore(const std::string& path);

}  // namespace faxflow::modem
