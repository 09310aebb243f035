// Prices (producers/gateway/pricing.h): longest prefix, "*", tenant overrides, per-page and
// per-minute amounts, and refused specs.
#include "producers/gateway/pricing.h"

#include <gtest/gtest.h>

namespace faxflow {
namespace {

TEST(PriceListTest, LongestPrefixTenantOverrideAndAmounts) {
  auto prices = PriceList::Parse("+1=0.01/0.02, +1555=0.03/0, *=0.10/0.10, acme@+1=0.005/0.01", "EUR");
  ASSERT_TRUE(prices.ok()) << prices.status().ToString();
  EXPECT_EQ(prices->currency(), "EUR");
  auto r = prices->Find("other", "+15550100000");
  ASSERT_TRUE(r);
  EXPECT_DOUBLE_EQ(r->per_page, 0.03) << "the longest prefix wins";
  r = prices->Find("other", "+12125550100");
  ASSERT_TRUE(r);
  EXPECT_DOUBLE_EQ(r->per_page, 0.01);
  r = prices->Find("other", "+442071234567");
  ASSERT_TRUE(r);
  EXPECT_DOUBLE_EQ(r->per_page, 0.10) << "* matches the rest";
  r = prices->Find("acme", "+15550100000");
  ASSERT_TRUE(r);
  EXPECT_DOUBLE_EQ(r->per_page, 0.005) << "a tenant's own entries come first";
  r = prices->Find("acme", "+442071234567");
  ASSERT_TRUE(r);
  EXPECT_DOUBLE_EQ(r->per_page, 0.10) << "then the general ones";

  const Cost c = PriceList::Compute(Rate{0.01, 0.02}, 4, 90'500);  // 4 pages, 91 started seconds
  EXPECT_EQ(c.pages, 4);
  EXPECT_DOUBLE_EQ(c.minutes, 1.5167);
  EXPECT_DOUBLE_EQ(c.amount, 0.0703);  // 0.04 + 0.02 * 91/60 = 0.070333
  EXPECT_DOUBLE_EQ(PriceList::Compute(Rate{0.01, 0.02}, 0, 0).amount, 0);
}

TEST(PriceListTest, EmptyAndUnpricedNumbersAndBadSpecs) {
  auto none = PriceList::Parse("");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  auto only_us = PriceList::Parse("1=0.01");  // '+' optional, per-minute optional
  ASSERT_TRUE(only_us.ok()) << only_us.status().ToString();
  EXPECT_FALSE(only_us->Find("t", "+442071234567")) << "no matching entry: no price";
  ASSERT_TRUE(only_us->Find("t", "+15550100000"));
  for (const char* bad : {"+1", "+1=abc", "+1=-1/0", "x=0.1", "@+1=0.1", "+1a=0.1/0"})
    EXPECT_FALSE(PriceList::Parse(bad).ok()) << bad;
}

}  // namespace
}  // namespace faxflow
