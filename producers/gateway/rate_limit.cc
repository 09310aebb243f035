#include "producers/gateway/rate_limit.h"

#include <algorithm>
#include <cmath>

namespace faxflow {

std::optional<TenantLimiter::Refusal> TenantLimiter::Admit(const std::string& tenant,
                                                           std::optional<Permit>& permit) {
  std::lock_guard lock(mu_);
  Bucket& b = buckets_[tenant];
  const auto now = clock_.Monotonic();
  if (options_.per_second > 0) {
    if (!b.init) {
      b.tokens = options_.burst;
      b.init = true;
    } else {
      const double elapsed = std::chrono::duration<double>(now - b.last).count();
      b.tokens = std::min(options_.burst, b.tokens + elapsed * options_.per_second);
    }
    b.last = now;
    if (b.tokens < 1.0) {
      const double wait = (1.0 - b.tokens) / options_.per_second;
      return Refusal{"rate", std::max(1, static_cast<int>(std::ceil(wait)))};
    }
  }
  if (options_.max_concurrent > 0 && b.in_flight >= options_.max_concurrent) return Refusal{"concurrency", 1};
  if (options_.per_second > 0) b.tokens -= 1.0;
  ++b.in_flight;
  permit.emplace(this, tenant);
  return std::nullopt;
}

void TenantLimiter::Done(const std::string& tenant) {
  std::lock_guard lock(mu_);
  auto it = buckets_.find(tenant);
  if (it != buckets_.end() && it->second.in_flight > 0) --it->second.in_flight;
}

}  // namespace faxflow
