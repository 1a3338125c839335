// Budgets: each threshold warns once, a jump reports only the highest threshold crossed, the
// forecast warns early (and only after enough progress), limits are independent, bad limits are
// InputErrors naming the key.
#include "frugal/cost/budget.h"

#include <gtest/gtest.h>

#include "frugal/base/error.h"

namespace frugal::cost {
namespace {

BudgetTotals usd(double value) {
  BudgetTotals t;
  t.usd = value;
  return t;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(Budget, ThresholdsFireOnceEach) {
  BudgetLimits limits;
  limits.usd = 1.0;
  Budget budget(limits);
  EXPECT_TRUE(budget.update(usd(0.3), 0.7).empty());  // on course for 0.43: fine
  auto at50 = budget.update(usd(0.5), 0.75);
  ASSERT_EQ(at50.size(), 1u);
  EXPECT_EQ(at50[0].kind, BudgetEvent::Kind::threshold);
  EXPECT_EQ(at50[0].limit, "max_usd");
  EXPECT_DOUBLE_EQ(at50[0].threshold, 0.5);
  EXPECT_DOUBLE_EQ(at50[0].value, 0.5);
  EXPECT_NEAR(at50[0].forecast, 0.5 / 0.75, 1e-12);
  EXPECT_EQ(at50[0].message, "budget: 50% of max_usd = $1.00 used ($0.50); forecast $0.67 at the end (75% done)");
  EXPECT_TRUE(budget.update(usd(0.55), 0.8).empty());
  EXPECT_TRUE(budget.update(usd(0.6), 0.85).empty());
  auto at80 = budget.update(usd(0.8), 0.9);
  ASSERT_EQ(at80.size(), 1u);
  EXPECT_DOUBLE_EQ(at80[0].threshold, 0.8);
  EXPECT_TRUE(budget.update(usd(0.9), 0.95).empty());
  EXPECT_FALSE(budget.exceeded());
  auto at100 = budget.update(usd(1.0), 0.99);
  ASSERT_EQ(at100.size(), 1u);
  EXPECT_DOUBLE_EQ(at100[0].threshold, 1.0);
  EXPECT_TRUE(budget.exceeded());
  EXPECT_EQ(budget.exceeded_message(), "budget exceeded: max_usd = $1.00 reached, now $1.00");
  EXPECT_TRUE(budget.update(usd(1.2), 1.0).empty());
  EXPECT_TRUE(budget.exceeded());
}

TEST(Budget, AJumpReportsOnlyTheHighestThreshold) {
  BudgetLimits limits;
  limits.usd = 0.01;  // a tiny budget: the first step is already over it
  Budget budget(limits);
  auto events = budget.update(usd(0.05), 0.01);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_DOUBLE_EQ(events[0].threshold, 1.0);
  EXPECT_TRUE(budget.exceeded());
  EXPECT_TRUE(contains(budget.exceeded_message(), "max_usd = $0.010 reached, now $0.050"));
  Budget other(limits);
  auto at80 = other.update(usd(0.009), 0.95);  // on course for 0.0095: no forecast warning
  ASSERT_EQ(at80.size(), 1u);  // 50% and 80% crossed at once: one warning, the 80% one
  EXPECT_DOUBLE_EQ(at80[0].threshold, 0.8);
  EXPECT_TRUE(other.update(usd(0.0095), 0.99).empty());  // 50% does not fire later
}

TEST(Budget, ForecastWarnsEarlyAndOnce) {
  BudgetLimits limits;
  limits.usd = 1.0;
  Budget budget(limits);
  // 2% done: too early for a rate (forecast would be 2 USD), so nothing yet.
  EXPECT_TRUE(budget.update(usd(0.04), 0.02).empty());
  auto events = budget.update(usd(0.2), 0.1);  // on course for 2 USD, at 20% of the limit
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, BudgetEvent::Kind::forecast);
  EXPECT_NEAR(events[0].forecast, 2.0, 1e-12);
  EXPECT_EQ(events[0].message,
            "budget forecast: at the current rate the run ends at $2.00, over max_usd = $1.00 (now $0.20 at 10% done)");
  EXPECT_FALSE(budget.exceeded());
  EXPECT_TRUE(budget.update(usd(0.3), 0.15).empty());  // still over, not repeated
  auto half = budget.update(usd(0.5), 0.25);
  ASSERT_EQ(half.size(), 1u);
  EXPECT_EQ(half[0].kind, BudgetEvent::Kind::threshold);
}

TEST(Budget, NoForecastWhenOnCourseOrProgressUnknown) {
  BudgetLimits limits;
  limits.hours = 2.0;
  Budget budget(limits);
  BudgetTotals t;
  t.hours = 0.5;
  EXPECT_TRUE(budget.update(t, 0.5).empty());  // ends at 1 h
  t.hours = 0.9;
  EXPECT_TRUE(budget.update(t, 0.0).empty());  // progress unknown: thresholds only
  t.hours = 1.0;
  auto events = budget.update(t, -1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].message, "budget: 50% of max_hours = 2 h 00 min used (1 h 00 min)");
}

TEST(Budget, LimitsAreIndependent) {
  BudgetLimits limits;
  limits.usd = 10;
  limits.kwh = 1;
  limits.co2_kg = 0.5;
  Budget budget(limits);
  BudgetTotals t;
  t.usd = 1, t.kwh = 0.85, t.co2_kg = 0.26;
  auto events = budget.update(t, 0.9);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].limit, "max_kwh");
  EXPECT_DOUBLE_EQ(events[0].threshold, 0.8);
  EXPECT_EQ(events[1].limit, "max_co2_kg");
  EXPECT_DOUBLE_EQ(events[1].threshold, 0.5);
  EXPECT_TRUE(contains(events[1].message, "of max_co2_kg = 500 g CO2e used (260 g CO2e)"));
  t.kwh = 1.0;
  events = budget.update(t, 0.95);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].limit, "max_kwh");
  EXPECT_TRUE(budget.exceeded());
  EXPECT_TRUE(contains(budget.exceeded_message(), "max_kwh = 1.0 kWh reached"));
}

TEST(Budget, BadLimitsNameTheKey) {
  BudgetLimits limits;
  limits.kwh = -1;
  try {
    Budget b(limits);
    ADD_FAILURE();
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "[budget] max_kwh = -1: expected a number > 0");
  }
  BudgetLimits zero;
  zero.usd = 0;
  EXPECT_THROW(Budget{zero}, InputError);
  BudgetLimits none;
  EXPECT_TRUE(none.empty());
  Budget unlimited(none);
  EXPECT_TRUE(unlimited.update(usd(1e9), 0.5).empty());
  EXPECT_FALSE(unlimited.exceeded());
}

TEST(Budget, FiredWarningsTravelToAResumedRunUnlessTheLimitChanged) {
  BudgetLimits limits;
  limits.usd = 1.0;
  limits.kwh = 2.0;
  Budget before(limits);
  ASSERT_EQ(before.update(usd(0.85), 0.9).size(), 1u);  // 80% of max_usd, on course for 0.94
  std::vector<Budget::Fired> fired = before.fired();

  Budget same(limits);
  same.restore_fired(fired);
  EXPECT_TRUE(same.update(usd(0.86), 0.92).empty()) << "the 80% warning fired before the checkpoint";
  EXPECT_EQ(same.update(usd(1.0), 0.95).size(), 1u);
  EXPECT_TRUE(same.exceeded());

  // Stopped at the limit and resumed with the same limit: still over it.
  Budget stopped(limits);
  stopped.restore_fired(same.fired());
  EXPECT_TRUE(stopped.exceeded());
  EXPECT_TRUE(contains(stopped.exceeded_message(), "max_usd"));

  // Resumed with a larger budget: its warnings start afresh.
  BudgetLimits raised = limits;
  raised.usd = 4.0;
  Budget larger(raised);
  larger.restore_fired(same.fired());
  EXPECT_FALSE(larger.exceeded());
  auto events = larger.update(usd(2.1), 0.7);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_DOUBLE_EQ(events[0].threshold, 0.5);
}

}  // namespace
}  // namespace frugal::cost
