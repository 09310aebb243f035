#include "topics/claims/member_table.h"

namespace faxflow::claims {

MemberTable::MemberTable(Clock& clock, std::chrono::milliseconds expiry,
                         std::chrono::milliseconds max_clock_skew)
    : clock_(clock), expiry_(expiry), skew_(max_clock_skew) {}

void MemberTable::Apply(const std::string& worker, const v1::WorkerLoad* load) {
  std::lock_guard lock(mu_);
  if (!load) {
    entries_.erase(worker);
    return;
  }
  auto it = entries_.find(worker);
  if (it != entries_.end() && load->epoch() < it->second.load.epoch()) return;  // older incarnation
  Entry& e = entries_[worker];
  e.load = *load;
  e.heard = clock_.Monotonic();
}

bool MemberTable::IsLive(const Entry& e) const {
  if (clock_.Monotonic() - e.heard > expiry_) return false;
  if (e.load.at_ms() > 0 && clock_.NowMillis() - e.load.at_ms() > (expiry_ + skew_).count()) return false;
  return true;
}

std::vector<Member> MemberTable::Live() const {
  std::lock_guard lock(mu_);
  std::vector<Member> out;
  for (const auto& [id, e] : entries_) {
    if (!IsLive(e)) continue;
    Member m;
    m.id = id;
    m.score = e.load.score();
    m.capacity = e.load.capacity();
    m.owned.assign(e.load.owned_partitions().begin(), e.load.owned_partitions().end());
    m.epoch = e.load.epoch();
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<std::string> MemberTable::Expired() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [id, e] : entries_)
    if (!IsLive(e)) out.push_back(id);
  return out;
}

}  // namespace faxflow::claims
