// relu, gelu (erf and tanh), silu, sigmoid, tanh: known values, gradcheck in f64, and the fast f32
// kernels (forward and backward) against the reference ones on random shapes and extreme inputs.
#include <cmath>
#include <functional>

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

struct NamedActivation {
  const char* name;
  std::function<Tensor(const Tensor&)> fn;
};

std::vector<NamedActivation> activations() {
  return {{"relu", [](const Tensor& x) { return relu(x); }},
          {"gelu", [](const Tensor& x) { return gelu(x); }},
          {"gelu_tanh", [](const Tensor& x) { return gelu(x, GeluApproximation::tanh); }},
          {"silu", [](const Tensor& x) { return silu(x); }},
          {"sigmoid", [](const Tensor& x) { return sigmoid(x); }},
          {"tanh", [](const Tensor& x) { return tanh(x); }}};
}

TEST(Activation, KnownValues) {
  Tensor x = Tensor::from_vector<double>({-2.0, -0.5, 0.0, 1.0, 3.0}, {5});
  auto check = [&](const Tensor& y, std::vector<double> expected, const char* name) {
    std::vector<double> got = y.to_vector<double>();
    for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-12) << name << " " << i;
  };
  // PyTorch's formulas evaluated in double by Python's math module.
  check(relu(x), {0, 0, 0, 1, 3}, "relu");
  check(gelu(x), {-0.04550026389635842, -0.15426876936299344, 0, 0.8413447460685429, 2.99595030590511}, "gelu");
  check(gelu(x, GeluApproximation::tanh),
        {-0.04540230591222494, -0.15428599017485606, 0, 0.8411919906082768, 2.996362607918227}, "gelu_tanh");
  check(silu(x), {-0.2384058440442351, -0.1887703343990727, 0, 0.7310585786300049, 2.8577223804673},
        "silu");
  check(sigmoid(x), {0.11920292202211755, 0.3775406687981454, 0.5, 0.7310585786300049, 0.9525741268224334},
        "sigmoid");
  check(tanh(x), {-0.9640275800758169, -0.46211715726000974, 0, 0.7615941559557649, 0.9950547536867305},
        "tanh");
}

TEST(Activation, Gradcheck) {
  for (Shape shape : std::vector<Shape>{{1}, {7}, {3, 1, 5}, {2, 3, 4}})
    for (const auto& [name, fn] : activations()) {
      Tensor x = random_leaf(shape, 1, -4.0, 4.0);
      auto r = gradcheck([&fn = fn](const std::vector<Tensor>& in) { return fn(in[0]); }, {x});
      EXPECT_TRUE(r.ok) << name << " " << shape_str(shape) << ": " << r.message;
    }
}

TEST(Activation, GradcheckThroughComposition) {
  // Activations inside a graph, with a non-contiguous input.
  Tensor a = random_leaf({3, 4}, 2, -2.0, 2.0);
  auto r = gradcheck(
      [](const std::vector<Tensor>& in) {
        Tensor t = transpose(in[0], 0, 1);
        return mul(gelu(t), sigmoid(silu(tanh(relu(t)))));
      },
      {a});
  EXPECT_TRUE(r.ok) << r.message;
}

// Forward values and input gradients of fn on f32 x, on the fast path or the reference path.
std::pair<Tensor, Tensor> forward_backward(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x_in,
                                           const Tensor& grad_y, bool reference) {
  kernels::ReferenceModeGuard guard(reference);
  Tensor x = x_in.clone();
  x.set_requires_grad(true);
  Tensor y = fn(x);
  autograd::backward(y, grad_y);
  return {y.detach(), x.grad()};
}

TEST(Activation, FastMatchesReferenceOnRandomShapes) {
  for (Shape shape : std::vector<Shape>{{1}, {7}, {33, 17}, {5, 1, 9}, {300, 257}, {200001}})
    for (const auto& [name, fn] : activations()) {
      Tensor x = random_tensor(shape, 3, DType::f32, -8.0, 8.0);
      Tensor g = random_tensor(shape, 4, DType::f32, -1.0, 1.0);
      auto [fast_y, fast_g] = forward_backward(fn, x, g, false);
      auto [ref_y, ref_g] = forward_backward(fn, x, g, true);
      EXPECT_TRUE(all_close(fast_y, ref_y, 1e-6, 1e-5)) << name << " forward " << shape_str(shape);
      EXPECT_TRUE(all_close(fast_g, ref_g, 1e-6, 1e-5)) << name << " backward " << shape_str(shape);
    }
}

TEST(Activation, FastMatchesReferenceOnExtremeInputs) {
  std::vector<float> values = {-1e30f, -1000.0f, -100.0f, -88.5f, -30.0f, -12.0f, -5.5f, -1.0f, -0.63f,
                               -0.62f, -1e-3f, -1e-7f, -0.0f, 0.0f, 1e-7f, 1e-3f, 0.62f, 0.63f, 1.0f,
                               5.5f, 12.0f, 30.0f, 88.5f, 100.0f, 1000.0f, 1e30f};
  // A dense sweep too, to catch a bad branch boundary of a polynomial.
  for (int i = -2000; i <= 2000; ++i) values.push_back(float(i) * 0.005f);
  Tensor x = Tensor::from_vector(values, {int64_t(values.size())});
  Tensor g = Tensor::ones(x.shape());
  for (const auto& [name, fn] : activations()) {
    auto [fast_y, fast_g] = forward_backward(fn, x, g, false);
    auto [ref_y, ref_g] = forward_backward(fn, x, g, true);
    EXPECT_TRUE(all_close(fast_y, ref_y, 1e-6, 1e-5)) << name << " forward";
    EXPECT_TRUE(all_close(fast_g, ref_g, 1e-6, 1e-5)) << name << " backward";
  }
}

TEST(Activation, NanPropagatesThroughRelu) {
  Tensor x = Tensor::from_vector<float>({NAN, -1.0f}, {2});
  EXPECT_TRUE(std::isnan(relu(x).to_vector<float>()[0]));
}

// NaN in, NaN out, on the fast kernels as on the reference ones (the fast exp once clamped NaN to
// 88, which made sigmoid(NaN) = 1 and tanh(NaN) = -1 and hid it from an overflow check).
TEST(Activation, NanPropagatesThroughEveryActivation) {
  Tensor x = Tensor::from_vector<float>({NAN, -1.0f, -NAN}, {3});
  for (bool reference : {false, true}) {
    kernels::ReferenceModeGuard guard(reference);
    for (const auto& [name, fn] : activations()) {
      std::vector<float> y = fn(x).to_vector<float>();
      EXPECT_TRUE(std::isnan(y[0]) && std::isnan(y[2])) << name << (reference ? " reference" : " fast");
    }
  }
}

TEST(Activation, IntegerInputIsAnError) { EXPECT_THROW(relu(Tensor::zeros({2}, DType::i32)), InputError); }

}  // namespace
}  // namespace frugal
