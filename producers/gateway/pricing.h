// Prices of fax transmission, for the cost shown by GET /v1/faxes/{id} (docs/api.md "Cost").
//
// A price list is a comma-separated list of rates `[tenant@]prefix=per_page/per_minute` (config
// `pricing.rates`), for example "+1=0.01/0.02,+44=0.05/0,*=0.10/0.10,acme@+1=0.005/0.01": a
// recipient's rate is the entry with the longest prefix of its E.164 number ("*" matches every
// number), taken from the tenant's own entries when any of them matches, else from the entries
// without a tenant. No matching entry, or an empty list: the cost is unknown (not shown).
//
// Cost of one recipient = per_page x pages the far end confirmed (pages_sent) + per_minute x the
// connected time of all its attempts (sum of each call's duration from the transmission report,
// billed per second). Amounts are rounded to 1/10000 of the currency unit. Immutable after Parse:
// thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace faxflow {

struct Rate {
  double per_page = 0;
  double per_minute = 0;
};

struct Cost {
  double amount = 0;
  int32_t pages = 0;
  double minutes = 0;
};

class PriceList {
 public:
  static Result<PriceList> Parse(const std::string& spec, std::string currency = "USD");

  bool empty() const { return entries_.empty(); }
  const std::string& currency() const { return currency_; }
  std::optional<Rate> Find(const std::string& tenant, const std::string& number) const;
  // per_page x pages + per_minute x seconds / 60, rounded to 1/10000.
  static Cost Compute(const Rate& rate, int32_t pages_sent, int64_t connected_ms);

 private:
  struct Entry {
    std::string tenant;  // empty: every tenant
    std::string prefix;  // "*" or digits with an optional leading '+'
    Rate rate;
  };
  std::vector<Entry> entries_;
  std::string currency_ = "USD";
};

}  // namespace faxflow
