// The fused optimizer step (all parameters in one parallel region, 16K-element chunks) against a
// plain per-parameter loop written here, bit for bit, on 1 and 2 threads; and clip_grad_norm's
// fixed-block sum. Shapes cross chunk boundaries; some parameters miss a gradient on some steps.
#include <cmath>
#include <cstring>

#include <gtest/gtest.h>

#include "frugal/base/parallel.h"
#include "frugal/base/rng.h"
#include "frugal/nn/nn.h"
#include "frugal/optim/optim.h"
#include "test_util.h"

namespace frugal {
namespace {

const std::vector<Shape> kShapes = {{40000}, {16384}, {3, 5}, {1}, {16385}, {128, 130}};

// Per-parameter reference state and loops, PyTorch's formulas with the same roundings as the
// optimizer (std::fma where it fuses, nothing fused elsewhere).
template <class T>
struct Reference {
  std::vector<std::vector<T>> p, m, v, buffer;
  std::vector<int64_t> steps;
};

template <class T>
void reference_adamw(Reference<T>& r, size_t k, const std::vector<T>& g, double lr, double wd, const optim::AdamWOptions& o) {
  if (r.m[k].empty()) r.m[k].assign(g.size(), T(0)), r.v[k].assign(g.size(), T(0));
  const int64_t step = ++r.steps[k];
  const double bias_correction1 = 1.0 - std::pow(o.beta1, double(step));
  const double bias_correction2_sqrt = std::sqrt(1.0 - std::pow(o.beta2, double(step)));
  const T decay = T(1.0 - lr * wd), weight = T(1.0 - o.beta1), beta2 = T(o.beta2), keep2 = T(1.0 - o.beta2);
  const T bc2 = T(bias_correction2_sqrt), eps = T(o.eps), step_size = T(-(lr / bias_correction1));
  const bool lerp_from_start = std::abs(1.0 - o.beta1) < 0.5;
  for (size_t i = 0; i < g.size(); ++i) {
    volatile T decayed = r.p[k][i] * decay;  // volatile: rounded, not fused into the last addition
    const T m_old = r.m[k][i];
    r.m[k][i] = lerp_from_start ? std::fma(weight, g[i] - m_old, m_old) : std::fma(-(g[i] - m_old), T(1) - weight, g[i]);
    r.v[k][i] = std::fma(keep2 * g[i], g[i], r.v[k][i] * beta2);
    const T denom = std::sqrt(r.v[k][i]) / bc2 + eps;
    r.p[k][i] = T(decayed) + step_size * r.m[k][i] / denom;
  }
}

template <class T>
void reference_sgd(Reference<T>& r, size_t k, const std::vector<T>& g, double lr, double wd, const optim::SgdOptions& o) {
  const bool first = r.buffer[k].empty();
  if (o.momentum != 0 && first) r.buffer[k].assign(g.size(), T(0));
  for (size_t i = 0; i < g.size(); ++i) {
    T d = g[i];
    if (wd != 0) d = std::fma(T(wd), r.p[k][i], d);
    if (o.momentum != 0) {
      const T b = first ? d : std::fma(r.buffer[k][i], T(o.momentum), T(1.0 - o.dampening) * d);
      r.buffer[k][i] = b;
      d = o.nesterov ? std::fma(T(o.momentum), b, d) : b;
    }
    r.p[k][i] = std::fma(T(-lr), d, r.p[k][i]);
  }
}

// Runs 4 steps of the optimizer made by `make` and of the reference; compares every parameter bit
// for bit after each step. Group "a" holds even-indexed shapes (decay 0.1, lr x 1), "b" the others
// (no decay, lr x 0.5); parameter 2 has no gradient on step 1, parameter 4 none on step 2.
template <class T, class Make, class Ref>
void compare_with_reference(int threads, Make&& make, Ref&& reference_step) {
  set_num_threads(threads);
  const DType dtype = dtype_of<T>::value;
  std::vector<Tensor> params;
  Reference<T> ref;
  for (size_t k = 0; k < kShapes.size(); ++k) {
    Tensor p = testing::random_tensor(kShapes[k], 100 + k, DType::f64).to(dtype);
    p.set_requires_grad(true);
    params.push_back(p);
    ref.p.push_back(p.to_vector<T>());
  }
  ref.m.resize(params.size()), ref.v.resize(params.size()), ref.buffer.resize(params.size());
  ref.steps.assign(params.size(), 0);
  std::vector<optim::ParamGroup> groups = {{"a", {}, 0.1, 1.0}, {"b", {}, 0.0, 0.5}};
  for (size_t k = 0; k < params.size(); ++k) groups[k % 2].params.push_back(params[k]);
  auto optimizer = make(groups);
  const double lr = 0.01;
  for (int step = 0; step < 4; ++step) {
    for (size_t k = 0; k < params.size(); ++k) {
      if ((k == 2 && step == 1) || (k == 4 && step == 2)) {
        params[k].set_grad(Tensor());
        continue;
      }
      Tensor g = testing::random_tensor(kShapes[k], 1000 * uint64_t(step) + k, DType::f64, -2.0, 2.0).to(dtype);
      params[k].set_grad(g);
      const bool in_a = k % 2 == 0;
      reference_step(ref, k, g.to_vector<T>(), lr * (in_a ? 1.0 : 0.5), in_a ? 0.1 : 0.0);
    }
    optimizer->step();
    for (size_t k = 0; k < params.size(); ++k) {
      std::vector<T> actual = params[k].to_vector<T>();
      ASSERT_EQ(std::memcmp(actual.data(), ref.p[k].data(), actual.size() * sizeof(T)), 0)
          << "parameter " << k << " " << shape_str(kShapes[k]) << " differs after step " << step << " on "
          << threads << " threads";
    }
  }
}

template <class T>
void check_adamw(const optim::AdamWOptions& options) {
  for (int threads : {1, 2})
    compare_with_reference<T>(
        threads, [&](std::vector<optim::ParamGroup> groups) { return std::make_unique<optim::AdamW>(groups, options); },
        [&](Reference<T>& r, size_t k, const std::vector<T>& g, double lr, double wd) {
          reference_adamw(r, k, g, lr, wd, options);
        });
}

template <class T>
void check_sgd(const optim::SgdOptions& options) {
  for (int threads : {1, 2})
    compare_with_reference<T>(
        threads, [&](std::vector<optim::ParamGroup> groups) { return std::make_unique<optim::SGD>(groups, options); },
        [&](Reference<T>& r, size_t k, const std::vector<T>& g, double lr, double wd) {
          reference_sgd(r, k, g, lr, wd, options);
        });
}

TEST(FusedStep, AdamWMatchesThePerParameterLoopBitForBit) {
  optim::AdamWOptions options;
  options.lr = 0.01;
  check_adamw<float>(options);
  check_adamw<double>(options);
  options.beta1 = 0.3;  // torch.lerp's other formula
  check_adamw<float>(options);
}

TEST(FusedStep, SgdMatchesThePerParameterLoopBitForBit) {
  for (const optim::SgdOptions& options :
       {optim::SgdOptions{0.01}, optim::SgdOptions{0.01, 0.9}, optim::SgdOptions{0.01, 0.9, 0.25},
        optim::SgdOptions{0.01, 0.9, 0.0, true}}) {
    check_sgd<float>(options);
    check_sgd<double>(options);
  }
}

TEST(FusedStep, AParameterListedTwiceIsRefused) {
  // Its chunks would be updated twice, possibly by two threads at once.
  Tensor p = Tensor::zeros({4});
  p.set_requires_grad(true);
  EXPECT_THROW(optim::SGD(std::vector<Tensor>{p, p}, optim::SgdOptions{0.1}), InternalError);
  std::vector<optim::ParamGroup> groups = {{"a", {p}, 0.0, 1.0}, {"b", {p.slice_view(0, 0, 2)}, 0.0, 1.0}};
  EXPECT_THROW(optim::AdamW(groups, optim::AdamWOptions{}), InternalError);
}

// clip_grad_norm sums each gradient in 16K blocks in order and adds the blocks in order; written
// out here with the same fma, the norm and the scaled gradients must agree exactly.
TEST(FusedStep, ClipNormIsTheFixedBlockSumOnAnyThreadCount) {
  std::vector<Tensor> params;
  for (size_t k = 0; k < kShapes.size(); ++k) {
    Tensor p = Tensor::zeros(kShapes[k]);
    p.set_requires_grad(true);
    if (k != 3) p.set_grad(testing::random_tensor(kShapes[k], 7 + k, DType::f32, -3.0, 3.0));
    params.push_back(p);
  }
  double expected = 0;
  for (const Tensor& p : params) {
    if (!p.grad().defined()) continue;
    std::vector<float> g = p.grad().to_vector<float>();
    for (size_t begin = 0; begin < g.size(); begin += 16384) {
      double block = 0;
      for (size_t i = begin; i < std::min(g.size(), begin + 16384); ++i) block = std::fma(double(g[i]), double(g[i]), block);
      expected += block;
    }
  }
  expected = std::sqrt(expected);
  std::vector<std::vector<float>> before;
  for (const Tensor& p : params) before.push_back(p.grad().defined() ? p.grad().to_vector<float>() : std::vector<float>{});
  for (int threads : {2, 1}) {
    set_num_threads(threads);
    double norm = optim::clip_grad_norm(params, 1e30);  // no scaling
    EXPECT_EQ(norm, expected) << threads << " threads";
  }
  const double norm = optim::clip_grad_norm(params, 2.0);
  const float scale = float(2.0 / (expected + 1e-6));
  EXPECT_EQ(norm, expected);
  for (size_t k = 0; k < params.size(); ++k) {
    if (before[k].empty()) {
      EXPECT_FALSE(params[k].grad().defined());
      continue;
    }
    std::vector<float> after = params[k].grad().to_vector<float>();
    for (size_t i = 0; i < after.size(); ++i) ASSERT_EQ(after[i], before[k][i] * scale) << "parameter " << k << " element " << i;
  }
}

}  // namespace
}  // namespace frugal
