// The end-of-run forecast: spent + remaining steps at the recent rate, with the method stated.
#include "frugal/cost/forecast.h"

#include <gtest/gtest.h>

namespace frugal::cost {
namespace {

ForecastTotals totals(double usd, double wall_s) { return {usd, usd * 2, usd * 3, wall_s}; }

TEST(CostForecast, NothingUntilAStepIsDoneOrWithoutALength) {
  CostForecast f;
  EXPECT_FALSE(f.at_end(100));
  f.observe(0, totals(1, 10));  // start-up cost, no step yet
  EXPECT_FALSE(f.at_end(100));
  f.observe(10, totals(2, 20));
  EXPECT_FALSE(f.at_end(0)) << "run length unknown";
}

TEST(CostForecast, OneObservationUsesTheWholeRunsAverage) {
  CostForecast f;
  f.observe(25, totals(1.0, 50));
  std::optional<RunForecast> r = f.at_end(100);
  ASSERT_TRUE(r);
  EXPECT_DOUBLE_EQ(r->at_end.usd, 4.0);  // 1 + 75 x 1/25
  EXPECT_DOUBLE_EQ(r->at_end.kwh, 8.0);
  EXPECT_DOUBLE_EQ(r->at_end.co2_kg, 12.0);
  EXPECT_DOUBLE_EQ(r->at_end.wall_s, 200.0);
  EXPECT_EQ(r->method, "spent so far + 75 remaining steps at the cost per step of the run so far (25 steps)");
}

TEST(CostForecast, RecentRateLeavesStartUpCostsOut) {
  // A start-up of $5 before step 10, then $0.1 per step: the linear forecast (spent / fraction done)
  // would say (5 + 1) / 0.2 = $30 at step 20 of 100; the recent rate says 6 + 80 x 0.1 = $14.
  CostForecast f(3);
  f.observe(10, totals(5.0, 100));
  f.observe(20, totals(6.0, 110));
  std::optional<RunForecast> r = f.at_end(100);
  ASSERT_TRUE(r);
  EXPECT_NEAR(r->at_end.usd, 14.0, 1e-12);
  EXPECT_NEAR(r->at_end.wall_s, 190.0, 1e-12);
  EXPECT_EQ(r->method, "spent so far + 80 remaining steps at the cost per step of steps 10-20 (recent rate)");
  // The window slides: after 3 more points only the last 3 count (steps 30-50, $0.2 per step).
  f.observe(30, totals(7.0, 120));
  f.observe(40, totals(9.0, 130));
  f.observe(50, totals(11.0, 140));
  r = f.at_end(100);
  ASSERT_TRUE(r);
  EXPECT_NEAR(r->at_end.usd, 11.0 + 50 * 0.2, 1e-12);
  EXPECT_NE(r->method.find("steps 30-50"), std::string::npos) << r->method;
}

TEST(CostForecast, SameStepTakesTheNewestTotalsAndTheEndIsTheSpent) {
  CostForecast f;
  f.observe(10, totals(1.0, 10));
  f.observe(20, totals(2.0, 20));
  f.observe(20, totals(2.5, 25));  // the evaluation row of step 20
  std::optional<RunForecast> r = f.at_end(20);
  ASSERT_TRUE(r);
  EXPECT_DOUBLE_EQ(r->at_end.usd, 2.5) << "at the last step the forecast is what was spent";
  EXPECT_DOUBLE_EQ(r->at_end.wall_s, 25.0);
}

}  // namespace
}  // namespace frugal::cost
