// bf16-mixed precision for matmul / linear / conv2d: the f32 -> bf16 conversion kernel against its
// reference, every output and gradient against the f32 oracle on bf16-rounded operands (tight)
// and against fp32 within a proven rounding bound (loose), fp32 and f64 untouched, determinism,
// and a small MLP trained in both precisions.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/gradcheck.h"
#include "frugal/autograd/ops.h"
#include "frugal/autograd/precision.h"
#include "frugal/kernels/cpu/convert.h"
#include "frugal/kernels/kernels.h"
#include "frugal/kernels/ref/convert.h"
#include "dense_cases.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::all_close;
using testing::random_tensor;
using testing::Case;
using testing::Fn;

std::vector<Case> cases() { return testing::dense_cases(); }
std::vector<Tensor> case_inputs(const Case& c, DType dtype = DType::f32) { return testing::case_inputs(c, 100, dtype); }

Tensor abs_of(const Tensor& t) {
  Tensor out = t.to(DType::f64).contiguous().clone();
  double* p = out.data<double>();
  for (int64_t i = 0; i < out.numel(); ++i) p[i] = std::fabs(p[i]);
  return out.to(t.dtype());
}

// The output and the gradient of every input for loss = sum(out * r), r fixed random (so the
// upstream gradient is r itself, not rounded). With `abs_weights`, r is |r|.
std::vector<Tensor> run(const Fn& fn, const std::vector<Tensor>& inputs, Precision precision, bool reference,
                        bool abs_weights = false) {
  kernels::ReferenceModeGuard reference_mode(reference);
  PrecisionGuard guard(precision);
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) {
    Tensor leaf = t.clone();
    leaf.set_requires_grad(true);
    leaves.push_back(leaf);
  }
  Tensor out = fn(leaves);
  Tensor r = random_tensor(out.shape(), 99, out.dtype());
  if (abs_weights) r = abs_of(r);
  autograd::backward(sum(mul(out, r)));
  std::vector<Tensor> results{out.detach()};
  for (const Tensor& leaf : leaves) results.push_back(leaf.grad());
  return results;
}

const char* result_name(size_t i) { return i == 0 ? "output" : i == 1 ? "grad 0" : i == 2 ? "grad 1" : "grad 2"; }

TEST(Bf16Convert, FastMatchesReferenceBitForBit) {
  const float specials[] = {0.0f, -0.0f, 1.0f, -1.5f, std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
                            -std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::max(),
                            std::numeric_limits<float>::denorm_min(), -1e-40f, 1.00390625f /* tie, even below */,
                            1.01171875f /* tie, odd below */, 3.0e38f};
  for (int64_t n : {0, 1, 15, 16, 17, 33, 100003}) {
    Tensor x = random_tensor({n}, 7 + uint64_t(n), DType::f32, -1e3, 1e3);
    float* p = x.data<float>();
    for (int64_t i = 0; i < n; ++i)
      if (i % 7 == 3) p[i] = specials[size_t(i / 7) % (sizeof(specials) / sizeof(float))];
    // A signalling NaN too: it must come out quiet, as the scalar rule makes it.
    if (n > 5) {
      uint32_t snan = 0x7F800001u;
      std::memcpy(&p[5], &snan, 4);
    }
    std::vector<bf16_t> fast(size_t(n) + 1), reference(size_t(n) + 1);
    kernels::cpu::f32_to_bf16(p, fast.data(), n);
    kernels::ref::f32_to_bf16(p, reference.data(), n);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(fast[size_t(i)].bits, reference[size_t(i)].bits) << "n " << n << " index " << i << " value " << p[i];
  }
  // Bit patterns 65521 apart (a prime) span every exponent and sign: whole vectors of normal
  // numbers, NaNs and infinities, as well as the denormal ones, round as the scalar rule does.
  {
    const int64_t n = 65536;
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t u = uint32_t(i) * 65521u;
      std::memcpy(&x[size_t(i)], &u, 4);
    }
    std::vector<bf16_t> fast(static_cast<size_t>(n)), reference(static_cast<size_t>(n));
    kernels::cpu::f32_to_bf16(x.data(), fast.data(), n);
    kernels::ref::f32_to_bf16(x.data(), reference.data(), n);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(fast[size_t(i)].bits, reference[size_t(i)].bits) << "index " << i << " value " << x[size_t(i)];
  }
  // The rounding itself: ties go to even, and values just above a tie round up.
  EXPECT_EQ(float_to_bf16(1.00390625f).bits, float_to_bf16(1.0f).bits);
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.01171875f)), 1.015625f);
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.0040f)), 1.0078125f);
}

// Tight: the fast bf16 kernels against the reference kernels (double accumulation) on the same
// bf16-rounded operands. Only f32 accumulation order differs, so f32-level tolerance holds.
TEST(Bf16Mixed, MatchesF32OracleOnRoundedOperands) {
  for (const Case& c : cases()) {
    std::vector<Tensor> inputs = case_inputs(c);
    std::vector<Tensor> fast = run(c.fn, inputs, Precision::bf16_mixed, false);
    std::vector<Tensor> oracle = run(c.fn, inputs, Precision::bf16_mixed, true);
    for (size_t i = 0; i < fast.size(); ++i)
      EXPECT_TRUE(all_close(fast[i], oracle[i], 2e-5, 2e-5)) << c.name << " " << result_name(i);
  }
}

// Loose: bf16-mixed against plain fp32. RNE to bf16's 8-bit significand has unit roundoff 2^-8,
// so a product a*b of rounded operands has relative error at most (1 + 2^-8)^2 - 1 < 2^-7 * 1.01
// (under 1e-2), and an output that sums products differs from fp32 by at most
// 2^-7 * 1.01 * sum |a||b|, which is the same op run on
// |inputs| (and |r| for gradients, whose upstream r is rounded as well), plus f32 summation slack.
// With cancellation an element can be far off relatively, so this bound, not a flat 1e-2
// relative tolerance, is what every element must meet; the norm-wise relative error is also
// checked against 1e-2.
TEST(Bf16Mixed, WithinRoundingBoundOfFp32) {
  for (const Case& c : cases()) {
    std::vector<Tensor> inputs = case_inputs(c);
    std::vector<Tensor> mixed = run(c.fn, inputs, Precision::bf16_mixed, false);
    std::vector<Tensor> exact = run(c.fn, inputs, Precision::fp32, false);
    std::vector<Tensor> abs_inputs;
    for (const Tensor& t : inputs) abs_inputs.push_back(abs_of(t));
    std::vector<Tensor> bound = run(c.fn, abs_inputs, Precision::fp32, true, true);
    bool any_difference = false;
    for (size_t i = 0; i < mixed.size(); ++i) {
      std::vector<double> m = mixed[i].to_vector<double>(), e = exact[i].to_vector<double>(),
                          b = bound[i].to_vector<double>();
      double err2 = 0, ref2 = 0;
      for (size_t j = 0; j < m.size(); ++j) {
        const double diff = std::fabs(m[j] - e[j]);
        any_difference |= diff > 0;
        EXPECT_LE(diff, std::ldexp(1.01, -7) * b[j] + 1e-5 * (1 + b[j])) << c.name << " " << result_name(i) << " [" << j << "]";
        err2 += diff * diff;
        ref2 += e[j] * e[j];
      }
      EXPECT_LE(std::sqrt(err2), 1e-2 * std::sqrt(ref2)) << c.name << " " << result_name(i);
    }
    // The mode must really round: with random operands some result differs from fp32.
    if (std::string(c.name) != "matmul tiny") {
      EXPECT_TRUE(any_difference) << c.name;
    }
  }
}

TEST(Bf16Mixed, Fp32ModeIsUnchangedAndDefault) {
  EXPECT_EQ(compute_precision(), Precision::fp32);
  for (const Case& c : cases()) {
    std::vector<Tensor> inputs = case_inputs(c);
    std::vector<Tensor> before = run(c.fn, inputs, compute_precision(), false);
    run(c.fn, inputs, Precision::bf16_mixed, false);  // primitives of both kinds now cached
    std::vector<Tensor> after = run(c.fn, inputs, Precision::fp32, false);
    std::vector<Tensor> reference = run(c.fn, inputs, Precision::fp32, true);
    for (size_t i = 0; i < before.size(); ++i) {
      EXPECT_TRUE(all_close(after[i], before[i], 0, 0)) << c.name << " " << result_name(i);
      EXPECT_TRUE(all_close(after[i], reference[i], 2e-5, 2e-5)) << c.name << " " << result_name(i);
    }
  }
  EXPECT_EQ(compute_precision(), Precision::fp32);  // guards restore
}

TEST(Bf16Mixed, F64IgnoresTheSetting) {
  for (const Case& c : cases()) {
    std::vector<Tensor> inputs = case_inputs(c, DType::f64);
    std::vector<Tensor> mixed = run(c.fn, inputs, Precision::bf16_mixed, false);
    std::vector<Tensor> plain = run(c.fn, inputs, Precision::fp32, false);
    for (size_t i = 0; i < mixed.size(); ++i)
      EXPECT_TRUE(all_close(mixed[i], plain[i], 0, 0)) << c.name << " " << result_name(i);
  }
  PrecisionGuard guard(Precision::bf16_mixed);
  Tensor x = testing::random_leaf({3, 4}, 1), w = testing::random_leaf({2, 4}, 2), b = testing::random_leaf({2}, 3);
  auto r = gradcheck([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); }, {x, w, b});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Bf16Mixed, BackwardKeepsTheForwardPrecision) {
  // Forward in bf16-mixed, backward after the guard is gone: gradients still use bf16 operands.
  const Case c = cases()[0];
  std::vector<Tensor> inputs = case_inputs(c);
  std::vector<Tensor> expected = run(c.fn, inputs, Precision::bf16_mixed, false);
  Tensor a = inputs[0].clone(), b = inputs[1].clone();
  a.set_requires_grad(true), b.set_requires_grad(true);
  Tensor out;
  {
    PrecisionGuard guard(Precision::bf16_mixed);
    out = c.fn({a, b});
  }
  autograd::backward(sum(mul(out, random_tensor(out.shape(), 99))));
  EXPECT_TRUE(all_close(a.grad(), expected[1], 0, 0));
  EXPECT_TRUE(all_close(b.grad(), expected[2], 0, 0));
}

TEST(Bf16Mixed, Deterministic) {
  for (const Case& c : cases()) {
    std::vector<Tensor> inputs = case_inputs(c);
    std::vector<Tensor> first = run(c.fn, inputs, Precision::bf16_mixed, false);
    std::vector<Tensor> second = run(c.fn, inputs, Precision::bf16_mixed, false);
    for (size_t i = 0; i < first.size(); ++i)
      EXPECT_TRUE(all_close(first[i], second[i], 0, 0)) << c.name << " " << result_name(i);
  }
}

TEST(Bf16Mixed, ParsesJobFileModes) {
  EXPECT_EQ(parse_precision("fp32", "job.toml [precision] mode"), Precision::fp32);
  EXPECT_EQ(parse_precision("bf16-mixed", "job.toml [precision] mode"), Precision::bf16_mixed);
  EXPECT_EQ(precision_name(Precision::bf16_mixed), "bf16-mixed");
  EXPECT_EQ(parse_precision("fp16-mixed", "job.toml [precision] mode"), Precision::fp16_mixed);  // fp16_test.cc
  EXPECT_THROW(parse_precision("bf16", "job.toml [precision] mode"), InputError);
}

// A 2-layer MLP regressing a smooth target, 50 SGD steps; returns the loss after each step.
std::vector<double> train_mlp(Precision precision) {
  PrecisionGuard guard(precision);
  Tensor x = random_tensor({64, 8}, 11);
  Tensor target = sum(mul(x, random_tensor({8}, 12)), {1}, true);  // (64, 1), linear in x
  {
    Tensor t = target.contiguous();
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = std::tanh(p[i]);
    target = t;
  }
  std::vector<Tensor> params{mul_scalar(random_tensor({32, 8}, 13), 0.5), Tensor::zeros({32}),
                             mul_scalar(random_tensor({1, 32}, 14), 0.3), Tensor::zeros({1})};
  for (Tensor& p : params) p = p.contiguous().clone().set_requires_grad(true);
  std::vector<double> losses;
  for (int step = 0; step < 50; ++step) {
    Tensor loss = mse_loss(linear(relu(linear(x, params[0], params[1])), params[2], params[3]), target);
    losses.push_back(loss.item());
    autograd::backward(loss);
    autograd::NoGradGuard no_grad;
    for (Tensor& p : params) {  // plain SGD on the f32 master weights
      float* w = p.data<float>();
      Tensor g = p.grad().contiguous();
      const float* gp = g.data<float>();
      for (int64_t i = 0; i < p.numel(); ++i) w[i] -= 0.2f * gp[i];
      p.set_grad(Tensor());
    }
  }
  return losses;
}

TEST(Bf16Mixed, TinyMlpTrainsLikeFp32) {
  std::vector<double> fp32 = train_mlp(Precision::fp32), bf16 = train_mlp(Precision::bf16_mixed);
  EXPECT_LT(fp32.back(), 0.3 * fp32.front());  // the task is learnable in 50 steps
  EXPECT_NEAR(bf16.back(), fp32.back(), 0.03 * fp32.back());
  EXPECT_NE(bf16.back(), fp32.back());  // and the two runs did differ
  EXPECT_EQ(train_mlp(Precision::bf16_mixed), bf16);  // deterministic
}

}  // namespace
}  // namespace frugal
