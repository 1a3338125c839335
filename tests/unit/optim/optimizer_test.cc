// Optimizers against hand-computed (and PyTorch-confirmed) updates, convergence on a quadratic and
// a toy classification problem, parameter groups, state round trips and gradient clipping.
#include <cmath>

#include <gtest/gtest.h>

#include "frugal/nn/nn.h"
#include "frugal/optim/optim.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::all_close;

// Runs three steps on p = [1, -2] (f64) with fixed gradients; returns p after each step.
template <class Make>
std::vector<std::vector<double>> three_steps(Make&& make) {
  Tensor p = Tensor::from_vector(std::vector<double>{1.0, -2.0}, {2});
  p.set_requires_grad(true);
  auto optimizer = make(std::vector<Tensor>{p});
  const std::vector<std::vector<double>> grads = {{0.5, -1.0}, {0.25, 0.5}, {-1.0, 2.0}};
  std::vector<std::vector<double>> out;
  for (const auto& g : grads) {
    p.set_grad(Tensor::from_vector(g, {2}));
    optimizer->step();
    out.push_back(p.to_vector<double>());
  }
  EXPECT_EQ(optimizer->step_count(), 3);
  return out;
}

void expect_steps(const std::vector<std::vector<double>>& actual, const std::vector<std::vector<double>>& expected) {
  for (size_t s = 0; s < expected.size(); ++s)
    for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(actual[s][i], expected[s][i], 1e-12) << "step " << s << " element " << i;
}

TEST(Sgd, MomentumDampeningWeightDecayByHand) {
  // lr 0.1, momentum 0.9, dampening 0.1, wd 0.01. Element 0:
  //   step 1: d = 0.5 + 0.01 * 1 = 0.51; buf = d = 0.51 (no dampening on the first step); p = 1 - 0.051 = 0.949
  //   step 2: d = 0.25 + 0.00949 = 0.25949; buf = 0.9 * 0.51 + 0.9 * 0.25949 = 0.692541; p = 0.8797459
  // (torch.optim.SGD gives the same values, third step included.)
  auto steps = three_steps([](std::vector<Tensor> params) {
    return std::make_unique<optim::SGD>(params, optim::SgdOptions{0.1, 0.9, 0.1, false, 0.01});
  });
  expect_steps(steps, {{0.949, -1.898}, {0.8797459, -1.8494918}, {0.90662543869, -1.98416987738}});
}

TEST(Sgd, NesterovAndPlainByHand) {
  // Nesterov, momentum 0.9: step 1: buf = 0.5, d = 0.5 + 0.9 * 0.5 = 0.95, p = 1 - 0.095 = 0.905;
  // step 2: buf = 0.45 + 0.25 = 0.7, d = 0.25 + 0.63 = 0.88, p = 0.817.
  auto nesterov = three_steps([](std::vector<Tensor> params) {
    return std::make_unique<optim::SGD>(params, optim::SgdOptions{0.1, 0.9, 0.0, true, 0.0});
  });
  expect_steps(nesterov, {{0.905, -1.81}, {0.817, -1.824}, {0.9503, -2.1716}});
  auto plain = three_steps([](std::vector<Tensor> params) {
    return std::make_unique<optim::SGD>(params, optim::SgdOptions{0.1});
  });
  expect_steps(plain, {{0.95, -1.9}, {0.925, -1.95}, {1.025, -2.15}});
  EXPECT_THROW(optim::SGD(std::vector<Tensor>{}, optim::SgdOptions{0.1, 0.0, 0.0, true}), InputError);
}

TEST(AdamW, DecoupledDecayAndBiasCorrectionByHand) {
  // lr 0.1, betas (0.9, 0.999), eps 1e-8, wd 0.1. Element 0, step 1:
  //   p = 1 * (1 - 0.1 * 0.1) = 0.99; m = 0.05; v = 0.001 * 0.25 = 0.00025;
  //   step_size = 0.1 / (1 - 0.9) = 1; denom = sqrt(0.00025) / sqrt(1 - 0.999) + 1e-8 = 0.5 + 1e-8;
  //   p = 0.99 - 0.05 / (0.5 + 1e-8) = 0.890000002
  // Steps 2 and 3 as torch.optim.AdamW computes them (f64).
  auto steps = three_steps([](std::vector<Tensor> params) {
    return std::make_unique<optim::AdamW>(params, optim::AdamWOptions{0.1, 0.9, 0.999, 1e-8, 0.1});
  });
  expect_steps(steps, {{0.890000002, -1.880000001},
                       {0.7878820404574624, -1.8345662973609032},
                       {0.8006389224608368, -1.8619538130424145}});
}

TEST(Optimizers, F32StepMatchesF64Closely) {
  for (int kind = 0; kind < 2; ++kind) {
    Tensor p64 = testing::random_tensor({1000}, 1, DType::f64), p32 = p64.to(DType::f32);
    p64.set_requires_grad(true), p32.set_requires_grad(true);
    std::unique_ptr<optim::Optimizer> o64, o32;
    if (kind == 0) {
      o64 = std::make_unique<optim::AdamW>(std::vector<Tensor>{p64}, optim::AdamWOptions{0.01});
      o32 = std::make_unique<optim::AdamW>(std::vector<Tensor>{p32}, optim::AdamWOptions{0.01});
    } else {
      o64 = std::make_unique<optim::SGD>(std::vector<Tensor>{p64}, optim::SgdOptions{0.01, 0.9, 0, true, 1e-4});
      o32 = std::make_unique<optim::SGD>(std::vector<Tensor>{p32}, optim::SgdOptions{0.01, 0.9, 0, true, 1e-4});
    }
    for (int s = 0; s < 5; ++s) {
      Tensor g = testing::random_tensor({1000}, 10 + s, DType::f64);
      p64.set_grad(g);
      p32.set_grad(g.to(DType::f32));
      o64->step(), o32->step();
    }
    EXPECT_TRUE(all_close(p32, p64, 1e-6, 1e-5)) << kind;
  }
}

TEST(Optimizers, MinimizeAQuadratic) {
  // f(p) = sum((p - target)^2), minimum at target.
  Tensor target = Tensor::from_vector(std::vector<float>{3.0f, -1.0f, 0.5f, 2.0f}, {4});
  auto run = [&](optim::Optimizer& optimizer, Tensor& p, int steps) {
    for (int s = 0; s < steps; ++s) {
      optimizer.zero_grad();
      Tensor d = sub(p, target);
      autograd::backward(sum(mul(d, d)));
      optimizer.step();
    }
  };
  Tensor p1 = Tensor::zeros({4});
  p1.set_requires_grad(true);
  optim::SGD sgd(std::vector<Tensor>{p1}, optim::SgdOptions{0.05, 0.9});
  run(sgd, p1, 200);
  EXPECT_TRUE(all_close(p1, target, 1e-4, 0));
  Tensor p2 = Tensor::zeros({4});
  p2.set_requires_grad(true);
  optim::AdamW adam(std::vector<Tensor>{p2}, optim::AdamWOptions{0.05, 0.9, 0.999, 1e-8, 0.0});
  run(adam, p2, 1000);
  EXPECT_TRUE(all_close(p2, target, 1e-3, 0));
}

TEST(Optimizers, ParametersWithoutGradientAreSkipped) {
  Tensor a = Tensor::ones({3}), b = Tensor::ones({3});
  a.set_requires_grad(true), b.set_requires_grad(true);
  optim::AdamW adam(std::vector<Tensor>{a, b}, optim::AdamWOptions{0.1});
  a.set_grad(Tensor::ones({3}));
  adam.step();
  for (double v : b.to_vector<double>()) EXPECT_EQ(v, 1.0);  // no grad, no decay either
  EXPECT_LT(a.to_vector<double>()[0], 1.0);
  bool has_b_state = false;
  for (const auto& [key, t] : adam.state()) has_b_state |= key.rfind("param.1.", 0) == 0;
  EXPECT_FALSE(has_b_state);
  adam.zero_grad();
  EXPECT_FALSE(a.grad().defined());
}

TEST(ParamGroups, DecayOnlyOnMatrices) {
  nn::CnnConfig config;
  config.height = config.width = 8, config.channels = {4}, config.hidden = {8}, config.outputs = 2;
  auto model = nn::make_cnn(config);
  auto groups = optim::default_param_groups(*model, 0.05);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].name, "decay");
  EXPECT_EQ(groups[0].weight_decay, 0.05);
  EXPECT_EQ(groups[1].name, "no_decay");
  EXPECT_EQ(groups[1].weight_decay, 0.0);
  // decay: conv weight (4-D), two Linear weights; no_decay: conv bias, BN weight/bias, two Linear biases.
  ASSERT_EQ(groups[0].params.size(), 3u);
  ASSERT_EQ(groups[1].params.size(), 5u);
  for (const Tensor& p : groups[0].params) EXPECT_GE(p.rank(), 2);
  for (const Tensor& p : groups[1].params) EXPECT_EQ(p.rank(), 1);
  auto params = model->named_parameters();
  EXPECT_TRUE(groups[0].params[0].same(params[0].second));  // features.0.weight first, model order
}

TEST(ParamGroups, GroupDecayAndLrScaleApply) {
  Tensor w = Tensor::ones({2, 2}, DType::f64), b = Tensor::ones({2}, DType::f64);
  w.set_requires_grad(true), b.set_requires_grad(true);
  optim::SGD sgd({{"decay", {w}, 0.5, 1.0}, {"no_decay", {b}, 0.0, 2.0}}, optim::SgdOptions{0.1});
  w.set_grad(Tensor::zeros({2, 2}, DType::f64));
  b.set_grad(Tensor::ones({2}, DType::f64));
  sgd.step();
  for (double v : w.to_vector<double>()) EXPECT_DOUBLE_EQ(v, 1.0 - 0.1 * 0.5);  // only decay moved w
  for (double v : b.to_vector<double>()) EXPECT_DOUBLE_EQ(v, 1.0 - 0.2);        // lr * lr_scale
  sgd.set_lr(0.01);
  EXPECT_EQ(sgd.lr(), 0.01);
}

TEST(OptimizerState, RoundTripResumesBitExact) {
  auto make_params = [] {
    Tensor w = testing::random_tensor({5, 3}, 1), b = testing::random_tensor({5}, 2);
    w.set_requires_grad(true), b.set_requires_grad(true);
    return std::vector<Tensor>{w, b};
  };
  auto grads = [](int s, const std::vector<Tensor>& params) {
    for (size_t i = 0; i < params.size(); ++i)
      params[i].impl()->grad = testing::random_tensor(params[i].shape(), 100 + s * 7 + i).impl_ptr();
  };
  for (int kind = 0; kind < 2; ++kind) {
    auto make = [&](std::vector<Tensor> params) -> std::unique_ptr<optim::Optimizer> {
      if (kind == 0) return std::make_unique<optim::AdamW>(params, optim::AdamWOptions{0.01});
      return std::make_unique<optim::SGD>(params, optim::SgdOptions{0.01, 0.9, 0.1});
    };
    auto straight = make_params();
    auto opt = make(straight);
    for (int s = 0; s < 5; ++s) grads(s, straight), opt->step();

    auto resumed = make_params();
    auto first = make(resumed);
    for (int s = 0; s < 3; ++s) grads(s, resumed), first->step();
    optim::NamedTensors saved;
    for (const auto& [key, t] : first->state()) saved.emplace_back(key, t.clone());  // as a checkpoint would
    std::vector<Tensor> copies = {resumed[0].clone(), resumed[1].clone()};
    copies[0].set_requires_grad(true), copies[1].set_requires_grad(true);
    auto second = make(copies);
    second->load_state(saved);
    EXPECT_EQ(second->step_count(), 3);
    for (int s = 3; s < 5; ++s) grads(s, copies), second->step();
    EXPECT_TRUE(all_close(copies[0], straight[0], 0, 0)) << kind;
    EXPECT_TRUE(all_close(copies[1], straight[1], 0, 0)) << kind;
  }
}

TEST(OptimizerState, BadStateIsAnInputError) {
  Tensor p = Tensor::zeros({3});
  p.set_requires_grad(true);
  optim::AdamW adam(std::vector<Tensor>{p}, optim::AdamWOptions{});
  EXPECT_THROW(adam.load_state({{"param.1.exp_avg", Tensor::zeros({3})}}), InputError);   // no parameter 1
  EXPECT_THROW(adam.load_state({{"param.0.momentum", Tensor::zeros({3})}}), InputError);  // not an AdamW buffer
  EXPECT_THROW(adam.load_state({{"param.0.exp_avg", Tensor::zeros({4})}}), InputError);   // wrong shape
  EXPECT_THROW(adam.load_state({{"lr", Tensor::zeros({2})}}), InputError);
  EXPECT_EQ(adam.step_count(), 0);
}

TEST(Clip, GlobalNormScalesAllGradients) {
  Tensor a = Tensor::zeros({2}), b = Tensor::zeros({1}), c = Tensor::zeros({4});
  for (Tensor* t : {&a, &b, &c}) t->set_requires_grad(true);
  a.set_grad(Tensor::from_vector(std::vector<float>{3, 4}, {2}));
  b.set_grad(Tensor::from_vector(std::vector<float>{12}, {1}));  // c has no grad: skipped
  double norm = optim::clip_grad_norm({a, b, c}, 1.0);
  EXPECT_NEAR(norm, 13.0, 1e-9);
  const double scale = 1.0 / (13.0 + 1e-6);
  EXPECT_NEAR(a.grad().at({0}), 3 * scale, 1e-7);
  EXPECT_NEAR(a.grad().at({1}), 4 * scale, 1e-7);
  EXPECT_NEAR(b.grad().at({0}), 12 * scale, 1e-7);
  // Already below the limit: untouched, norm still reported.
  double after = optim::clip_grad_norm({a, b, c}, 5.0);
  EXPECT_NEAR(after, 1.0, 1e-6);
  EXPECT_NEAR(b.grad().at({0}), 12 * scale, 1e-7);
}

TEST(Clip, LargeTensorNormIsExactAndThreadIndependent) {
  Tensor big = Tensor::ones({100003});  // spans several fixed blocks, odd tail
  big.set_requires_grad(true);
  big.set_grad(Tensor::full({100003}, 0.5));
  EXPECT_DOUBLE_EQ(optim::clip_grad_norm({big}, 1e9), std::sqrt(100003 * 0.25));
}

// A tiny MLP learns a separable toy problem (label = x0 + x1 > 0) to a small loss with SGD.
TEST(Training, TinyMlpSeparatesTwoClasses) {
  const int64_t n = 128;
  Rng rng(3, 0, RandomPurpose::test);
  std::vector<float> xs(static_cast<size_t>(n * 2));
  std::vector<int64_t> ys(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    float x0 = 2 * rng.uniform() - 1, x1 = 2 * rng.uniform() - 1;
    if (std::fabs(x0 + x1) < 0.1f) x0 += x0 + x1 >= 0 ? 0.2f : -0.2f;  // a margin between the classes
    xs[size_t(2 * i)] = x0, xs[size_t(2 * i + 1)] = x1;
    ys[size_t(i)] = x0 + x1 > 0 ? 1 : 0;
  }
  Tensor x = Tensor::from_vector(xs, {n, 2}), y = Tensor::from_vector(ys, {n});
  auto model = nn::make_mlp({2, {16}, 2, "relu"}, 7);
  optim::SGD sgd(optim::default_param_groups(*model, 0.0), optim::SgdOptions{0.5, 0.9});
  double loss = 0;
  for (int step = 0; step < 300; ++step) {
    sgd.zero_grad();
    Tensor l = cross_entropy(model->forward(x), y);
    autograd::backward(l);
    sgd.step();
    loss = l.item();
  }
  EXPECT_LT(loss, 0.05);
}

}  // namespace
}  // namespace frugal
