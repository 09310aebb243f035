#include "workers/modem/schedule_store.h"

#include <nlohmann/json.hpp>

#include "storage/rocks_util.h"

namespace faxflow::modem {
namespace {

using nlohmann::json;

json ToJson(const AttemptRecord& a) {
  return {{"attempt", a.attempt},
          {"started_ms", a.started_ms},
          {"duration_ms", a.duration_ms},
          {"first_page", a.first_page},
          {"pages_confirmed", a.pages_confirmed},
          {"state", a.state},
          {"reason", a.reason},
          {"completion", a.completion},
          {"remote_csid", a.remote_csid},
          {"bit_rate", a.bit_rate},
          {"ecm", a.ecm},
          {"channel", a.channel},
          {"line_plan", a.line_plan}};
}

AttemptRecord AttemptFromJson(const json& j) {
  AttemptRecord a;
  a.attempt = j.value("attempt", 0);
  a.started_ms = j.value("started_ms", int64_t{0});
  a.duration_ms = j.value("duration_ms", int64_t{0});
  a.first_page = j.value("first_page", 1);
  a.pages_confirmed = j.value("pages_confirmed", 0);
  a.state = j.value("state", 0);
  a.reason = j.value("reason", 0);
  a.completion = j.value("completion", "");
  a.remote_csid = j.value("remote_csid", "");
  a.bit_rate = j.value("bit_rate", 0);
  a.ecm = j.value("ecm", false);
  a.channel = j.value("channel", "");
  a.line_plan = j.value("line_plan", "");
  return a;
}

}  // namespace

std::string EncodeJobSchedule(const JobSchedule& s) {
  json attempts = json::array();
  for (const auto& a : s.attempts) attempts.push_back(ToJson(a));
  json pages = json::array();
  for (const auto& p : s.pages) pages.push_back({p.page, p.attempt, p.confirmed_ms});
  return json{{"job_id", s.job_id},
              {"dials", s.dials},
              {"tries", s.tries},
              {"training_failures", s.training_failures},
              {"next_attempt_at_ms", s.next_attempt_at_ms},
              {"pages_reached", s.pages_reached},
              {"pages_resent", s.pages_resent},
              {"normal_resolution", s.normal_resolution},
              {"attempts", attempts},
              {"pages", pages}}
      .dump();
}

Result<JobSchedule> DecodeJobSchedule(const std::string& text) {
  try {
    const json j = json::parse(text);
    JobSchedule s;
    s.job_id = j.at("job_id").get<std::string>();
    s.dials = j.value("dials", 0);
    s.tries = j.value("tries", 0);
    s.training_failures = j.value("training_failures", 0);
    s.next_attempt_at_ms = j.value("next_attempt_at_ms", int64_t{0});
    s.pages_reached = j.value("pages_reached", 0);
    s.pages_resent = j.value("pages_resent", int64_t{0});
    s.normal_resolution = j.value("normal_resolution", false);
    for (const auto& a : j.value("attempts", json::array())) s.attempts.push_back(AttemptFromJson(a));
    for (const auto& p : j.value("pages", json::array()))
      s.pages.push_back(PageRecord{p.at(0).get<int32_t>(), p.at(1).get<int32_t>(), p.at(2).get<int64_t>()});
    return s;
  } catch (const std::exception& e) {
    return Status::Fatal(Code::kCorruption, std::string("modem schedule record: ") + e.what());
  }
}

std::string EncodeDestination(const DestinationProfile& d) {
  return json{{"destination", d.destination}, {"step", d.step},
              {"bit_rate", d.bit_rate},       {"ecm", d.ecm},
              {"successes", d.successes},     {"training_failures", d.training_failures},
              {"updated_ms", d.updated_ms},   {"normal_only", d.normal_only}}
      .dump();
}

Result<DestinationProfile> DecodeDestination(const std::string& text) {
  try {
    const json j = json::parse(text);
    DestinationProfile d;
    d.destination = j.at("destination").get<std::string>();
    d.step = j.value("step", 0);
    d.bit_rate = j.value("bit_rate", 0);
    d.ecm = j.value("ecm", true);
    d.successes = j.value("successes", 0);
    d.training_failures = j.value("training_failures", 0);
    d.updated_ms = j.value("updated_ms", int64_t{0});
    d.normal_only = j.value("normal_only", false);
    return d;
  } catch (const std::exception& e) {
    return Status::Fatal(Code::kCorruption, std::string("modem destination record: ") + e.what());
  }
}

Result<std::optional<JobSchedule>> MemoryScheduleStore::GetJob(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return std::optional<JobSchedule>();
  return std::optional<JobSchedule>(it->second);
}

Status MemoryScheduleStore::PutJob(const JobSchedule& schedule) {
  std::lock_guard<std::mutex> lock(mu_);
  jobs_[schedule.job_id] = schedule;
  return Status::Ok();
}

Status MemoryScheduleStore::DeleteJob(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  jobs_.erase(job_id);
  return Status::Ok();
}

Result<std::optional<DestinationProfile>> MemoryScheduleStore::GetDestination(
    const std::string& destination) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = destinations_.find(destination);
  if (it == destinations_.end()) return std::optional<DestinationProfile>();
  return std::optional<DestinationProfile>(it->second);
}

Status MemoryScheduleStore::PutDestination(const DestinationProfile& profile) {
  std::lock_guard<std::mutex> lock(mu_);
  destinations_[profile.destination] = profile;
  return Status::Ok();
}

namespace {

using storage_internal::FromRocks;
using storage_internal::RocksDb;

constexpr size_t kJobsCf = 1;
constexpr size_t kDestinationsCf = 2;

class RocksScheduleStore final : public ScheduleStore {
 public:
  explicit RocksScheduleStore(std::unique_ptr<RocksDb> db) : db_(std::move(db)) {}

  Result<std::optional<JobSchedule>> GetJob(const std::string& job_id) override {
    FF_ASSIGN_OR_RETURN(auto text, Get(kJobsCf, job_id));
    if (!text) return std::optional<JobSchedule>();
    FF_ASSIGN_OR_RETURN(JobSchedule s, DecodeJobSchedule(*text));
    return std::optional<JobSchedule>(std::move(s));
  }
  Status PutJob(const JobSchedule& schedule) override {
    return Put(kJobsCf, schedule.job_id, EncodeJobSchedule(schedule));
  }
  Status DeleteJob(const std::string& job_id) override {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    return FromRocks(db_->db()->Delete(wo, db_->cf(kJobsCf), job_id), "modem schedule delete");
  }
  Result<std::optional<DestinationProfile>> GetDestination(const std::string& destination) override {
    FF_ASSIGN_OR_RETURN(auto text, Get(kDestinationsCf, destination));
    if (!text) return std::optional<DestinationProfile>();
    FF_ASSIGN_OR_RETURN(DestinationProfile d, DecodeDestination(*text));
    return std::optional<DestinationProfile>(std::move(d));
  }
  Status PutDestination(const DestinationProfile& profile) override {
    return Put(kDestinationsCf, profile.destination, EncodeDestination(profile));
  }

 private:
  Result<std::optional<std::string>> Get(size_t cf, const std::string& key) {
    std::string value;
    rocksdb::Status st = db_->db()->Get(rocksdb::ReadOptions(), db_->cf(cf), key, &value);
    if (st.IsNotFound()) return std::optional<std::string>();
    FF_RETURN_IF_ERROR(FromRocks(st, "modem schedule get"));
    return std::optional<std::string>(std::move(value));
  }
  Status Put(size_t cf, const std::string& key, const std::string& value) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    return FromRocks(db_->db()->Put(wo, db_->cf(cf), key, value), "modem schedule put");
  }

  std::unique_ptr<RocksDb> db_;
};

}  // namespace

Result<std::unique_ptr<ScheduleStore>> OpenRocksScheduleStore(const std::string& path) {
  rocksdb::DBOptions options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {"jobs", rocksdb::ColumnFamilyOptions()},
      {"destinations", rocksdb::ColumnFamilyOptions()}};
  FF_ASSIGN_OR_RETURN(auto db, RocksDb::Open(path, options, families));
  return std::unique_ptr<ScheduleStore>(std::make_unique<RocksScheduleStore>(std::move(db)));
}

}  // namespace faxflow::modem
