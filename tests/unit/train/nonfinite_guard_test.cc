// NonfiniteGuard on its own (technique_harness.h): a NaN or inf loss of any micro-batch, or a
// non-finite gradient norm from clipping, skips the step and asks for a stop with a checkpoint and
// exit 4 naming the step; finite steps pass untouched; with a loss scaler it stays out of the way.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "frugal/train/techniques/builtin.h"
#include "unit/train/technique_harness.h"

namespace frugal::train {
namespace {

using testing::TechniqueHarness;

// One step of `losses` micro-batches through the guard's events; true if the step was skipped.
bool run_step(NonfiniteGuard& guard, TrainState& state, std::vector<double> losses) {
  for (double loss : losses) {
    state.loss_value = loss;
    guard.on(Event::after_backward, state);
  }
  state.skip_step = false;
  guard.on(Event::before_optimizer_step, state);
  state.grad_norm.reset();
  return state.skip_step;
}

TEST(NonfiniteGuard, FiniteStepsPass) {
  TechniqueHarness h;
  NonfiniteGuard guard;
  guard.on(Event::run_start, h.state);
  EXPECT_TRUE(h.state.tolerates_nonfinite_loss);  // the loop leaves a NaN loss to the guard
  for (int64_t step = 0; step < 3; ++step) {
    h.state.step = step;
    EXPECT_FALSE(run_step(guard, h.state, {2.3, 1e30}));
  }
  h.state.grad_norm = 1e30;
  EXPECT_FALSE(run_step(guard, h.state, {1.0}));
  EXPECT_FALSE(h.state.stop);
}

TEST(NonfiniteGuard, NonFiniteLossStopsBeforeTheStepWithACheckpoint) {
  for (double bad : {std::nan(""), std::numeric_limits<double>::infinity()}) {
    SCOPED_TRACE(bad);
    TechniqueHarness h;
    NonfiniteGuard guard;
    guard.on(Event::run_start, h.state);
    h.state.step = 6;
    EXPECT_TRUE(run_step(guard, h.state, {2.0, bad, 2.0}));  // the second of 3 micro-batches
    ASSERT_TRUE(h.state.stop);
    EXPECT_EQ(h.state.stop->status, "stopped_nonfinite");
    EXPECT_EQ(h.state.stop->reason, "nonfinite");
    EXPECT_EQ(h.state.stop->exit_code, kExitNonfinite);
    EXPECT_EQ(kExitNonfinite, 4);
    EXPECT_TRUE(h.state.stop->checkpoint);
    EXPECT_NE(h.state.stop->message.find("non-finite loss"), std::string::npos) << h.state.stop->message;
    EXPECT_NE(h.state.stop->message.find(std::isnan(bad) ? "nan" : "inf"), std::string::npos) << h.state.stop->message;
    EXPECT_NE(h.state.stop->message.find("at step 7"), std::string::npos) << h.state.stop->message;
    EXPECT_NE(h.state.stop->message.find("exit 4"), std::string::npos) << h.state.stop->message;
  }
}

TEST(NonfiniteGuard, NonFiniteGradientNormFromClippingStops) {
  TechniqueHarness h;
  NonfiniteGuard guard;
  guard.on(Event::run_start, h.state);
  h.state.grad_norm = std::numeric_limits<double>::infinity();
  EXPECT_TRUE(run_step(guard, h.state, {1.5}));
  ASSERT_TRUE(h.state.stop);
  EXPECT_NE(h.state.stop->message.find("gradient norm inf at step 1"), std::string::npos) << h.state.stop->message;
}

TEST(NonfiniteGuard, PassiveWhenALossScalerOwnsNonFiniteSteps) {
  TechniqueHarness h;
  h.state.tolerates_nonfinite_loss = true;  // LossScaling's run_start, which comes first
  NonfiniteGuard guard;
  guard.on(Event::run_start, h.state);
  EXPECT_FALSE(run_step(guard, h.state, {std::nan("")}));
  EXPECT_FALSE(h.state.stop);
}

}  // namespace
}  // namespace frugal::train
