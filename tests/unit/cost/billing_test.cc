// Dollars: per-second billing with its 60 s minimum, per-hour billing rounding up, spot versus
// on-demand prices, and the pricing/billing words a job file may use.
#include "frugal/cost/billing.h"

#include <gtest/gtest.h>

#include "frugal/base/error.h"
#include "frugal/cost/catalog.h"

namespace frugal::cost {
namespace {

Instance priced(double on_demand, double spot) {
  Instance inst;
  inst.name = "box";
  inst.usd_per_hour = on_demand;
  inst.spot_usd_per_hour = spot;
  return inst;
}

TEST(Billing, PerSecondHasASixtySecondMinimum) {
  EXPECT_DOUBLE_EQ(billed_hours(0, Billing::per_second), 0.0);
  EXPECT_DOUBLE_EQ(billed_hours(1, Billing::per_second), 60.0 / 3600);
  EXPECT_DOUBLE_EQ(billed_hours(59.9, Billing::per_second), 60.0 / 3600);
  EXPECT_DOUBLE_EQ(billed_hours(60, Billing::per_second), 60.0 / 3600);
  EXPECT_DOUBLE_EQ(billed_hours(61.2, Billing::per_second), 62.0 / 3600);  // whole seconds, rounded up
  EXPECT_DOUBLE_EQ(billed_hours(7200, Billing::per_second), 2.0);
}

TEST(Billing, PerHourRoundsUpToWholeHours) {
  EXPECT_DOUBLE_EQ(billed_hours(0, Billing::per_hour), 0.0);
  EXPECT_DOUBLE_EQ(billed_hours(1, Billing::per_hour), 1.0);
  EXPECT_DOUBLE_EQ(billed_hours(3600, Billing::per_hour), 1.0);
  EXPECT_DOUBLE_EQ(billed_hours(3600.5, Billing::per_hour), 2.0);
  EXPECT_DOUBLE_EQ(billed_hours(10000, Billing::per_hour), 3.0);
}

TEST(Billing, DollarsUseTheChosenPrice) {
  Instance inst = priced(3.6, 1.2);
  Figure a = dollars(inst, 1800, Pricing::on_demand, Billing::per_second);
  EXPECT_DOUBLE_EQ(a.value, 1.8);
  EXPECT_EQ(a.source, "catalog");
  EXPECT_DOUBLE_EQ(dollars(inst, 1800, Pricing::spot, Billing::per_second).value, 0.6);
  EXPECT_DOUBLE_EQ(dollars(inst, 1800, Pricing::on_demand, Billing::per_hour).value, 3.6);
  EXPECT_DOUBLE_EQ(dollars(inst, 3601, Pricing::spot, Billing::per_hour).value, 2.4);
  EXPECT_DOUBLE_EQ(dollars(inst, 10, Pricing::on_demand, Billing::per_second).value, 0.06);  // 60 s minimum
  EXPECT_DOUBLE_EQ(price_per_hour(inst, Pricing::spot), 1.2);
  inst.user_keys.insert("spot_usd_per_hour");
  EXPECT_EQ(dollars(inst, 10, Pricing::spot, Billing::per_second).source, "user");
  EXPECT_EQ(dollars(inst, 10, Pricing::on_demand, Billing::per_second).source, "catalog");
}

TEST(Billing, ParsesJobFileWords) {
  EXPECT_EQ(parse_pricing("on-demand"), Pricing::on_demand);
  EXPECT_EQ(parse_pricing("spot"), Pricing::spot);
  EXPECT_EQ(parse_billing("per-second"), Billing::per_second);
  EXPECT_EQ(parse_billing("per-hour"), Billing::per_hour);
  EXPECT_STREQ(pricing_name(Pricing::spot), "spot");
  EXPECT_STREQ(billing_name(Billing::per_hour), "per-hour");
  try {
    parse_pricing("ondemand", "job.toml:7: [cost] pricing");
    ADD_FAILURE();
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "job.toml:7: [cost] pricing = \"ondemand\": expected \"on-demand\" or \"spot\"");
  }
  EXPECT_THROW(parse_billing("hourly"), InputError);
}

}  // namespace
}  // namespace frugal::cost
