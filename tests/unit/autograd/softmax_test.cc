// softmax, log_softmax and max along an axis: gradcheck in f64 (rank 1, odd and size-1 axes,
// negative axes), fast vs reference kernels on random shapes, rows summing to 1, stability for
// inputs around +-1000, and max sending its gradient to the first maximal element.
#include <cmath>

#include <gtest/gtest.h>

#include "frugal/autograd/gradcheck.h"
#include "frugal/autograd/ops.h"
#include "frugal/kernels/kernels.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::all_close;
using testing::random_leaf;
using testing::random_tensor;

const std::vector<std::pair<Shape, int64_t>> kGradcheckCases = {
    {{1}, 0}, {{7}, 0}, {{7}, -1}, {{3, 5}, 1}, {{3, 5}, 0}, {{2, 1, 4}, 1}, {{2, 3, 4}, -2}, {{2, 3, 1}, -1},
    {{3, 2, 5}, 0}};

TEST(Softmax, Gradcheck) {
  for (auto [shape, axis] : kGradcheckCases) {
    Tensor x = random_leaf(shape, 1, -3.0, 3.0);
    auto r = gradcheck([&, axis = axis](const std::vector<Tensor>& in) { return softmax(in[0], axis); }, {x});
    EXPECT_TRUE(r.ok) << "softmax " << shape_str(shape) << " axis " << axis << ": " << r.message;
    r = gradcheck([&, axis = axis](const std::vector<Tensor>& in) { return log_softmax(in[0], axis); }, {x});
    EXPECT_TRUE(r.ok) << "log_softmax " << shape_str(shape) << " axis " << axis << ": " << r.message;
  }
}

TEST(Softmax, RowsSumToOneAndMatchLogSoftmax) {
  Tensor x = random_tensor({4, 9, 6}, 2, DType::f64, -5.0, 5.0);
  for (int64_t axis : {0, 1, 2, -1}) {
    Tensor y = softmax(x, axis);
    Tensor total = sum(y, {axis});
    EXPECT_TRUE(all_close(total, Tensor::ones(total.shape(), DType::f64), 1e-12, 0)) << "axis " << axis;
    for (double v : y.to_vector<double>()) EXPECT_GT(v, 0.0);
    // exp(log_softmax) = softmax
    std::vector<double> logs = log_softmax(x, axis).to_vector<double>(), probs = y.to_vector<double>();
    for (size_t i = 0; i < logs.size(); ++i) EXPECT_NEAR(std::exp(logs[i]), probs[i], 1e-14);
  }
  Tensor f = random_tensor({33, 1000}, 3, DType::f32, -20.0, 20.0);
  Tensor total = sum(softmax(f), {-1});
  EXPECT_TRUE(all_close(total, Tensor::ones({33}), 1e-5, 0));
}

TEST(Softmax, StableForLargeInputs) {
  for (DType dtype : {DType::f32, DType::f64})
    for (bool reference : {false, true}) {
      kernels::ReferenceModeGuard guard(reference);
      Tensor x = Tensor::from_vector<double>({1000.0, 999.0, 998.0, -1000.0, -1001.0, -1003.0}, {2, 3}).to(dtype);
      Tensor y = log_softmax(x, 1);
      // log_softmax([0, -1, -2]) for both rows, and the row of -1000s the same shifted by 0, -1, -3.
      const double l = std::log(1.0 + std::exp(-1.0) + std::exp(-2.0));
      const double m = std::log(1.0 + std::exp(-1.0) + std::exp(-3.0));
      std::vector<double> expected = {-l, -1 - l, -2 - l, -m, -1 - m, -3 - m};
      EXPECT_TRUE(all_close(y, Tensor::from_vector(expected, {2, 3}).to(dtype), 1e-5, 0))
          << dtype_name(dtype) << (reference ? " reference" : " fast");
      Tensor p = softmax(x, 1);
      for (double v : p.to_vector<double>()) EXPECT_TRUE(std::isfinite(v));
      EXPECT_NEAR(p.at({0, 0}), std::exp(-l), 1e-6);
    }
}

// Forward values and input gradients of fn on f32 x, on the fast path or the reference path.
std::pair<Tensor, Tensor> forward_backward(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x_in,
                                           uint64_t grad_seed, bool reference) {
  kernels::ReferenceModeGuard guard(reference);
  Tensor x = x_in.clone();
  x.set_requires_grad(true);
  Tensor y = fn(x);
  autograd::backward(y, random_tensor(y.shape(), grad_seed));
  return {y.detach(), x.grad()};
}

TEST(Softmax, FastMatchesReferenceOnRandomShapes) {
  const std::vector<std::pair<Shape, int64_t>> cases = {
      {{1}, 0},          {{7}, 0},           {{1, 1}, 1},         {{5, 17}, -1},  {{5, 17}, 0},
      {{3, 1, 4}, 1},    {{2, 33, 7}, 1},    {{4, 3, 65}, -1},    {{300, 257}, 1}, {{300, 257}, 0},
      {{2, 40000}, -1},  {{120000, 3}, -1},  {{3, 50000, 2}, 1},  {{1, 200001}, 1}};
  for (auto [shape, axis] : cases)
    for (bool log : {false, true}) {
      auto fn = [&, axis = axis](const Tensor& t) { return log ? log_softmax(t, axis) : softmax(t, axis); };
      Tensor x = random_tensor(shape, 4, DType::f32, -10.0, 10.0);
      auto [fast_y, fast_g] = forward_backward(fn, x, 5, false);
      auto [ref_y, ref_g] = forward_backward(fn, x, 5, true);
      const char* name = log ? "log_softmax" : "softmax";
      EXPECT_TRUE(all_close(fast_y, ref_y, 1e-6, 1e-5)) << name << " forward " << shape_str(shape) << " axis " << axis;
      EXPECT_TRUE(all_close(fast_g, ref_g, 1e-6, 1e-5)) << name << " backward " << shape_str(shape) << " axis " << axis;
    }
}

TEST(Max, ValuesAndFirstMaximum) {
  Tensor x = Tensor::from_vector<float>({1, 5, 5, 2,
                                         7, 0, 7, 7,
                                         -1, -3, -2, -1}, {3, 4});
  for (bool reference : {false, true}) {
    kernels::ReferenceModeGuard guard(reference);
    Tensor xl = x.to(DType::f64);
    xl.set_requires_grad(true);
    Tensor y = max(xl, 1);
    EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{5, 7, -1}));
    autograd::backward(y, Tensor::from_vector<double>({10, 20, 30}, {3}));
    EXPECT_EQ(xl.grad().to_vector<double>(), (std::vector<double>{0, 10, 0, 0, 20, 0, 0, 0, 30, 0, 0, 0}));
    Tensor xf = x.clone();
    xf.set_requires_grad(true);
    Tensor col = max(xf, 0, /*keepdim=*/true);  // (1, 4)
    ASSERT_EQ(col.shape(), (Shape{1, 4}));
    EXPECT_EQ(col.to_vector<float>(), (std::vector<float>{7, 5, 7, 7}));
    autograd::backward(col, Tensor::ones({1, 4}));
    EXPECT_EQ(xf.grad().to_vector<float>(), (std::vector<float>{0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0}));
  }
}

TEST(Max, Gradcheck) {
  for (auto [shape, axis] : kGradcheckCases)
    for (bool keepdim : {false, true}) {
      Tensor x = random_leaf(shape, 6);
      auto r = gradcheck([&, axis = axis](const std::vector<Tensor>& in) { return max(in[0], axis, keepdim); }, {x});
      EXPECT_TRUE(r.ok) << shape_str(shape) << " axis " << axis << ": " << r.message;
    }
}

TEST(Max, FastMatchesReference) {
  const std::vector<std::pair<Shape, int64_t>> cases = {
      {{1}, 0}, {{7}, -1}, {{5, 17}, 1}, {{5, 17}, 0}, {{3, 1, 4}, 1}, {{2, 33, 7}, 1}, {{300, 257}, 0},
      {{2, 70000}, 1}, {{120000, 3}, 0}};
  for (auto [shape, axis] : cases) {
    // Few distinct values, so ties are common and the first-maximum rule is exercised.
    Tensor x = random_tensor(shape, 7, DType::f32, 0.0, 4.0).to(DType::i32).to(DType::f32);
    auto fn = [&, axis = axis](const Tensor& t) { return max(t, axis); };
    auto [fast_y, fast_g] = forward_backward(fn, x, 8, false);
    auto [ref_y, ref_g] = forward_backward(fn, x, 8, true);
    EXPECT_TRUE(all_close(fast_y, ref_y, 0, 0)) << shape_str(shape) << " axis " << axis;
    EXPECT_TRUE(all_close(fast_g, ref_g, 0, 0)) << shape_str(shape) << " axis " << axis;
  }
}

TEST(Max, NanIsTheMaximum) {
  Tensor x = Tensor::from_vector<float>({1, NAN, 3, NAN, 2, 0}, {2, 3});
  for (bool reference : {false, true}) {
    kernels::ReferenceModeGuard guard(reference);
    std::vector<float> y = max(x, 1).to_vector<float>();
    EXPECT_TRUE(std::isnan(y[0]) && std::isnan(y[1]));
    std::vector<float> c = max(x, 0).to_vector<float>();
    EXPECT_TRUE(std::isnan(c[0]) && std::isnan(c[1]));
    EXPECT_EQ(c[2], 3.0f);
  }
}

TEST(Softmax, InputErrors) {
  Tensor x = random_tensor({2, 3}, 9);
  EXPECT_THROW(softmax(x, 2), InputError);
  EXPECT_THROW(log_softmax(x, -3), InputError);
  EXPECT_THROW(max(x, 2), InputError);
  EXPECT_THROW(max(Tensor::zeros({2, 0}), 1), InputError);
  EXPECT_THROW(softmax(Tensor::zeros({2}, DType::i64)), InputError);
}

}  // namespace
}  // namespace frugal
