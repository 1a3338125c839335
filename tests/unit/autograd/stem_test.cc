// conv2d_batch_norm_relu_max_pool2x2, a first block computed from the input's moments without
// storing the convolution's output (kernels/cpu/stem.h): against the separate ops run in f64 on
// the same (rounded) operands -- output, the four parameter gradients, the running statistics --
// in fp32, bf16-mixed and fp16-mixed, training and eval, with odd sizes (a dropped row and
// column), a 5x5 kernel, three input channels and a shifted input (a mean far from 0, where
// unshifted moments would cancel); bit-identical at 1 and 2 threads; and the cases it refuses.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/ops.h"
#include "frugal/autograd/precision.h"
#include "frugal/base/parallel.h"
#include "frugal/kernels/kernels.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::all_close;
using testing::random_tensor;

struct Case {
  int64_t n, c, h, w, o, k;
  double low = -1.0, high = 2.0;  // the input's range
};

std::string describe(const Case& c) {
  return "x (" + std::to_string(c.n) + ", " + std::to_string(c.c) + ", " + std::to_string(c.h) + ", " +
         std::to_string(c.w) + ") -> " + std::to_string(c.o) + " k" + std::to_string(c.k) + " in [" +
         std::to_string(c.low) + ", " + std::to_string(c.high) + "]";
}

// f32 values as the precision's dense ops read them.
Tensor rounded(const Tensor& t, Precision precision) {
  if (precision == Precision::bf16_mixed) return t.to(DType::bf16).to(DType::f32);
  if (precision == Precision::fp16_mixed) {
    std::vector<float> v = t.to_vector<float>();
    for (float& f : v) f = f16_to_float(float_to_f16(f));
    return Tensor::from_vector(std::vector<double>(v.begin(), v.end()), t.shape());
  }
  return t;
}

struct BlockRun {
  Tensor out, running_mean, running_var;
  std::vector<Tensor> grads;  // conv weight, conv bias, weight, bias
};

struct Operands {
  Tensor x, conv_w, conv_b, w, b, running_mean, running_var, grad_y;
};

Operands operands(const Case& c, uint64_t seed) {
  Operands p;
  p.x = random_tensor({c.n, c.c, c.h, c.w}, seed, DType::f32, c.low, c.high);
  const double bound = 1.0 / std::sqrt(double(c.c * c.k * c.k));
  p.conv_w = random_tensor({c.o, c.c, c.k, c.k}, seed + 1, DType::f32, -bound, bound);
  p.conv_b = random_tensor({c.o}, seed + 2, DType::f32, -bound, bound);
  p.w = random_tensor({c.o}, seed + 3, DType::f32, 0.5, 1.5);
  p.b = random_tensor({c.o}, seed + 4, DType::f32, -0.5, 0.5);
  p.running_mean = random_tensor({c.o}, seed + 5);
  p.running_var = random_tensor({c.o}, seed + 6, DType::f32, 0.5, 2.0);
  p.grad_y = random_tensor({c.n, c.o, c.h / 2, c.w / 2}, seed + 7);
  return p;
}

Conv2dOptions same_padding(int64_t k) {
  Conv2dOptions o;
  o.padding_h = o.padding_w = k / 2;
  return o;
}

// The fused op under `precision`, x channels-last (for one channel any layout is).
BlockRun fused(const Case& c, const Operands& p, Precision precision, bool training) {
  PrecisionGuard guard(precision);
  Tensor cw = p.conv_w.clone(), cb = p.conv_b.clone(), w = p.w.clone(), b = p.b.clone();
  for (Tensor* t : {&cw, &cb, &w, &b}) t->set_requires_grad(true);
  BlockRun r;
  r.running_mean = p.running_mean.clone(), r.running_var = p.running_var.clone();
  const Tensor x = to_channels_last(p.x);
  EXPECT_TRUE(conv2d_batch_norm_relu_max_pool2x2_supported(x, cw, same_padding(c.k))) << describe(c);
  r.out = conv2d_batch_norm_relu_max_pool2x2(x, cw, cb, same_padding(c.k), w, b, r.running_mean, r.running_var,
                                             training);
  autograd::backward(r.out, p.grad_y);
  r.grads = {cw.grad(), cb.grad(), w.grad(), b.grad()};
  return r;
}

// The separate ops in f64 on the operands the precision reads.
BlockRun reference(const Case& c, const Operands& p, Precision precision, bool training) {
  PrecisionGuard guard(Precision::fp32);
  Tensor x = rounded(p.x, precision).to(DType::f64);
  Tensor cw = rounded(p.conv_w, precision).to(DType::f64), cb = p.conv_b.to(DType::f64);
  Tensor w = p.w.to(DType::f64), b = p.b.to(DType::f64);
  for (Tensor* t : {&cw, &cb, &w, &b}) t->set_requires_grad(true);
  BlockRun r;
  r.running_mean = p.running_mean.to(DType::f64), r.running_var = p.running_var.to(DType::f64);
  Tensor v = conv2d(x, cw, cb, same_padding(c.k));
  r.out = max_pool2d(batch_norm_relu(v, w, b, r.running_mean, r.running_var, training), Pool2dOptions{});
  autograd::backward(r.out, p.grad_y.to(DType::f64));
  r.grads = {cw.grad(), cb.grad(), w.grad(), b.grad()};
  return r;
}

TEST(Stem, MatchesTheSeparateOpsInF64) {
  const std::vector<Case> cases = {
      {4, 1, 8, 8, 32, 3},   {3, 1, 7, 9, 16, 3},  {2, 1, 10, 6, 48, 5}, {2, 3, 6, 7, 16, 3},
      {6, 1, 28, 28, 32, 3}, {2, 1, 12, 12, 16, 3, 40.0, 42.0},  // a mean far from 0
      {128, 1, 28, 28, 32, 3},  // the example CNN's first block at its batch size
  };
  const char* names[] = {"conv weight", "conv bias", "bn weight", "bn bias"};
  uint64_t seed = 100;
  for (const Case& c : cases)
    for (Precision precision : {Precision::fp32, Precision::bf16_mixed, Precision::fp16_mixed})
      for (bool training : {true, false}) {
        seed += 10;
        const Operands p = operands(c, seed);
        const BlockRun f = fused(c, p, precision, training), r = reference(c, p, precision, training);
        const std::string what = describe(c) + " " + std::string(precision_name(precision)) +
                                 (training ? " training" : " eval");
        EXPECT_TRUE(is_channels_last(f.out)) << what;
        EXPECT_TRUE(all_close(f.out, r.out, 1e-5, 1e-4)) << what << " output";
        EXPECT_TRUE(all_close(f.running_mean, r.running_mean, 1e-5, 1e-5)) << what << " running mean";
        EXPECT_TRUE(all_close(f.running_var, r.running_var, 1e-5, 1e-4)) << what << " running var";
        // Gradients sum over every output: their error grows with the count.
        const double scale = std::sqrt(double(c.n * c.h * c.w));
        for (size_t i = 0; i < 4; ++i)
          EXPECT_TRUE(all_close(f.grads[i], r.grads[i], 1e-5 * scale, 1e-4)) << what << " grad " << names[i];
      }
}

TEST(Stem, ThreadCountDoesNotChangeBits) {
  const Case c{5, 1, 14, 13, 32, 3};
  const Operands p = operands(c, 7);
  for (Precision precision : {Precision::fp32, Precision::bf16_mixed}) {
    set_num_threads(1);
    const BlockRun one = fused(c, p, precision, true);
    set_num_threads(2);
    const BlockRun two = fused(c, p, precision, true);
    set_num_threads(0);
    EXPECT_TRUE(testing::same_bits(one.out, two.out)) << precision_name(precision);
    EXPECT_TRUE(testing::same_bits(one.running_var, two.running_var)) << precision_name(precision);
    for (size_t i = 0; i < 4; ++i) EXPECT_TRUE(testing::same_bits(one.grads[i], two.grads[i])) << i;
  }
}

// Without a conv bias or batch norm's affine parameters, and with only some gradients wanted.
TEST(Stem, OptionalParameters) {
  const Case c{3, 1, 9, 8, 16, 3};
  const Operands p = operands(c, 21);
  Tensor cw = p.conv_w.clone();
  cw.set_requires_grad(true);
  Tensor rm = p.running_mean.clone(), rv = p.running_var.clone();
  Tensor out = conv2d_batch_norm_relu_max_pool2x2(p.x, cw, Tensor(), same_padding(3), Tensor(), Tensor(), rm, rv, true);
  autograd::backward(out, p.grad_y);
  Tensor cw64 = p.conv_w.to(DType::f64);
  cw64.set_requires_grad(true);
  Tensor rm64 = p.running_mean.to(DType::f64), rv64 = p.running_var.to(DType::f64);
  Tensor ref = max_pool2d(batch_norm_relu(conv2d(p.x.to(DType::f64), cw64, Tensor(), same_padding(3)), Tensor(),
                                          Tensor(), rm64, rv64, true),
                          Pool2dOptions{});
  autograd::backward(ref, p.grad_y.to(DType::f64));
  EXPECT_TRUE(all_close(out, ref, 1e-5, 1e-4));
  EXPECT_TRUE(all_close(cw.grad(), cw64.grad(), 1e-5 * std::sqrt(3.0 * 9 * 8), 1e-4));
  // No running statistics: batch statistics in eval too, as batch_norm does.
  Tensor none = conv2d_batch_norm_relu_max_pool2x2(p.x, p.conv_w, p.conv_b, same_padding(3), p.w, p.b, Tensor(),
                                                   Tensor(), true);
  EXPECT_EQ(none.shape(), (Shape{3, 16, 4, 4}));
}

TEST(Stem, RefusesWhatItDoesNotRun) {
  const Tensor x = random_tensor({2, 1, 8, 8}, 1), w = random_tensor({16, 1, 3, 3}, 2);
  const Conv2dOptions same = same_padding(3);
  EXPECT_TRUE(conv2d_batch_norm_relu_max_pool2x2_supported(x, w, same));
  Tensor x_grad = x.clone();
  x_grad.set_requires_grad(true);
  EXPECT_FALSE(conv2d_batch_norm_relu_max_pool2x2_supported(x_grad, w, same)) << "x needs a gradient";
  {
    autograd::NoGradGuard no_grad;
    EXPECT_TRUE(conv2d_batch_norm_relu_max_pool2x2_supported(x_grad, w, same)) << "not under no_grad";
  }
  Conv2dOptions strided = same;
  strided.stride_h = strided.stride_w = 2;
  EXPECT_FALSE(conv2d_batch_norm_relu_max_pool2x2_supported(x, w, strided));
  EXPECT_FALSE(conv2d_batch_norm_relu_max_pool2x2_supported(x, w, Conv2dOptions{})) << "no padding";
  EXPECT_FALSE(conv2d_batch_norm_relu_max_pool2x2_supported(x, random_tensor({24, 1, 3, 3}, 3), same)) << "O = 24";
  EXPECT_FALSE(conv2d_batch_norm_relu_max_pool2x2_supported(random_tensor({2, 2, 8, 8}, 4), random_tensor({16, 2, 3, 3}, 5), same))
      << "two channels";
  EXPECT_FALSE(conv2d_batch_norm_relu_max_pool2x2_supported(x.to(DType::f64), w.to(DType::f64), same)) << "f64";
  EXPECT_FALSE(conv2d_batch_norm_relu_max_pool2x2_supported(random_tensor({2, 1, 1, 8}, 6), w, same)) << "H = 1";
  {
    kernels::ReferenceModeGuard reference(true);
    EXPECT_FALSE(conv2d_batch_norm_relu_max_pool2x2_supported(x, w, same)) << "reference kernels";
  }
  const Tensor ones = Tensor::ones({16}), zeros = Tensor::zeros({16});
  EXPECT_THROW(conv2d_batch_norm_relu_max_pool2x2(x_grad, w, Tensor(), same, ones, zeros, zeros.clone(), ones.clone(), true),
               InputError);
  EXPECT_THROW(conv2d_batch_norm_relu_max_pool2x2(x, w, Tensor::ones({8}), same, ones, zeros, Tensor(), Tensor(), true),
               InputError)
      << "a conv bias of the wrong size";
  EXPECT_THROW(conv2d_batch_norm_relu_max_pool2x2(x, w, Tensor(), same, Tensor::ones({8}), zeros, Tensor(), Tensor(), true),
               InputError)
      << "a batch norm weight of the wrong size";
}

}  // namespace
}  // namespace frugal
