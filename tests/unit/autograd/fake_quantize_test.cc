// fake_quantize: values on the int8 grid (ties to even, clipped), per tensor and per channel; the
// straight-through gradient (1 inside the clipping range, bounds included, 0 outside); f64 as f32.
#include <gtest/gtest.h>

#include <vector>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/fake_quantize.h"
#include "frugal/autograd/ops.h"

namespace frugal {
namespace {

TEST(FakeQuantize, RoundsToTheGridAndClips) {
  // scale 0.25 (exact in binary): 0.125, 0.375 and 0.625 are ties at 0.5, 1.5 and 2.5 steps
  Tensor x = Tensor::from_vector<float>({0.0f, 0.125f, 0.375f, 0.625f, -0.3f, 40.0f, -40.0f, 31.75f}, {8});
  Tensor y = fake_quantize(x, Tensor::full({1}, 0.25), -127, 127);
  const std::vector<float> expected = {0.0f, 0.0f, 0.5f, 0.5f, -0.25f, 31.75f, -31.75f, 31.75f};
  EXPECT_EQ(y.to_vector<float>(), expected);
  Tensor u = fake_quantize(x, Tensor::full({1}, 0.25), 0, 255);  // unsigned: negatives clip to 0
  EXPECT_EQ(u.to_vector<float>()[4], 0.0f);
  EXPECT_EQ(u.to_vector<float>()[5], 40.0f);
}

TEST(FakeQuantize, RoundTripErrorIsWithinHalfAStepInsideTheRange) {
  Tensor x = Tensor::empty({1000});
  float* v = x.data<float>();
  for (int i = 0; i < 1000; ++i) v[i] = float(i - 500) * 0.0137f;  // [-6.85, 6.84]
  const double scale = 6.85 / 127;
  Tensor y = fake_quantize(x, Tensor::full({1}, scale), -127, 127);
  const auto got = y.to_vector<float>();
  for (int i = 0; i < 1000; ++i) ASSERT_LE(std::abs(got[size_t(i)] - v[i]), scale / 2 * (1 + 1e-5)) << "at " << i;
}

TEST(FakeQuantize, PerChannelScalesAlongTheFirstAxis) {
  Tensor w = Tensor::from_vector<float>({1.0f, -0.5f, 0.26f, 10.0f, -3.0f, 7.4f}, {2, 3});
  Tensor y = fake_quantize(w, Tensor::from_vector<float>({0.5f, 2.0f}, {2}), -127, 127);
  const std::vector<float> expected = {1.0f, -0.5f, 0.5f, 10.0f, -4.0f, 8.0f};
  const auto got = y.to_vector<float>();
  for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(got[i], expected[i], 1e-6) << "at " << i;
}

TEST(FakeQuantize, StraightThroughGradientInsideTheClippingRangeOnly) {
  for (DType dtype : {DType::f32, DType::f64}) {
    // scale 0.1, range [-12.7, 12.7]: -12.7 and 12.7 are on the bound (inside), 12.8 outside
    Tensor x = Tensor::from_vector<double>({-20.0, -12.7, -1.0, 0.0, 0.04, 3.3, 12.7, 12.8}, {8}).to(dtype);
    x.set_requires_grad(true);
    Tensor y = fake_quantize(x, Tensor::full({1}, 0.1), -127, 127);
    Tensor g = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8}, {8}).to(dtype);
    autograd::backward(sum(mul(y, g)));
    const std::vector<double> expected = {0, 2, 3, 4, 5, 6, 7, 0};
    const auto got = x.grad().to(DType::f64).to_vector<double>();
    for (size_t i = 0; i < expected.size(); ++i)
      EXPECT_EQ(got[i], expected[i]) << dtype_name(dtype) << " at " << i;
  }
}

TEST(FakeQuantize, PerChannelGradientUsesEachChannelsRange) {
  Tensor w = Tensor::from_vector<float>({1.0f, 1.0f, 1.0f, 1.0f}, {2, 2});
  w.set_requires_grad(true);
  // channel 0: range 0.127 (1.0 is outside); channel 1: range 12.7 (inside)
  Tensor y = fake_quantize(w, Tensor::from_vector<float>({0.001f, 0.1f}, {2}), -127, 127);
  autograd::backward(sum(y));
  EXPECT_EQ(w.grad().to_vector<float>(), (std::vector<float>{0, 0, 1, 1}));
}

}  // namespace
}  // namespace frugal
