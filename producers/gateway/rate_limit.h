// Per-tenant admission: a token bucket (sustained requests per second with a burst) and a cap on
// requests in progress at once (Stripe's request-rate and concurrency limiters). Refusals carry
// the seconds after which a retry may pass (the Retry-After header of the 429).
//
// Limits are per gateway node. With owner routing (owner.h) every routed request of a tenant is
// admitted once, by its owner, so those limits hold for the cluster; submissions are not routed
// (a tenant submitting to N nodes gets up to N times the rate). Threading: thread-safe; Permit is RAII.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "common/clock.h"

namespace faxflow {

struct RateLimitOptions {
  double per_second = 20;       // sustained rate; <= 0 disables the rate limit
  double burst = 40;            // bucket size
  int64_t max_concurrent = 10;  // requests in progress; <= 0 disables the cap
};

class TenantLimiter {
 public:
  class Permit {
   public:
    Permit(TenantLimiter* owner, std::string tenant) : owner_(owner), tenant_(std::move(tenant)) {}
    Permit(Permit&& o) noexcept : owner_(o.owner_), tenant_(std::move(o.tenant_)) { o.owner_ = nullptr; }
    Permit& operator=(Permit&&) = delete;
    Permit(const Permit&) = delete;
    ~Permit() {
      if (owner_ != nullptr) owner_->Done(tenant_);
    }

   private:
    TenantLimiter* owner_ = nullptr;
    std::string tenant_;
  };

  struct Refusal {
    std::string reason;       // "rate" or "concurrency"
    int retry_after_seconds;  // >= 1
  };

  TenantLimiter(RateLimitOptions options, Clock& clock) : options_(options), clock_(clock) {}

  // A permit, or why not.
  std::optional<Refusal> Admit(const std::string& tenant, std::optional<Permit>& permit);

 private:
  struct Bucket {
    double tokens = 0;
    Clock::MonoTime last{};
    bool init = false;
    int64_t in_flight = 0;
  };
  void Done(const std::string& tenant);

  RateLimitOptions options_;
  Clock& clock_;
  std::mutex mu_;
  std::map<std::string, Bucket> buckets_;
};

}  // namespace faxflow
