// GradientClipping on its own (technique_harness.h): gradients above the max norm are scaled as
// optim::clip_grad_norm documents (by max_norm / (norm + 1e-6)), gradients within it and those of a
// skipped step are left bit for bit.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "frugal/train/techniques/builtin.h"
#include "test_util.h"
#include "unit/train/technique_harness.h"

namespace frugal::train {
namespace {

using testing::TechniqueHarness;

// Known gradients: parameter p, element i holds ((i * 7 + p * 3) % 11 - 5) / 4 (exact in f32).
void set_known_gradients(TechniqueHarness& h) {
  for (size_t p = 0; p < h.state.params.size(); ++p) {
    std::vector<float> values(size_t(h.state.params[p].numel()));
    for (size_t i = 0; i < values.size(); ++i) values[i] = float(int((i * 7 + p * 3) % 11) - 5) / 4.0f;
    h.state.params[p].set_grad(Tensor::from_vector(values, h.state.params[p].shape()));
  }
}

std::vector<Tensor> gradients(const TechniqueHarness& h) {
  std::vector<Tensor> out;
  for (const Tensor& p : h.state.params) out.push_back(p.grad().clone());
  return out;
}

double global_norm(const std::vector<Tensor>& grads) {
  double sum = 0;
  for (const Tensor& g : grads)
    for (double v : g.to_vector<double>()) sum += v * v;
  return std::sqrt(sum);
}

TEST(GradientClipping, ScalesGradientsAboveTheMaxNormToIt) {
  TechniqueHarness h;
  set_known_gradients(h);
  const std::vector<Tensor> before = gradients(h);
  const double norm = global_norm(before);
  ASSERT_GT(norm, 4.0);
  const double max_norm = norm / 4;
  GradientClipping clip(max_norm);
  clip.on(Event::before_optimizer_step, h.state);

  const double factor = max_norm / (norm + 1e-6);  // clip_grad_norm's documented scale
  const std::vector<Tensor> after = gradients(h);
  for (size_t p = 0; p < after.size(); ++p) {
    SCOPED_TRACE("parameter " + std::to_string(p));
    std::vector<double> expected = before[p].to_vector<double>();
    for (double& v : expected) v *= factor;
    EXPECT_TRUE(frugal::testing::all_close(after[p], Tensor::from_vector(expected, before[p].shape()).to(DType::f32),
                                           0, 1e-6));
  }
  EXPECT_NEAR(global_norm(after), max_norm, 1e-5 * max_norm);
  EXPECT_FALSE(h.state.skip_step);
}

TEST(GradientClipping, LeavesGradientsWithinTheMaxNormBitForBit) {
  TechniqueHarness h;
  set_known_gradients(h);
  const std::vector<Tensor> before = gradients(h);
  GradientClipping clip(2 * global_norm(before));
  clip.on(Event::before_optimizer_step, h.state);
  const std::vector<Tensor> after = gradients(h);
  for (size_t p = 0; p < after.size(); ++p) EXPECT_TRUE(frugal::testing::same_bits(after[p], before[p])) << p;
}

TEST(GradientClipping, LeavesTheGradientsOfASkippedStepAlone) {
  TechniqueHarness h;
  set_known_gradients(h);
  const std::vector<Tensor> before = gradients(h);
  h.state.skip_step = true;  // e.g. the fp16 loss scaler found inf/NaN
  GradientClipping clip(global_norm(before) / 100);
  clip.on(Event::before_optimizer_step, h.state);
  const std::vector<Tensor> after = gradients(h);
  for (size_t p = 0; p < after.size(); ++p) EXPECT_TRUE(frugal::testing::same_bits(after[p], before[p])) << p;
  EXPECT_TRUE(h.state.skip_step);
}

}  // namespace
}  // namespace frugal::train
