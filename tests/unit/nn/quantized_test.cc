// int8 layers (nn/quantized.h): per-channel weight quantization round trips within half a step;
// an int8 Linear (static and dynamic inputs) and Conv2d against f32 within the bound the steps
// imply; BatchNorm folding computes what conv + BatchNorm did; observers' ranges and percentiles;
// quantized tensors that do not fit the layer are input errors.
#include <gtest/gtest.h>

#include <cmath>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/ops.h"
#include "frugal/base/error.h"
#include "frugal/nn/layers.h"
#include "frugal/nn/quantized.h"
#include "frugal/nn/sequential.h"
#include "frugal/nn/zoo.h"
#include "test_util.h"

namespace frugal::nn {
namespace {

using frugal::testing::random_tensor;

TEST(Quantized, PerChannelRoundTripIsWithinHalfAStep) {
  Tensor w = random_tensor({7, 3, 3, 3}, 5, DType::f32, -2, 2);
  w.data<float>()[27] = 0;  // channel 1 gets a zero somewhere; channel 6 all zeros below
  for (int64_t i = 6 * 27; i < 7 * 27; ++i) w.data<float>()[i] = 0;
  QuantizedWeight q = quantize_per_channel(w);
  ASSERT_EQ(q.values.dtype(), DType::i8);
  ASSERT_EQ(q.scale.numel(), 7);
  Tensor back = dequantize_per_channel(q);
  const float* a = w.data<float>();
  const float* b = back.data<float>();
  for (int64_t o = 0; o < 7; ++o) {
    const float s = q.scale.data<float>()[o];
    float m = 0;
    for (int64_t i = 0; i < 27; ++i) m = std::max(m, std::abs(a[o * 27 + i]));
    EXPECT_FLOAT_EQ(s, m > 0 ? m / 127 : 1.0f);
    for (int64_t i = 0; i < 27; ++i) ASSERT_LE(std::abs(a[o * 27 + i] - b[o * 27 + i]), s / 2 * (1 + 1e-6)) << o << " " << i;
  }
  // the channel's largest value maps to +-127 exactly
  int max_q = 0;
  for (int64_t i = 0; i < 27; ++i) max_q = std::max(max_q, std::abs(int(q.values.data<int8_t>()[i])));
  EXPECT_EQ(max_q, 127);
}

// |y_int8 - y_f32| <= sum_k |x_k| sw/2 + |w_k| sx/2 + sx sw / 4, per output (sx per row when dynamic).
void expect_within_bound(const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& bias, double sx_static,
                         const QuantizedWeight& q) {
  const int64_t m = x.size(0), k = x.size(1), n = w.size(0);
  const float* xv = x.data<float>();
  const float* wv = w.data<float>();
  double worst = 0;
  for (int64_t i = 0; i < m; ++i) {
    double sx = sx_static;
    if (sx <= 0) {
      double mx = 0;
      for (int64_t t = 0; t < k; ++t) mx = std::max(mx, double(std::abs(xv[i * k + t])));
      sx = mx / 127;
    }
    for (int64_t j = 0; j < n; ++j) {
      const double sw = q.scale.data<float>()[j];
      double exact = bias.data<float>()[j], bound = 1e-4;
      for (int64_t t = 0; t < k; ++t) {
        exact += double(xv[i * k + t]) * wv[j * k + t];
        bound += std::abs(xv[i * k + t]) * sw / 2 + std::abs(wv[j * k + t]) * sx / 2 + sx * sw / 4;
      }
      const double got = y.data<float>()[i * n + j];
      ASSERT_LE(std::abs(got - exact), bound) << "row " << i << " column " << j;
      worst = std::max(worst, std::abs(got - exact) / bound);
    }
  }
  std::printf("worst error: %.2f of the bound\n", worst);
}

TEST(Quantized, Int8LinearStaysWithinTheBoundStaticAndDynamic) {
  for (bool dynamic : {false, true}) {
    Linear layer(37, 19);
    Tensor x = random_tensor({23, 37}, 9, DType::f32, -3, 3);
    QuantizedLayer q;
    q.weight = quantize_per_channel(layer.weight());
    q.bias = layer.bias().detach().clone();
    double sx = 0;
    if (!dynamic) {
      sx = 3.0 / 127;
      q.input_scale = Tensor::full({1}, sx);
    }
    set_int8(layer, q, "fc");
    autograd::NoGradGuard no_grad;
    Tensor y = layer.forward(x);
    ASSERT_EQ(y.shape(), (Shape{23, 19}));
    expect_within_bound(x, layer.weight().detach(), y, q.bias, float(sx), q.weight);
    Tensor r = layer.forward_relu(x);
    for (int64_t i = 0; i < r.numel(); ++i)
      ASSERT_EQ(r.data<float>()[i], std::max(y.data<float>()[i], 0.0f)) << "relu in the epilogue, at " << i;
  }
}

TEST(Quantized, Int8ConvMatchesTheFloatConvolutionClosely) {
  Conv2dOptions options;
  options.padding_h = options.padding_w = 1;
  Conv2d conv(4, 8, 3, options);
  Tensor x = relu(random_tensor({3, 4, 9, 9}, 2));  // non-negative: u8
  autograd::NoGradGuard no_grad;
  Tensor expected = conv.forward(x).contiguous();
  QuantizedLayer q;
  q.weight = quantize_per_channel(conv.weight());
  q.bias = conv.bias().detach().clone();
  q.input_scale = Tensor::full({1}, 1.0 / 255);
  q.input_unsigned = true;
  set_int8(conv, q, "conv");
  Tensor got = conv.forward(x).contiguous();
  ASSERT_EQ(got.shape(), expected.shape());
  double max_diff = 0, max_ref = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    max_diff = std::max(max_diff, double(std::abs(got.data<float>()[i] - expected.data<float>()[i])));
    max_ref = std::max(max_ref, double(std::abs(expected.data<float>()[i])));
  }
  std::printf("int8 conv: max |diff| %.4g of max |y| %.4g\n", max_diff, max_ref);
  EXPECT_LT(max_diff, 0.02 * max_ref);
}

TEST(Quantized, ShapesAndScaleCountsThatDoNotFitAreInputErrors) {
  Linear layer(8, 4);
  QuantizedLayer q;
  q.weight = quantize_per_channel(layer.weight());
  q.weight.scale = Tensor::ones({3});
  EXPECT_INPUT_ERROR(set_int8(layer, q, "fc"), "fc", "weight_scale holds 3 values, expected 4");
  q.weight = quantize_per_channel(Tensor::ones({4, 9}));
  EXPECT_INPUT_ERROR(set_int8(layer, q, "fc"), "fc", "differs from the model's");
  q.weight = quantize_per_channel(layer.weight());
  q.input_scale = Tensor::ones({2});
  EXPECT_INPUT_ERROR(set_int8(layer, q, "fc"), "input_scale holds 2 values");
  q.input_scale = Tensor::full({1}, -1.0);
  EXPECT_INPUT_ERROR(set_int8(layer, q, "fc"), "input_scale is");
}

TEST(Quantized, FoldedBatchNormComputesWhatConvAndBatchNormDid) {
  CnnConfig config;
  config.channels = {4, 8};
  config.hidden = {16};
  config.outputs = 3;
  config.height = config.width = 8;
  std::shared_ptr<Module> model = make_cnn(config, 3);
  // training steps to move the running statistics away from 0 / 1
  for (int step = 0; step < 3; ++step) (*model)(random_tensor({16, 1, 8, 8}, 40 + uint64_t(step), DType::f32, 0, 2));
  model->eval();
  autograd::NoGradGuard no_grad;
  Tensor x = random_tensor({5, 1, 8, 8}, 77, DType::f32, 0, 2);
  Tensor before = (*model)(x).contiguous();
  std::vector<FoldedConv> folded = fold_batch_norms(*model);
  ASSERT_EQ(folded.size(), 1u) << "the first convolution (1 channel) stays f32, its BatchNorm unfolded";
  EXPECT_EQ(folded[0].conv, "features.4");
  EXPECT_EQ(folded[0].batch_norm, "features.5");
  // put the folded weights into the convolutions: the model (BatchNorms now identities) computes as before
  std::map<std::string, Tensor> state;
  for (const auto& [name, t] : model->state_dict()) state[name] = t;
  for (const FoldedConv& f : folded) state[f.conv + ".weight"] = f.weight, state[f.conv + ".bias"] = f.bias;
  model->load_state_dict(state);
  Tensor after = (*model)(x).contiguous();
  EXPECT_TRUE(frugal::testing::all_close(after, before, 1e-4, 1e-4));
}

TEST(Quantized, ObserversKeepRangesAndPercentiles) {
  RangeObserver o;
  Tensor x = Tensor::empty({1000});
  for (int i = 0; i < 1000; ++i) x.data<float>()[i] = float(i + 1) / 100;  // 0.01 .. 10
  o.observe(x);
  EXPECT_DOUBLE_EQ(o.abs_max(), 10.0f);
  EXPECT_NEAR(o.abs_percentile(50), 5.0, 0.02);
  EXPECT_NEAR(o.abs_percentile(99), 9.9, 0.02);
  EXPECT_DOUBLE_EQ(o.abs_percentile(100), o.abs_max());
  EXPECT_GE(o.min(), 0.0);
  o.observe(Tensor::full({1}, -20.0));
  EXPECT_DOUBLE_EQ(o.abs_max(), 20.0);
  EXPECT_DOUBLE_EQ(o.min(), -20.0);

  MlpConfig config;
  config.inputs = 6, config.hidden = {5}, config.outputs = 2;
  std::shared_ptr<Module> mlp = make_mlp(config, 1);
  auto observers = observe_inputs(*mlp);
  ASSERT_EQ(observers.size(), 2u);
  Tensor input = random_tensor({4, 6}, 3, DType::f32, -2, 2);
  Tensor y_observed = (*mlp)(input);
  EXPECT_GT(observers[0]->abs_max(), 1.0);
  EXPECT_GE(observers[1]->min(), 0.0) << "the second layer's input follows a ReLU";
  remove_hooks(*mlp);
  EXPECT_TRUE(frugal::testing::all_close((*mlp)(input), y_observed, 1e-6, 1e-6)) << "observers change nothing";
}

}  // namespace
}  // namespace frugal::nn
