// TimeLimit on its own (technique_harness.h): a stop (completed, time_limit, no checkpoint) once the
// run's wall time, earlier processes included, is past train.max_minutes, only while the run goes
// on: not at its last step, and not over a stop another technique asked for.
#include <gtest/gtest.h>

#include "frugal/train/techniques/builtin.h"
#include "unit/train/technique_harness.h"

namespace frugal::train {
namespace {

using testing::TechniqueHarness;

TEST(TimeLimit, StopsOncePastTheLimitWhileTheRunGoesOn) {
  TechniqueHarness h;  // 12 steps
  h.carry_wall_seconds(61);
  TimeLimit limit(1.0);
  h.end_step(limit, 5);
  ASSERT_TRUE(h.state.stop);
  EXPECT_EQ(h.state.stop->status, "completed");
  EXPECT_EQ(h.state.stop->reason, "time_limit");
  EXPECT_EQ(h.state.stop->exit_code, 0);
  EXPECT_FALSE(h.state.stop->checkpoint);
  EXPECT_TRUE(h.state.stop->message.empty());
}

TEST(TimeLimit, NothingWithinTheLimit) {
  TechniqueHarness h;
  h.carry_wall_seconds(50);  // the test itself takes well under the 10 s left
  TimeLimit limit(1.0);
  for (int64_t step = 1; step < 12; ++step) h.end_step(limit, step);
  EXPECT_FALSE(h.state.stop);
}

TEST(TimeLimit, NothingAtTheLastStepOrOverAnotherStop) {
  TechniqueHarness h;
  h.carry_wall_seconds(600);
  TimeLimit limit(1.0);
  h.end_step(limit, 12);  // the last: the run ends anyway
  EXPECT_FALSE(h.state.stop);
  h.state.stop = StopRequest{"preempted", "preempted", 75, true, "m"};
  h.end_step(limit, 7);
  ASSERT_TRUE(h.state.stop);
  EXPECT_EQ(h.state.stop->reason, "preempted");
  EXPECT_EQ(h.state.stop->exit_code, 75);
}

}  // namespace
}  // namespace frugal::train
