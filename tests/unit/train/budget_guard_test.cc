// BudgetGuard on its own (technique_harness.h): at a limit before the last step, a stop with a
// checkpoint and exit 3 (not at the last step, not over another stop); every warning a "budget" row
// in metrics.jsonl (not in the run store) and a line; warnings that fired before a checkpoint stay
// fired in a fresh guard that loads its state; the summary's budget.
#include <gtest/gtest.h>

#include "frugal/train/techniques/builtin.h"
#include "unit/train/technique_harness.h"

namespace frugal::train {
namespace {

using testing::TechniqueHarness;

cost::BudgetLimits hours(double limit) {
  cost::BudgetLimits limits;
  limits.hours = limit;
  return limits;
}

TEST(BudgetGuard, AtALimitBeforeTheLastStepStopsWithACheckpointAndExit3) {
  TechniqueHarness h;  // 12 steps
  BudgetGuard guard(hours(1e-9));  // 3.6 microseconds: over at the first step
  h.end_step(guard, 5);
  ASSERT_TRUE(h.state.stop);
  const StopRequest stop = *h.state.stop;
  EXPECT_EQ(stop.status, "stopped_budget");
  EXPECT_EQ(stop.reason, "budget");
  EXPECT_EQ(stop.exit_code, kExitBudget);
  EXPECT_EQ(stop.exit_code, 3);
  EXPECT_TRUE(stop.checkpoint);

  RunSummary summary = h.end_run(guard);
  ASSERT_TRUE(summary.budget);
  EXPECT_EQ(summary.budget->max_hours, std::optional<double>(1e-9));
  EXPECT_FALSE(summary.budget->max_usd || summary.budget->max_kwh || summary.budget->max_co2_kg);
  ASSERT_EQ(summary.budget->exceeded.rfind("budget exceeded: max_hours = 3.6 us reached, now ", 0), 0u)
      << summary.budget->exceeded;
  EXPECT_EQ(stop.message, summary.budget->exceeded +
                              "; checkpoint written at step 5; stopping (exit 3); continue with --resume auto and a "
                              "larger budget");

  // The warning: a row of metrics.jsonl (and nothing else there), a line, nothing in the run store.
  std::vector<nlohmann::json> rows = h.rows();
  ASSERT_EQ(rows.size(), 1u);
  const nlohmann::json& row = rows[0];
  EXPECT_EQ(row.at("kind"), "budget");
  EXPECT_EQ(row.at("step").get<int64_t>(), 5);
  EXPECT_EQ(row.at("event"), "threshold");
  EXPECT_EQ(row.at("limit"), "max_hours");
  EXPECT_EQ(row.at("threshold").get<double>(), 1.0) << "only the highest threshold crossed";
  EXPECT_EQ(row.at("message").get<std::string>(), summary.budget->exceeded);
  const double value = row.at("value").get<double>();
  EXPECT_GT(value, 1e-9);
  EXPECT_DOUBLE_EQ(row.at("forecast").get<double>(), value / (5.0 / 12.0));
  EXPECT_GE(row.at("time_s").get<double>(), value * 3600 * (1 - 1e-9));
  EXPECT_EQ(h.lines_starting("budget exceeded: max_hours").size(), 1u);
  EXPECT_TRUE(h.lines_starting("budget: budget").empty()) << "one prefix, not two";
  EXPECT_TRUE(h.store.metrics(h.run_id).empty());
}

TEST(BudgetGuard, NoStopAtTheLastStepOrOverAnotherStopButTheWarningStillFires) {
  {
    TechniqueHarness h;
    BudgetGuard guard(hours(1e-9));
    h.end_step(guard, 12);
    EXPECT_FALSE(h.state.stop) << "the run is done anyway";
    EXPECT_EQ(h.rows_of_kind("budget").size(), 1u);
    RunSummary summary = h.end_run(guard);
    ASSERT_TRUE(summary.budget);
    EXPECT_FALSE(summary.budget->exceeded.empty());
  }
  TechniqueHarness h;
  BudgetGuard guard(hours(1e-9));
  h.state.stop = StopRequest{"completed", "time_limit", 0, false, ""};
  h.end_step(guard, 6);
  EXPECT_EQ(h.state.stop->reason, "time_limit");
  EXPECT_EQ(h.rows_of_kind("budget").size(), 1u);
}

TEST(BudgetGuard, WarningsFiredBeforeACheckpointDoNotRepeatAfterItsStateIsLoaded) {
  TechniqueHarness h;
  h.carry_wall_seconds(1900);  // 0.53 h of a 1 h budget at 1/12 of the run: 50% and a forecast
  BudgetGuard guard(hours(1));
  h.end_step(guard, 1);
  std::vector<nlohmann::json> rows = h.rows_of_kind("budget");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].at("event"), "threshold");
  EXPECT_EQ(rows[0].at("threshold").get<double>(), 0.5);
  EXPECT_EQ(rows[1].at("event"), "forecast");
  EXPECT_FALSE(h.state.stop);
  EXPECT_EQ(h.end_run(guard).budget->exceeded, "");
  h.end_step(guard, 2);
  EXPECT_EQ(h.rows_of_kind("budget").size(), 2u) << "each warning once";

  TechniqueState saved("budget", "ckpt-2");
  guard.save_state(saved);
  EXPECT_EQ(saved.real("max_hours.limit"), 1.0);
  EXPECT_EQ(saved.integer("max_hours.thresholds_done"), 1);
  EXPECT_EQ(saved.integer("max_hours.forecast_done"), 1);

  BudgetGuard resumed(hours(1));
  resumed.load_state(saved);
  h.end_step(resumed, 3);
  EXPECT_EQ(h.rows_of_kind("budget").size(), 2u) << "the resumed guard repeats no warning";
  TechniqueState again("budget", "ckpt-3");
  resumed.save_state(again);
  EXPECT_EQ(again.values(), saved.values());

  BudgetGuard forgetful(hours(1));  // the same guard without the checkpoint's state warns again
  h.end_step(forgetful, 3);
  EXPECT_EQ(h.rows_of_kind("budget").size(), 4u);
}

}  // namespace
}  // namespace frugal::train
