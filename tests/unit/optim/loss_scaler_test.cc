// DynamicLossScaler against PyTorch GradScaler's rules: growth after exactly growth_interval good
// steps, backoff on inf and on NaN, skipped-step counts, unscaling in f32 and f64 (an inf anywhere
// in a large, multi-threaded gradient is found), state round trips and rejected options.
#include <cfloat>
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "frugal/base/parallel.h"
#include "frugal/optim/loss_scaler.h"
#include "test_util.h"

namespace frugal {
namespace {
using optim::DynamicLossScaler;
using optim::LossScalerOptions;
using testing::random_tensor;

Tensor param_with_grad(const Tensor& grad) {
  Tensor p = Tensor::zeros(grad.shape(), grad.dtype());
  p.set_requires_grad(true);
  p.set_grad(grad);
  return p;
}

TEST(LossScaler, DefaultsAreGradScalers) {
  DynamicLossScaler scaler;
  EXPECT_EQ(scaler.scale(), 65536.0);
  EXPECT_EQ(scaler.options().growth_factor, 2.0);
  EXPECT_EQ(scaler.options().backoff_factor, 0.5);
  EXPECT_EQ(scaler.options().growth_interval, 2000);
  EXPECT_EQ(scaler.growth_tracker(), 0);
  EXPECT_EQ(scaler.skipped_steps(), 0);
}

TEST(LossScaler, GrowsAfterExactlyTheInterval) {
  LossScalerOptions o;
  o.init_scale = 8, o.growth_interval = 3, o.growth_factor = 4;
  DynamicLossScaler scaler(o);
  scaler.update(false);
  scaler.update(false);
  EXPECT_EQ(scaler.scale(), 8.0);
  EXPECT_EQ(scaler.growth_tracker(), 2);
  scaler.update(false);  // the third good step in a row
  EXPECT_EQ(scaler.scale(), 32.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
  for (int i = 0; i < 2; ++i) scaler.update(false);
  EXPECT_EQ(scaler.scale(), 32.0);
  scaler.update(true);  // an overflow restarts the count
  EXPECT_EQ(scaler.scale(), 16.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
  for (int i = 0; i < 2; ++i) scaler.update(false);
  EXPECT_EQ(scaler.scale(), 16.0);
  scaler.update(false);
  EXPECT_EQ(scaler.scale(), 64.0);
  EXPECT_EQ(scaler.skipped_steps(), 1);
  // Growth that would pass FLT_MAX keeps the scale (PyTorch keeps its f32 scale finite).
  o.init_scale = double(FLT_MAX) / 2, o.growth_interval = 1, o.growth_factor = 4;
  DynamicLossScaler big(o);
  big.update(false);
  EXPECT_EQ(big.scale(), double(FLT_MAX) / 2);
  EXPECT_EQ(big.growth_tracker(), 0);
}

TEST(LossScaler, BacksOffOnInfAndNanAndCountsSkippedSteps) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  LossScalerOptions o;
  o.init_scale = 1024, o.backoff_factor = 0.25;
  DynamicLossScaler scaler(o);
  for (float bad : {inf, -inf, nan}) {
    Tensor g = Tensor::from_vector(std::vector<float>{1024.0f, bad, -2048.0f}, {3});
    Tensor p = param_with_grad(g);
    const double before = scaler.scale();
    const bool finite = scaler.unscale_and_check({p});
    EXPECT_FALSE(finite) << bad;
    scaler.update(!finite);
    EXPECT_EQ(scaler.scale(), before * 0.25);
  }
  EXPECT_EQ(scaler.skipped_steps(), 3);
  EXPECT_EQ(scaler.scale(), 16.0);
  // A finite gradient is unscaled exactly (power-of-two scale) and is not a skipped step.
  Tensor p = param_with_grad(Tensor::from_vector(std::vector<float>{16.0f, -8.0f, 0.5f}, {3}));
  EXPECT_TRUE(scaler.unscale_and_check({p, Tensor::zeros({2})}));  // a parameter without a gradient is skipped
  scaler.update(false);
  EXPECT_EQ(p.grad().to_vector<float>(), (std::vector<float>{1.0f, -0.5f, 0.03125f}));
  EXPECT_EQ(scaler.skipped_steps(), 3);
  EXPECT_EQ(scaler.growth_tracker(), 1);
}

TEST(LossScaler, UnscalesLargeGradientsOnAnyThreadCountAndFindsOneInf) {
  const int threads_before = num_threads();
  for (int threads : {1, 2, 4}) {
    set_num_threads(threads);
    for (DType dtype : {DType::f32, DType::f64}) {
      // Several parameters, one over 40 chunks long, sizes not multiples of the vector width.
      Tensor g0 = random_tensor({1000, 700}, 1, dtype), g1 = random_tensor({17}, 2, dtype),
             g2 = random_tensor({3, 33333}, 3, dtype);
      std::vector<Tensor> params{param_with_grad(g0.clone()), param_with_grad(g1.clone()), param_with_grad(g2.clone())};
      LossScalerOptions o;
      o.init_scale = 3.0;  // not a power of two: the result is g * float(1/3)
      DynamicLossScaler scaler(o);
      ASSERT_TRUE(scaler.unscale_and_check(params));
      const std::vector<Tensor> originals{g0, g1, g2};
      for (size_t k = 0; k < params.size(); ++k) {
        std::vector<double> got = params[k].grad().to_vector<double>(), want = originals[k].to_vector<double>();
        for (size_t i = 0; i < got.size(); ++i) {
          const double expected = dtype == DType::f32 ? double(float(want[i]) * float(1.0 / 3.0)) : want[i] * (1.0 / 3.0);
          ASSERT_EQ(got[i], expected) << "param " << k << " index " << i;
        }
      }
      // One inf (and, separately, one NaN) at the very end of the big gradient, and in the middle.
      for (int64_t where : {int64_t(699999), int64_t(350001)}) {
        for (double bad : {std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
          Tensor g = g0.clone();
          if (dtype == DType::f32) g.data<float>()[where] = float(bad);
          else g.data<double>()[where] = bad;
          std::vector<Tensor> ps{param_with_grad(g1.clone()), param_with_grad(g)};
          EXPECT_FALSE(scaler.unscale_and_check(ps)) << threads << " threads, index " << where << " " << bad;
        }
      }
      // A finite value that overflows only when unscaled (scale < 1) is also non-finite.
      o.init_scale = 0.25;
      DynamicLossScaler small(o);
      if (dtype == DType::f32) {
        std::vector<Tensor> ps{param_with_grad(Tensor::from_vector(std::vector<float>{FLT_MAX, 1.0f}, {2}))};
        EXPECT_FALSE(small.unscale_and_check(ps));
      }
    }
  }
  set_num_threads(threads_before);
}

TEST(LossScaler, StateRoundTripContinuesIdentically) {
  LossScalerOptions o;
  o.init_scale = 1e5, o.growth_interval = 4, o.growth_factor = 3, o.backoff_factor = 0.125;
  DynamicLossScaler a(o);
  const std::vector<bool> pattern = {false, true, false, false, true, false, false, false};
  for (bool f : pattern) a.update(f);
  DynamicLossScaler b(o);
  b.load_state(a.state());
  EXPECT_EQ(b.scale(), a.scale());
  EXPECT_EQ(b.growth_tracker(), a.growth_tracker());
  EXPECT_EQ(b.skipped_steps(), 2);
  for (bool f : {false, false, true, false, false, false, false}) {
    a.update(f);
    b.update(f);
    ASSERT_EQ(a.state(), b.state());
  }
  EXPECT_EQ(a.skipped_steps(), 3);
  // The state reads back from its names in any order.
  const std::vector<std::pair<std::string, double>> state = a.state();
  const std::vector<std::pair<std::string, double>> reordered(state.rbegin(), state.rend());
  DynamicLossScaler c(o);
  c.load_state(reordered);
  EXPECT_EQ(c.state(), a.state());
}

TEST(LossScaler, RejectsBadStateAndOptions) {
  DynamicLossScaler s;
  EXPECT_INPUT_ERROR(s.load_state({{"scale", 2.0}, {"growth_tracker", 0.0}}), "skipped_steps");
  EXPECT_INPUT_ERROR(s.load_state({{"scale", 2.0}, {"growth_tracker", 0.0}, {"skipped_steps", 0.0}, {"x", 1.0}}), "'x'");
  EXPECT_INPUT_ERROR(s.load_state({{"scale", -2.0}, {"growth_tracker", 0.0}, {"skipped_steps", 0.0}}), "scale");
  EXPECT_INPUT_ERROR(s.load_state({{"scale", 2.0}, {"growth_tracker", 2000.0}, {"skipped_steps", 0.0}}), "growth_tracker");
  EXPECT_INPUT_ERROR(s.load_state({{"scale", 2.0}, {"growth_tracker", 0.5}, {"skipped_steps", 0.0}}), "growth_tracker");
  EXPECT_INPUT_ERROR(s.load_state({{"scale", 2.0}, {"growth_tracker", 0.0}, {"skipped_steps", -1.0}}), "skipped_steps");
  EXPECT_EQ(s.scale(), 65536.0);  // a refused state changes nothing

  auto with = [](auto edit) {
    LossScalerOptions o;
    edit(o);
    return o;
  };
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  for (double v : {0.0, -1.0, inf, nan, 1e39})
    EXPECT_INPUT_ERROR(DynamicLossScaler(with([&](LossScalerOptions& o) { o.init_scale = v; })), "init_scale");
  for (double v : {1.0, 0.5, inf, nan})
    EXPECT_INPUT_ERROR(DynamicLossScaler(with([&](LossScalerOptions& o) { o.growth_factor = v; })), "growth_factor");
  for (double v : {0.0, 1.0, 1.5, -0.5, nan})
    EXPECT_INPUT_ERROR(DynamicLossScaler(with([&](LossScalerOptions& o) { o.backoff_factor = v; })), "backoff_factor");
  for (int64_t v : {0, -3})
    EXPECT_INPUT_ERROR(DynamicLossScaler(with([&](LossScalerOptions& o) { o.growth_interval = v; })), "growth_interval");
  EXPECT_NO_THROW(DynamicLossScaler(with([](LossScalerOptions& o) { o.init_scale = 1e30, o.growth_interval = 1; })));
}

}  // namespace
}  // namespace frugal
