// LossScaling on its own (technique_harness.h): run_start hands the scale to the loop and lets it
// tolerate a non-finite loss; before_optimizer_step unscales finite gradients exactly, grows the
// scale after growth_interval good steps, and on inf/NaN skips the step, backs the scale off and
// prints the first 5 overflows; the summary's loss_scaling; the scaler's state through a checkpoint.
#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "frugal/base/error.h"
#include "frugal/train/techniques/builtin.h"
#include "test_util.h"
#include "unit/train/technique_harness.h"

namespace frugal::train {
namespace {

using testing::TechniqueHarness;

optim::LossScalerOptions options() {
  optim::LossScalerOptions o;
  o.init_scale = 1024;
  o.growth_interval = 2;
  o.growth_factor = 2;
  o.backoff_factor = 0.5;
  return o;
}

// One before_optimizer_step with every gradient = value (skip_step reset first, as the loop does).
void optimizer_step(TechniqueHarness& h, LossScaling& scaling, double gradient) {
  h.state.skip_step = false;
  h.fill_gradients(gradient);
  scaling.on(Event::before_optimizer_step, h.state);
  ++h.state.step;
}

TEST(LossScaling, RunStartSetsTheScaleAndToleratesANonFiniteLoss) {
  TechniqueHarness h;
  LossScaling scaling(options());
  EXPECT_EQ(h.state.loss_scale, 1.0);
  EXPECT_FALSE(h.state.tolerates_nonfinite_loss);
  scaling.on(Event::run_start, h.state);
  EXPECT_EQ(h.state.loss_scale, 1024.0);
  EXPECT_TRUE(h.state.tolerates_nonfinite_loss);
}

TEST(LossScaling, FiniteGradientsAreUnscaledExactlyAndTheScaleGrowsAfterTheInterval) {
  TechniqueHarness h;
  LossScaling scaling(options());
  scaling.on(Event::run_start, h.state);
  // Known gradients times the scale: the unscaled values are the known ones, bit for bit.
  std::vector<Tensor> expected;
  for (size_t p = 0; p < h.state.params.size(); ++p) {
    std::vector<float> values(size_t(h.state.params[p].numel()));
    for (size_t i = 0; i < values.size(); ++i) values[i] = 0.001f * float(int(i + p) % 13 - 6) / 3.0f;
    expected.push_back(Tensor::from_vector(values, h.state.params[p].shape()));
    for (float& v : values) v *= 1024.0f;
    h.state.params[p].set_grad(Tensor::from_vector(values, h.state.params[p].shape()));
  }
  scaling.on(Event::before_optimizer_step, h.state);
  EXPECT_FALSE(h.state.skip_step);
  for (size_t p = 0; p < expected.size(); ++p)
    EXPECT_TRUE(frugal::testing::same_bits(h.state.params[p].grad(), expected[p])) << p;
  EXPECT_EQ(h.state.loss_scale, 1024.0) << "one good step of growth_interval 2";
  optimizer_step(h, scaling, 3.0);
  EXPECT_FALSE(h.state.skip_step);
  EXPECT_EQ(h.state.loss_scale, 2048.0) << "grown after 2 good steps";
  EXPECT_EQ(h.state.params[0].grad().to_vector<float>()[0], 3.0f / 1024.0f) << "unscaled by the scale it was made with";
  EXPECT_TRUE(h.lines_starting("fp16").empty());
}

TEST(LossScaling, AnInfGradientSkipsTheStepBacksOffAndPrintsAtMostFiveLines) {
  TechniqueHarness h;
  LossScaling scaling(options());
  scaling.on(Event::run_start, h.state);
  optimizer_step(h, scaling, 1.0);  // growth tracker at 1
  h.fill_gradients(1.0);
  std::vector<float> grad = h.state.params[1].grad().to_vector<float>();
  grad[0] = std::numeric_limits<float>::infinity();
  h.state.params[1].set_grad(Tensor::from_vector(grad, h.state.params[1].shape()));
  h.state.skip_step = false;
  scaling.on(Event::before_optimizer_step, h.state);
  EXPECT_TRUE(h.state.skip_step);
  EXPECT_EQ(h.state.loss_scale, 512.0);
  ++h.state.step;
  optimizer_step(h, scaling, 1.0);
  EXPECT_FALSE(h.state.skip_step);
  EXPECT_EQ(h.state.loss_scale, 512.0) << "the overflow restarted the growth tracker";
  for (int i = 0; i < 6; ++i) {
    optimizer_step(h, scaling, NAN);
    EXPECT_TRUE(h.state.skip_step) << i;
  }
  EXPECT_EQ(h.state.loss_scale, 512.0 / 64);

  std::vector<std::string> lines = h.lines_starting("fp16: overflow");
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0], "fp16: overflow at step 2, loss scale now 512; step skipped");
  EXPECT_EQ(lines[1], "fp16: overflow at step 4, loss scale now 256; step skipped");
  EXPECT_EQ(lines[4], "fp16: overflow at step 7, loss scale now 32; step skipped (further overflows are only counted)");

  RunSummary summary = h.end_run(scaling);
  ASSERT_TRUE(summary.loss_scaling.has_value());
  EXPECT_EQ(summary.loss_scaling->final_scale, 8.0);
  EXPECT_EQ(summary.loss_scaling->init_scale, 1024.0);
  EXPECT_EQ(summary.loss_scaling->skipped_steps, 7);
  EXPECT_EQ(summary.loss_scaling->growth_interval, 2);
}

TEST(LossScaling, StateRoundTripsAndTheResumedScalerGoesOnAlike) {
  TechniqueHarness h;
  LossScaling scaling(options());
  scaling.on(Event::run_start, h.state);
  optimizer_step(h, scaling, NAN);  // 512, one skipped
  optimizer_step(h, scaling, 1.0);  // tracker 1
  TechniqueState saved("loss_scaler", "ckpt-2");
  scaling.save_state(saved);
  EXPECT_EQ(saved.real("scale"), 512.0);
  EXPECT_EQ(saved.real("growth_tracker"), 1.0);
  EXPECT_EQ(saved.real("skipped_steps"), 1.0);

  LossScaling resumed(options());
  resumed.load_state(saved);
  TechniqueState again("loss_scaler", "ckpt-2");
  resumed.save_state(again);
  EXPECT_EQ(again.values(), saved.values());

  TechniqueHarness g;
  resumed.on(Event::run_start, g.state);
  EXPECT_EQ(g.state.loss_scale, 512.0) << "the loaded scale, not init_scale";
  optimizer_step(g, resumed, 1.0);
  EXPECT_EQ(g.state.loss_scale, 1024.0) << "the loaded growth tracker completes the interval";
  optimizer_step(h, scaling, 1.0);
  EXPECT_EQ(h.state.loss_scale, 1024.0);
  RunSummary a = h.end_run(scaling), b = g.end_run(resumed);
  ASSERT_TRUE(a.loss_scaling && b.loss_scaling);
  EXPECT_EQ(b.loss_scaling->skipped_steps, 1);
  EXPECT_EQ(a.loss_scaling->skipped_steps, b.loss_scaling->skipped_steps);
  EXPECT_EQ(a.loss_scaling->final_scale, b.loss_scaling->final_scale);
}

TEST(LossScaling, AnEmptyOrInvalidStateIsAnInputErrorNamingTheTechnique) {
  LossScaling scaling(options());
  EXPECT_INPUT_ERROR(scaling.load_state(TechniqueState("loss_scaler", "ckpt-9.fck")), "ckpt-9.fck",
                     "technique 'loss_scaler'", "missing");

  TechniqueState negative("loss_scaler", "ckpt-9.fck");
  negative.put("scale", -1.0);
  negative.put("growth_tracker", int64_t(0));
  negative.put("skipped_steps", int64_t(0));
  EXPECT_INPUT_ERROR(scaling.load_state(negative), "ckpt-9.fck", "technique 'loss_scaler'", "scale");

  TechniqueState incomplete("loss_scaler", "ckpt-9.fck");
  incomplete.put("scale", 8.0);
  EXPECT_INPUT_ERROR(scaling.load_state(incomplete), "technique 'loss_scaler'", "growth_tracker");

  TechniqueState text("loss_scaler", "ckpt-9.fck");
  text.put_text("scale", "big");
  text.put("growth_tracker", int64_t(0));
  text.put("skipped_steps", int64_t(0));
  EXPECT_INPUT_ERROR(scaling.load_state(text), "ckpt-9.fck", "technique 'loss_scaler'", "scale");
}

}  // namespace
}  // namespace frugal::train
