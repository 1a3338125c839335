// FlopCounter (autograd/flops.h): what each dense op counts, forward and backward, against the
// formula for the gradients requested (requires_grad on each input in turn), on every path the op
// takes (fast f32, reference mode, f64, bf16- and fp16-mixed, channels-last, Winograd, the fused
// first block, materialized and tiled attention); nothing for elementwise ops, norms, softmax and
// losses; nested counters, the backward mark, threads, and a recomputed block counted again.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <thread>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/flops.h"
#include "frugal/autograd/ops.h"
#include "frugal/autograd/precision.h"
#include "frugal/autograd/recompute.h"
#include "frugal/kernels/kernels.h"
#include "test_util.h"

namespace frugal {
namespace {
using autograd::FlopCounter;
using testing::random_tensor;
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

struct Counted {
  double forward = 0, backward = 0;
};

// Runs fn on fresh leaves with the values of `values` (same dtype and layout), `need[i]` setting
// requires_grad of input i, then backward from a fixed random output gradient (through mul and
// sum, which count nothing); returns what a counter open around both counted.
Counted count(const Fn& fn, const std::vector<Tensor>& values, const std::vector<bool>& need) {
  std::vector<Tensor> inputs;
  for (size_t i = 0; i < values.size(); ++i) {
    Tensor t = values[i].clone();
    if (values[i].rank() == 4 && !values[i].is_contiguous() && is_channels_last(values[i])) t = to_channels_last(t);
    if (need[i]) t.set_requires_grad(true);
    inputs.push_back(t);
  }
  FlopCounter counter;
  Tensor out = fn(inputs);
  Counted c{counter.forward(), counter.backward()};
  EXPECT_EQ(c.backward, 0.0) << "a forward counted as backward";
  if (out.requires_grad()) {
    Tensor weights = random_tensor(out.shape(), 77, out.dtype());
    autograd::backward(sum(mul(out, weights)));
  }
  EXPECT_EQ(counter.forward(), c.forward) << "backward counted as forward";
  c.backward = counter.backward();
  return c;
}

// Every non-empty subset of the inputs listed in `which` requiring a gradient (the others not).
std::vector<std::vector<bool>> gradient_choices(size_t inputs) {
  std::vector<std::vector<bool>> out;
  for (unsigned mask = 0; mask < (1u << inputs); ++mask) {
    std::vector<bool> need(inputs);
    for (size_t i = 0; i < inputs; ++i) need[i] = (mask >> i) & 1u;
    out.push_back(need);
  }
  return out;
}

std::string describe(const std::vector<bool>& need) {
  std::string s = "requires_grad";
  for (bool b : need) s += b ? " 1" : " 0";
  return s;
}

// The paths a dense op takes for f32 input, named.
struct Mode {
  const char* name;
  bool reference;
  Precision precision;
  DType dtype;
};
const Mode kModes[] = {{"fp32", false, Precision::fp32, DType::f32},
                       {"fp32 reference", true, Precision::fp32, DType::f32},
                       {"f64", false, Precision::fp32, DType::f64},
                       {"bf16-mixed", false, Precision::bf16_mixed, DType::f32},
                       {"bf16-mixed reference", true, Precision::bf16_mixed, DType::f32},
                       {"fp16-mixed", false, Precision::fp16_mixed, DType::f32}};

// ---- the counter itself ----

TEST(FlopCounter, NestedCountersAddToEveryOpenOne) {
  Tensor a = random_tensor({3, 4}, 1), b = random_tensor({4, 5}, 2);
  const double one = 2.0 * 3 * 4 * 5;
  matmul(a, b);  // no counter open: counted nowhere, and no harm
  FlopCounter outer;
  matmul(a, b);
  {
    FlopCounter inner;
    matmul(a, b);
    EXPECT_EQ(inner.forward(), one);
    EXPECT_EQ(outer.forward(), 2 * one);
  }
  matmul(a, b);
  EXPECT_EQ(outer.forward(), 3 * one);
  EXPECT_EQ(outer.backward(), 0.0);
  {
    autograd::BackwardFlops backward_work;
    matmul(a, b);
    {
      autograd::BackwardFlops nested;
    }
    matmul(a, b);  // still marked after a nested mark closed
  }
  matmul(a, b);
  EXPECT_EQ(outer.forward(), 4 * one);
  EXPECT_EQ(outer.backward(), 2 * one);
  EXPECT_EQ(outer.total(), 6 * one);
}

TEST(FlopCounter, OtherThreadsCountInTheirOwnCounters) {
  Tensor a = random_tensor({3, 4}, 1), b = random_tensor({4, 5}, 2);
  FlopCounter here;
  double there = -1;
  std::thread worker([&] {
    FlopCounter mine;
    matmul(a, b);
    matmul(a, b);
    there = mine.forward();
  });
  worker.join();
  EXPECT_EQ(there, 2 * 2.0 * 3 * 4 * 5);
  EXPECT_EQ(here.total(), 0.0);
}

// ---- matmul ----

TEST(FlopCount, MatmulForwardAndEachGradient) {
  struct Case {
    Shape a, b;
    int64_t batch;  // of the broadcast batch shape
  };
  const Case cases[] = {{{3, 4}, {4, 5}, 1},          {{2, 3, 4}, {4, 5}, 2},        {{2, 3, 4}, {2, 4, 5}, 2},
                        {{2, 1, 3, 4}, {3, 4, 5}, 6}, {{3, 4}, {2, 4, 5}, 2},         {{1, 3, 4}, {4, 4, 5}, 4}};
  const Fn fn = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); };
  for (const Mode& mode : kModes) {
    kernels::ReferenceModeGuard reference(mode.reference);
    PrecisionGuard precision(mode.precision);
    uint64_t seed = 10;
    for (const Case& c : cases) {
      const int64_t m = c.a[c.a.size() - 2], k = c.a.back(), n = c.b.back();
      const double product = 2.0 * double(c.batch * m * n * k);
      const std::vector<Tensor> values = {random_tensor(c.a, ++seed, mode.dtype), random_tensor(c.b, ++seed, mode.dtype)};
      for (const std::vector<bool>& need : gradient_choices(2)) {
        const Counted got = count(fn, values, need);
        const std::string what = std::string(mode.name) + " " + shape_str(c.a) + " x " + shape_str(c.b) + " " +
                                 describe(need);
        EXPECT_EQ(got.forward, product) << what;
        // dA = g B^T and dB = A^T g: one product each, over the broadcast batch, when needed.
        EXPECT_EQ(got.backward, product * (int(need[0]) + int(need[1]))) << what;
      }
    }
  }
}

// ---- linear ----

TEST(FlopCount, LinearAndLinearReluForwardAndEachGradient) {
  const Shape x_shape = {2, 3, 5};  // M = 6 rows of 5 features
  const int64_t M = 6, in = 5, out = 7;
  const double product = 2.0 * double(M * in * out);
  for (bool relu : {false, true}) {
    const Fn fn = [relu](const std::vector<Tensor>& v) {
      return relu ? linear_relu(v[0], v[1], v[2]) : linear(v[0], v[1], v[2]);
    };
    for (const Mode& mode : kModes) {
      kernels::ReferenceModeGuard reference(mode.reference);
      PrecisionGuard precision(mode.precision);
      const std::vector<Tensor> values = {random_tensor(x_shape, 1, mode.dtype), random_tensor({out, in}, 2, mode.dtype),
                                          random_tensor({out}, 3, mode.dtype)};
      for (const std::vector<bool>& need : gradient_choices(3)) {
        const Counted got = count(fn, values, need);
        const std::string what = std::string(relu ? "linear_relu " : "linear ") + mode.name + " " + describe(need);
        EXPECT_EQ(got.forward, product) << what;
        // dX = g W and dW = g^T x when needed; the bias gradient is a sum, not counted.
        EXPECT_EQ(got.backward, product * (int(need[0]) + int(need[1]))) << what;
      }
    }
  }
  // Without a bias, and on a 1-D input (M = 1).
  const Counted one_row = count([](const std::vector<Tensor>& v) { return linear(v[0], v[1]); },
                                {random_tensor({in}, 4), random_tensor({out, in}, 5)}, {true, true});
  EXPECT_EQ(one_row.forward, 2.0 * in * out);
  EXPECT_EQ(one_row.backward, 2 * 2.0 * in * out);
}

// ---- conv2d ----

struct ConvCase {
  const char* name;
  Shape x, w;
  Conv2dOptions options;
  bool channels_last;
  int64_t out_h, out_w;
};

Conv2dOptions conv_options(int64_t stride, int64_t padding, int64_t groups = 1, int64_t dilation = 1) {
  Conv2dOptions o;
  o.stride_h = o.stride_w = stride;
  o.padding_h = o.padding_w = padding;
  o.groups = groups;
  o.dilation_h = o.dilation_w = dilation;
  return o;
}

double conv_formula(const ConvCase& c) {
  const int64_t N = c.x[0], C = c.x[1], O = c.w[0], groups = c.options.groups;
  return 2.0 * double(N * O * c.out_h * c.out_w * (C / groups) * c.w[2] * c.w[3]);
}

TEST(FlopCount, Conv2dForwardAndEachGradientOnEveryPath) {
  const ConvCase cases[] = {
      {"3x3 same", {2, 3, 7, 6}, {4, 3, 3, 3}, conv_options(1, 1), false, 7, 6},
      {"5x5 stride 2", {2, 2, 9, 8}, {3, 2, 5, 5}, conv_options(2, 2), false, 5, 4},
      {"grouped dilated", {1, 4, 8, 8}, {6, 2, 3, 3}, conv_options(1, 2, 2, 2), false, 8, 8},
      {"channels-last", {2, 8, 6, 5}, {16, 8, 3, 3}, conv_options(1, 1), true, 6, 5},
      // f32 stride-1 3x3 with C and O multiples of 16, channels-last: Winograd F(2x2, 3x3) runs it on
      // AVX-512 builds, and counts as the direct convolution.
      {"winograd", {2, 16, 8, 8}, {16, 16, 3, 3}, conv_options(1, 1), true, 8, 8},
      {"1x1 unpadded", {3, 5, 4, 4}, {2, 5, 1, 1}, conv_options(1, 0), false, 4, 4}};
  for (const Mode& mode : kModes) {
    kernels::ReferenceModeGuard reference(mode.reference);
    PrecisionGuard precision(mode.precision);
    uint64_t seed = 30;
    for (const ConvCase& c : cases) {
      const Conv2dOptions options = c.options;
      const Fn fn = [options](const std::vector<Tensor>& v) { return conv2d(v[0], v[1], v[2], options); };
      Tensor x = random_tensor(c.x, ++seed, mode.dtype);
      if (c.channels_last) x = to_channels_last(x);
      const std::vector<Tensor> values = {x, random_tensor(c.w, ++seed, mode.dtype), random_tensor({c.w[0]}, ++seed, mode.dtype)};
      const double pass = conv_formula(c);
      for (const std::vector<bool>& need : gradient_choices(3)) {
        const Counted got = count(fn, values, need);
        const std::string what = std::string(mode.name) + " " + c.name + " " + describe(need);
        EXPECT_EQ(got.forward, pass) << what;
        // dX when x needs it; the weight-gradient pass (which also gives the bias's) when the
        // weight or the bias needs it.
        EXPECT_EQ(got.backward, pass * (int(need[0]) + int(need[1] || need[2]))) << what;
      }
    }
  }
}

// bf16-mixed on channels-last input with bf16_output (the cnn's blocks), read by the fused batch
// norm, ReLU and pooling (which count nothing).
TEST(FlopCount, Conv2dWithBf16Output) {
  PrecisionGuard precision(Precision::bf16_mixed);
  Conv2dOptions options = conv_options(1, 1);
  options.bf16_output = true;
  const ConvCase c{"bf16 output", {2, 16, 6, 6}, {32, 16, 3, 3}, options, true, 6, 6};
  const Fn fn = [options](const std::vector<Tensor>& v) {
    Tensor y = conv2d(v[0], v[1], v[2], options);  // (N, O, H, W) bf16 where the kernels allow it
    return batch_norm_relu_max_pool2x2(y, v[3], v[4], Tensor(), Tensor(), true);
  };
  const std::vector<Tensor> values = {to_channels_last(random_tensor(c.x, 41)), random_tensor(c.w, 42),
                                      random_tensor({32}, 43), random_tensor({32}, 44, DType::f32, 0.5, 1.5),
                                      random_tensor({32}, 45)};
  for (const std::vector<bool>& need : gradient_choices(3)) {
    std::vector<bool> all = need;
    all.push_back(true);  // batch norm's weight and bias
    all.push_back(true);
    const Counted got = count(fn, values, all);
    EXPECT_EQ(got.forward, conv_formula(c)) << describe(need);
    EXPECT_EQ(got.backward, conv_formula(c) * (int(need[0]) + int(need[1] || need[2]))) << describe(need);
  }
}

// ---- the fused first block ----

TEST(FlopCount, FirstBlockCountsItsConvolution) {
  const Shape x_shape = {3, 1, 10, 12};
  const int64_t O = 16, k = 3;
  const Tensor x = random_tensor(x_shape, 51);
  Conv2dOptions conv = conv_options(1, k / 2);
  if (!conv2d_batch_norm_relu_max_pool2x2_supported(x, random_tensor({O, 1, k, k}, 52), conv))
    GTEST_SKIP() << "the fused first block needs an AVX-512 build";
  const double pass = 2.0 * double(3 * O * 10 * 12 * 1 * k * k);
  const Fn fn = [conv](const std::vector<Tensor>& v) {
    return conv2d_batch_norm_relu_max_pool2x2(v[0], v[1], v[2], conv, v[3], v[4], Tensor(), Tensor(), true);
  };
  const std::vector<Tensor> values = {x, random_tensor({O, 1, k, k}, 52), random_tensor({O}, 53),
                                      random_tensor({O}, 54, DType::f32, 0.5, 1.5), random_tensor({O}, 55)};
  for (Precision p : {Precision::fp32, Precision::bf16_mixed, Precision::fp16_mixed}) {
    PrecisionGuard precision(p);
    for (const std::vector<bool>& need : gradient_choices(4)) {  // x never needs a gradient here
      std::vector<bool> all = {false};
      all.insert(all.end(), need.begin(), need.end());
      const Counted got = count(fn, values, all);
      EXPECT_EQ(got.forward, pass) << describe(all);
      // The convolution's weight gradient when that weight needs one; the rest is batch norm's.
      EXPECT_EQ(got.backward, need[0] ? pass : 0.0) << describe(all);
    }
  }
}

// ---- attention ----

TEST(FlopCount, AttentionCountsScoresAndValueProductsOnEveryPath) {
  const int64_t B = 2, T = 5, H = 3, D = 4, C = H * D;
  const double product = 2.0 * double(B * H * T * T * D);  // one (B H, T, T) x D product
  const Fn fn = [](const std::vector<Tensor>& v) { return multi_head_attention(v[0], 3, true); };
  for (const Mode& mode : kModes) {
    kernels::ReferenceModeGuard reference(mode.reference);
    PrecisionGuard precision(mode.precision);
    const std::vector<Tensor> values = {random_tensor({B, T, 3 * C}, 61, mode.dtype)};
    for (bool need : {false, true}) {
      const Counted got = count(fn, values, {need});
      // Forward: scores and the value product; backward dV, dP, dQ, dK.
      EXPECT_EQ(got.forward, 2 * product) << mode.name;
      EXPECT_EQ(got.backward, need ? 4 * product : 0.0) << mode.name;
    }
  }
  // scaled_dot_product_attention with more keys than queries: every product is (Tq, Tk) x D; all
  // three gradients come from one kernel pass, so any of them needed counts the four products.
  const int64_t Tq = 3, Tk = 6;
  const double cross = 2.0 * double(B * H * Tq * Tk * D);
  const Fn sdpa = [](const std::vector<Tensor>& v) { return scaled_dot_product_attention(v[0], v[1], v[2], false); };
  for (DType dtype : {DType::f32, DType::f64}) {
    const std::vector<Tensor> values = {random_tensor({B, H, Tq, D}, 62, dtype), random_tensor({B, H, Tk, D}, 63, dtype),
                                        random_tensor({B, H, Tk, D}, 64, dtype)};
    for (const std::vector<bool>& need : gradient_choices(3)) {
      const Counted got = count(sdpa, values, need);
      EXPECT_EQ(got.forward, 2 * cross) << describe(need);
      EXPECT_EQ(got.backward, need[0] || need[1] || need[2] ? 4 * cross : 0.0) << describe(need);
    }
  }
}

// ---- what is not counted ----

TEST(FlopCount, ElementwiseNormsSoftmaxAndLossesCountNothing) {
  const Tensor x = random_tensor({4, 6}, 71), w = random_tensor({6}, 72), b = random_tensor({6}, 73);
  const Tensor targets = Tensor::from_vector(std::vector<int64_t>{0, 5, 2, 3}, {4});
  const Tensor reference = random_tensor({4, 6}, 74);
  const Fn fn = [targets, reference](const std::vector<Tensor>& v) {
    Tensor h = gelu(add(mul(v[0], v[0]), v[0]), GeluApproximation::tanh);
    h = layer_norm(h, v[1], v[2]);
    h = batch_norm(h, v[1], v[2], Tensor(), Tensor(), true);
    h = softmax(tanh(sigmoid(relu(silu(h)))), -1);
    h = dropout(div(sub(h, neg(h)), add_scalar(h, 2.0)), 0.5, true, 1, 2);
    Tensor loss = add(cross_entropy(log_softmax(h, -1), targets), mse_loss(h, reference));
    return add(loss, mul_scalar(mean(max(h, 1)), 0.1));
  };
  const Counted got = count(fn, {x, w, b}, {true, true, true});
  EXPECT_EQ(got.forward, 0.0);
  EXPECT_EQ(got.backward, 0.0);
}

// ---- recomputation ----

// A recomputed block counts its forward in forward and again, with its gradients, in backward,
// where backward re-runs it; what an UnreadOutputs scope leaves unwritten counts nothing.
TEST(FlopCount, ARecomputedBlockCountsItsReRunAsBackward) {
  const int64_t M = 4, C = 8;
  Tensor w1 = random_tensor({C, C}, 81), w2 = random_tensor({C, C}, 82);
  w1.set_requires_grad(true);
  w2.set_requires_grad(true);
  const double product = 2.0 * double(M * C * C);
  auto block = [&](const Tensor& x, bool output_unread) {
    Tensor h = gelu(linear(x, w1));
    autograd::UnreadOutputs unread(output_unread);
    return linear(h, w2);
  };
  Tensor x = random_tensor({M, C}, 83);  // data: no gradient
  {
    FlopCounter plain;
    autograd::backward(sum(block(x, false)));
    EXPECT_EQ(plain.forward(), 2 * product);
    EXPECT_EQ(plain.backward(), 3 * product);  // dW1, dW2, dH; no dX
  }
  {
    FlopCounter recomputed;
    Tensor y = autograd::recompute([&](const Tensor& in) { return block(in, false); }, x, {w1, w2}, {},
                                   [&](const Tensor& in) { return block(in, true); });
    EXPECT_EQ(recomputed.forward(), 2 * product);
    autograd::backward(sum(y));
    EXPECT_EQ(recomputed.forward(), 2 * product);
    // The re-run computes the first product (the second's output is unread: skipped), then the
    // same three gradients.
    EXPECT_EQ(recomputed.backward(), product + 3 * product);
  }
}

}  // namespace
}  // namespace frugal
