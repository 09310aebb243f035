#include "producers/gateway/pricing.h"

#include <cmath>
#include <cstdlib>

namespace faxflow {
namespace {

std::string Trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

std::optional<double> Number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == nullptr || *end != '\0' || !std::isfinite(v) || v < 0) return std::nullopt;
  return v;
}

double Round4(double v) { return std::round(v * 10000.0) / 10000.0; }

}  // namespace

Result<PriceList> PriceList::Parse(const std::string& spec, std::string currency) {
  PriceList out;
  out.currency_ = std::move(currency);
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t comma = spec.find(',', pos);
    if (comma == std::string::npos) comma = spec.size();
    const std::string item = Trim(spec.substr(pos, comma - pos));
    pos = comma + 1;
    if (item.empty()) continue;
    auto bad = [&](const std::string& why) {
      return Status::Permanent(Code::kInvalidArgument,
                               "pricing.rates entry '" + item + "': " + why +
                                   " (expected [tenant@]prefix=per_page/per_minute, e.g. +1=0.01/0.02)");
    };
    Entry e;
    const auto eq = item.find('=');
    if (eq == std::string::npos) return bad("no '='");
    std::string lhs = Trim(item.substr(0, eq));
    const std::string rhs = Trim(item.substr(eq + 1));
    const auto at = lhs.find('@');
    if (at != std::string::npos) {
      e.tenant = Trim(lhs.substr(0, at));
      lhs = Trim(lhs.substr(at + 1));
      if (e.tenant.empty()) return bad("empty tenant before '@'");
    }
    if (lhs != "*") {
      const size_t digits = lhs.rfind('+', 0) == 0 ? 1 : 0;
      if (lhs.size() <= digits || lhs.find_first_not_of("0123456789", digits) != std::string::npos)
        return bad("the prefix is '*' or digits with an optional leading '+'");
      if (digits == 0) lhs = "+" + lhs;
    }
    e.prefix = lhs;
    const auto slash = rhs.find('/');
    const auto page = Number(Trim(rhs.substr(0, slash)));
    const auto minute =
        slash == std::string::npos ? std::optional<double>(0) : Number(Trim(rhs.substr(slash + 1)));
    if (!page || !minute) return bad("prices are non-negative numbers");
    e.rate = Rate{*page, *minute};
    out.entries_.push_back(std::move(e));
  }
  return out;
}

std::optional<Rate> PriceList::Find(const std::string& tenant, const std::string& number) const {
  for (bool own : {true, false}) {
    const Entry* best = nullptr;
    size_t best_len = 0;
    for (const auto& e : entries_) {
      if (own ? e.tenant != tenant : !e.tenant.empty()) continue;
      const size_t len = e.prefix == "*" ? 0 : e.prefix.size();
      if (e.prefix != "*" && number.rfind(e.prefix, 0) != 0) continue;
      if (best == nullptr || len > best_len) {
        best = &e;
        best_len = len;
      }
    }
    if (best != nullptr) return best->rate;
  }
  return std::nullopt;
}

Cost PriceList::Compute(const Rate& rate, int32_t pages_sent, int64_t connected_ms) {
  Cost c;
  c.pages = pages_sent;
  const int64_t seconds = (connected_ms + 999) / 1000;  // per started second
  c.minutes = Round4(static_cast<double>(seconds) / 60.0);
  c.amount = Round4(rate.per_page * pages_sent + rate.per_minute * static_cast<double>(seconds) / 60.0);
  return c;
}

}  // namespace faxflow
