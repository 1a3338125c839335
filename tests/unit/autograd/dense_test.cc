// Dense ops (matmul, linear, conv2d, pools): gradcheck in f64 of every op and option, and the fast
// f32 path (oneDNN) against reference mode, forward and backward, on the same inputs.
#include <gtest/gtest.h>

#include <functional>

#include "frugal/autograd/gradcheck.h"
#include "frugal/autograd/ops.h"
#include "frugal/autograd/precision.h"
#include "frugal/kernels/cpu/dense.h"
#include "frugal/kernels/kernels.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::all_close;
using testing::random_leaf;
using testing::random_tensor;

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

void expect_gradcheck(const Fn& fn, const std::vector<Tensor>& inputs, const std::string& what) {
  GradcheckResult r = gradcheck(fn, inputs);
  EXPECT_TRUE(r.ok) << what << ": " << r.message;
}

// Runs fn on f32 copies of `values` twice, fast and in reference mode, with a fixed random output
// gradient; compares the outputs and every input gradient.
void expect_fast_matches_reference(const Fn& fn, const std::vector<Tensor>& values, const std::string& what,
                                   double atol = 1e-5, double rtol = 1e-4) {
  auto run = [&](bool reference, std::vector<Tensor>* grads) {
    kernels::ReferenceModeGuard guard(reference);
    std::vector<Tensor> inputs;
    for (const Tensor& v : values) {
      Tensor t = v.to(DType::f32).clone();  // a fresh leaf per run: gradients must not accumulate
      t.set_requires_grad(true);
      inputs.push_back(t);
    }
    Tensor out = fn(inputs);
    Tensor weights = random_tensor(out.shape(), 77);
    autograd::backward(sum(mul(out, weights)));
    for (const Tensor& t : inputs) grads->push_back(t.grad());
    return out.detach();
  };
  std::vector<Tensor> fast_grads, ref_grads;
  Tensor fast = run(false, &fast_grads), reference = run(true, &ref_grads);
  EXPECT_TRUE(all_close(fast, reference, atol, rtol)) << what << " forward";
  for (size_t i = 0; i < values.size(); ++i)
    EXPECT_TRUE(all_close(fast_grads[i], ref_grads[i], atol, rtol)) << what << " grad of input " << i;
}

TEST(Dense, MatmulGradcheck) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{1, 1}, {1, 1}},         {{3, 4}, {4, 5}},       {{2, 3, 4}, {4, 5}},    // b 2-D shared by the batch
      {{2, 3, 4}, {2, 4, 2}},   {{2, 1, 3, 4}, {3, 4, 2}},                       // broadcast batch axes
      {{3, 4}, {2, 4, 3}},      {{1, 3, 2}, {4, 2, 3}}};                          // a broadcast
  uint64_t seed = 1;
  for (auto [sa, sb] : cases) {
    Tensor a = random_leaf(sa, ++seed), b = random_leaf(sb, ++seed);
    expect_gradcheck([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, {a, b},
                     shape_str(sa) + " x " + shape_str(sb));
  }
}

TEST(Dense, MatmulOfTransposedViewsGradcheck) {
  Tensor a = random_leaf({5, 3}, 20), b = random_leaf({4, 5}, 21);
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return matmul(transpose(in[0], 0, 1), transpose(in[1], 0, 1)); }, {a, b},
      "a^T b^T");
}

TEST(Dense, LinearGradcheck) {
  Tensor w = random_leaf({3, 4}, 30), bias = random_leaf({3}, 31);
  for (Shape xs : std::vector<Shape>{{4}, {2, 4}, {2, 3, 4}}) {
    Tensor x = random_leaf(xs, 32);
    expect_gradcheck([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); }, {x, w, bias},
                     "linear " + shape_str(xs));
    expect_gradcheck([](const std::vector<Tensor>& in) { return linear(in[0], in[1]); }, {x, w},
                     "linear without bias " + shape_str(xs));
  }
}

struct ConvCase {
  Shape x, weight;
  Conv2dOptions options;
  std::string name;
};

std::vector<ConvCase> conv_cases() {
  std::vector<ConvCase> cases;
  cases.push_back({{2, 3, 5, 6}, {4, 3, 3, 3}, {}, "plain"});
  Conv2dOptions strided;
  strided.stride_h = 2, strided.stride_w = 2, strided.padding_h = 1, strided.padding_w = 1;
  cases.push_back({{1, 2, 7, 6}, {3, 2, 3, 3}, strided, "stride 2 padding 1"});
  Conv2dOptions dilated;
  dilated.dilation_h = 2, dilated.dilation_w = 2, dilated.padding_h = 2, dilated.padding_w = 1;
  cases.push_back({{1, 2, 6, 7}, {2, 2, 3, 3}, dilated, "dilation 2"});
  Conv2dOptions grouped;
  grouped.groups = 2, grouped.padding_h = 1, grouped.padding_w = 1;
  cases.push_back({{1, 4, 5, 5}, {4, 2, 3, 3}, grouped, "groups 2"});
  Conv2dOptions depthwise;
  depthwise.groups = 3, depthwise.stride_w = 2, depthwise.padding_h = 1;
  cases.push_back({{2, 3, 5, 6}, {3, 1, 3, 2}, depthwise, "depthwise, non-square kernel"});
  cases.push_back({{2, 4, 3, 3}, {5, 4, 1, 1}, {}, "1x1"});
  return cases;
}

// linear_relu: the ReLU in the matmul's epilogue (oneDNN post-op). Gradcheck in f64 (reference
// kernels), the fast path against the reference in every precision, and against relu(linear) on
// the fast kernels; the ops record as one node.
TEST(Dense, LinearReluMatchesReluOfLinear) {
  Tensor w = random_leaf({5, 4}, 33), bias = random_leaf({5}, 34);
  for (Shape xs : std::vector<Shape>{{4}, {3, 4}, {2, 3, 4}}) {
    Tensor x = random_leaf(xs, 35);
    expect_gradcheck([](const std::vector<Tensor>& in) { return linear_relu(in[0], in[1], in[2]); }, {x, w, bias},
                     "linear_relu " + shape_str(xs));
  }
  for (Precision precision : {Precision::fp32, Precision::bf16_mixed, Precision::fp16_mixed}) {
    PrecisionGuard guard(precision);
    Tensor x = random_tensor({64, 48}, 36), w32 = random_tensor({40, 48}, 37), b32 = random_tensor({40}, 38);
    const std::string what = std::string("linear_relu ") + std::to_string(int(precision));
    expect_fast_matches_reference([](const std::vector<Tensor>& in) { return linear_relu(in[0], in[1], in[2]); },
                                  {x, w32, b32}, what);
    expect_fast_matches_reference([](const std::vector<Tensor>& in) { return linear_relu(in[0], in[1]); }, {x, w32},
                                  what + " without bias");
    // Fused against the two ops, both on the fast kernels.
    auto grads_of = [&](bool fused) {
      Tensor xl = x.clone(), wl = w32.clone(), bl = b32.clone();
      for (Tensor* t : {&xl, &wl, &bl}) t->set_requires_grad(true);
      Tensor y = fused ? linear_relu(xl, wl, bl) : relu(linear(xl, wl, bl));
      if (fused) {
        EXPECT_EQ(y.grad_fn()->name, "linear_relu");
      }
      autograd::backward(sum(mul(y, random_tensor(y.shape(), 39))));
      return std::vector<Tensor>{y.detach(), xl.grad(), wl.grad(), bl.grad()};
    };
    std::vector<Tensor> fused = grads_of(true), plain = grads_of(false);
    for (size_t i = 0; i < fused.size(); ++i) EXPECT_TRUE(all_close(fused[i], plain[i], 1e-5, 1e-5)) << what << " " << i;
  }
}

TEST(Dense, Conv2dGradcheck) {
  uint64_t seed = 40;
  for (const ConvCase& c : conv_cases()) {
    Tensor x = random_leaf(c.x, ++seed), w = random_leaf(c.weight, ++seed), b = random_leaf({c.weight[0]}, ++seed);
    Conv2dOptions o = c.options;
    expect_gradcheck([o](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2], o); }, {x, w, b}, c.name);
    expect_gradcheck([o](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], Tensor(), o); }, {x, w},
                     c.name + " without bias");
  }
}

std::vector<std::pair<Pool2dOptions, std::string>> pool_cases() {
  std::vector<std::pair<Pool2dOptions, std::string>> cases;
  cases.push_back({{}, "2x2 stride 2"});
  Pool2dOptions padded{3, 3, 2, 2, 1, 1, true};
  cases.push_back({padded, "3x3 stride 2 padding 1"});
  padded.count_include_pad = false;
  cases.push_back({padded, "3x3 stride 2 padding 1 exclude pad"});
  cases.push_back({Pool2dOptions{3, 2, 1, 2, 1, 1, true}, "3x2 stride (1, 2) padding 1"});
  cases.push_back({Pool2dOptions{2, 3, 2, 1, 0, 1, false}, "2x3 stride (2, 1) padding (0, 1) exclude pad"});
  return cases;
}

TEST(Dense, PoolGradcheck) {
  // Max pooling is differentiable where no two window elements tie, which random inputs ensure.
  Tensor x = random_leaf({2, 2, 7, 6}, 50);
  for (auto [o, name] : pool_cases()) {
    expect_gradcheck([o = o](const std::vector<Tensor>& in) { return max_pool2d(in[0], o); }, {x}, "max " + name);
    expect_gradcheck([o = o](const std::vector<Tensor>& in) { return avg_pool2d(in[0], o); }, {x}, "avg " + name);
  }
  for (auto [oh, ow] : std::vector<std::pair<int64_t, int64_t>>{{3, 4}, {1, 1}, {7, 6}, {4, 5}, {10, 9}})
    expect_gradcheck([oh = oh, ow = ow](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], oh, ow); },
                     {x}, "adaptive " + std::to_string(oh) + "x" + std::to_string(ow));
}

TEST(Dense, FastMatchesReferenceForwardAndBackward) {
  expect_fast_matches_reference([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
                                {random_tensor({7, 13}, 60), random_tensor({13, 5}, 61)}, "matmul 7x13x5");
  expect_fast_matches_reference([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
                                {random_tensor({3, 1, 33, 17}, 62), random_tensor({4, 17, 29}, 63)},
                                "batched broadcast matmul");
  expect_fast_matches_reference([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
                                {random_tensor({4, 64, 96}, 64), random_tensor({96, 80}, 65)}, "matmul with 2-D b");
  expect_fast_matches_reference([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); },
                                {random_tensor({2, 16, 100}, 66), random_tensor({30, 100}, 67), random_tensor({30}, 68)},
                                "linear");
  uint64_t seed = 70;
  for (const ConvCase& c : conv_cases()) {
    Shape x = c.x;
    x[0] = 3, x[2] += 9, x[3] += 8;  // larger and odd-sized planes than the gradcheck uses
    Conv2dOptions o = c.options;
    expect_fast_matches_reference(
        [o](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], in[2], o); },
        {random_tensor(x, ++seed), random_tensor(c.weight, ++seed), random_tensor({c.weight[0]}, ++seed)}, c.name);
  }
  Tensor x = random_tensor({3, 8, 15, 14}, 80);
  for (auto [o, name] : pool_cases()) {
    expect_fast_matches_reference([o = o](const std::vector<Tensor>& in) { return max_pool2d(in[0], o); }, {x},
                                  "max " + name);
    expect_fast_matches_reference([o = o](const std::vector<Tensor>& in) { return avg_pool2d(in[0], o); }, {x},
                                  "avg " + name);
  }
  expect_fast_matches_reference([](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], 4, 5); }, {x},
                                "adaptive 4x5");
}

TEST(Dense, NonContiguousOperandsNeedNoCopyAndGiveTheSameResult) {
  Tensor a = random_tensor({3, 6, 5}, 90), b = random_tensor({3, 7, 6}, 91);
  // b^T via a view: (3, 6, 7) with unit row stride, read as a transposed operand.
  Tensor bt = b.transpose_view(1, 2);
  Tensor expected = matmul(a.transpose_view(1, 2).contiguous(), bt.contiguous());
  EXPECT_TRUE(all_close(matmul(a.transpose_view(1, 2), bt), expected, 1e-6, 1e-6));
  // A sliced operand (row stride larger than its width) and a batch-sliced one.
  Tensor wide = random_tensor({4, 10}, 92);
  Tensor narrow = wide.slice_view(1, 2, 8);  // (4, 6), ld 10
  EXPECT_TRUE(all_close(matmul(narrow, a.select_view(0, 1)), matmul(narrow.contiguous(), a.select_view(0, 1).contiguous()),
                        1e-6, 1e-6));
  Tensor every_other = random_tensor({6, 5, 6}, 93).slice_view(0, 0, 6, 2);  // (3, 5, 6), batch stride 60
  EXPECT_TRUE(all_close(matmul(every_other, bt),
                        matmul(every_other.contiguous(), bt.contiguous()), 1e-6, 1e-6));
}

TEST(Dense, SteadyStateStepsCreateNoPrimitives) {
  // A small CNN step: conv -> max pool -> avg pool -> linear, forward and backward.
  Tensor x = random_tensor({4, 3, 12, 12}, 100), w = random_tensor({8, 3, 3, 3}, 101), b = random_tensor({8}, 102);
  Tensor fc = random_tensor({5, 72}, 103);
  w.set_requires_grad(true), b.set_requires_grad(true), fc.set_requires_grad(true);
  Conv2dOptions conv;
  conv.padding_h = conv.padding_w = 1;
  auto step = [&] {
    Tensor h = max_pool2d(conv2d(x, w, b, conv), Pool2dOptions{});                // (4, 8, 6, 6)
    h = avg_pool2d(h, Pool2dOptions{2, 2, 2, 2, 0, 0, true});                       // (4, 8, 3, 3)
    autograd::backward(sum(linear(reshape(h, {4, 72}), fc)));
  };
  step();
  const int64_t after_first = kernels::cpu::dense_primitives_created();
  EXPECT_GT(after_first, 0);
  step();
  step();
  EXPECT_EQ(kernels::cpu::dense_primitives_created(), after_first);
}

TEST(Dense, BadShapesAreInputErrors) {
  EXPECT_THROW(matmul(Tensor::zeros({2, 3}), Tensor::zeros({4, 5})), InputError);
  EXPECT_THROW(matmul(Tensor::zeros({2, 2, 3}), Tensor::zeros({3, 3, 5})), InputError);
  EXPECT_THROW(matmul(Tensor::zeros({3}), Tensor::zeros({3, 5})), InputError);
  EXPECT_THROW(matmul(Tensor::zeros({2, 3}), Tensor::zeros({3, 5}, DType::f64)), InputError);
  EXPECT_THROW(linear(Tensor::zeros({2, 3}), Tensor::zeros({4, 5})), InputError);
  EXPECT_THROW(linear(Tensor::zeros({2, 5}), Tensor::zeros({4, 5}), Tensor::zeros({3})), InputError);
  Conv2dOptions grouped;
  grouped.groups = 2;
  EXPECT_THROW(conv2d(Tensor::zeros({1, 3, 5, 5}), Tensor::zeros({4, 1, 3, 3}), Tensor(), grouped), InputError);
  EXPECT_THROW(conv2d(Tensor::zeros({1, 3, 2, 2}), Tensor::zeros({4, 3, 3, 3})), InputError);
  EXPECT_THROW(conv2d(Tensor::zeros({3, 5, 5}), Tensor::zeros({4, 3, 3, 3})), InputError);
  EXPECT_THROW(max_pool2d(Tensor::zeros({1, 1, 4, 4}), Pool2dOptions{2, 2, 2, 2, 2, 0, true}), InputError);
  EXPECT_THROW(avg_pool2d(Tensor::zeros({1, 1, 4, 4}), Pool2dOptions{2, 2, 0, 2, 0, 0, true}), InputError);
  EXPECT_THROW(adaptive_avg_pool2d(Tensor::zeros({1, 1, 4, 4}), 0, 2), InputError);
}

}  // namespace
}  // namespace frugal
