// fp16-mixed precision for matmul / linear / conv2d: the f32 -> f16-value rounding kernel against
// the scalar dtype.h rule bit for bit, every output and gradient against the plain f32 op run on
// f16-rounded operands (tight), visible differences from fp32 where f16 rounding, overflow or
// underflow matters, fp32 / f64 untouched, backward in the forward's precision, determinism.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/ops.h"
#include "frugal/autograd/precision.h"
#include "frugal/kernels/cpu/dense.h"
#include "frugal/kernels/kernels.h"
#include "dense_cases.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::all_close;
using testing::random_tensor;
using testing::Case;
using testing::Fn;

std::vector<Case> cases() { return testing::dense_cases(); }
std::vector<Tensor> case_inputs(const Case& c, DType dtype = DType::f32) { return testing::case_inputs(c, 200, dtype); }

float round_f16(float x) { return f16_to_float(float_to_f16(x)); }

// A copy of an f32 tensor with every value rounded to the nearest f16 (the scalar dtype.h rule).
Tensor rounded(const Tensor& t) {
  Tensor out = t.contiguous().clone();
  float* p = out.data<float>();
  for (int64_t i = 0; i < out.numel(); ++i) p[i] = round_f16(p[i]);
  return out;
}

// The output and the gradient of every input for loss = sum(out * r), r fixed random; with
// `r_in_f16`, r holds f16 values, so the upstream gradient the mode rounds is already exact.
std::vector<Tensor> run(const Fn& fn, const std::vector<Tensor>& inputs, Precision precision, bool reference,
                        bool r_in_f16) {
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
  if (r_in_f16) r = rounded(r);
  autograd::backward(sum(mul(out, r)));
  std::vector<Tensor> results{out.detach()};
  for (const Tensor& leaf : leaves) results.push_back(leaf.grad());
  return results;
}

const char* result_name(size_t i) { return i == 0 ? "output" : i == 1 ? "grad 0" : i == 2 ? "grad 1" : "grad 2"; }

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

TEST(F16Round, FastMatchesScalarRuleBitForBit) {
  const float inf = std::numeric_limits<float>::infinity();
  const float specials[] = {0.0f, -0.0f, 1.0f, -1.5f, inf, -inf, std::numeric_limits<float>::quiet_NaN(),
                            -std::numeric_limits<float>::quiet_NaN(), 65504.0f, 65519.99f, 65520.0f, -65520.0f,
                            1e5f, std::numeric_limits<float>::max(), std::ldexp(1.0f, -24) /* smallest half */,
                            std::ldexp(1.0f, -25) /* tie to 0 */, std::ldexp(3.0f, -25) /* tie to 2^-23 */,
                            std::ldexp(1.0f, -14) /* smallest normal half */, 1e-9f,
                            std::numeric_limits<float>::denorm_min(), 1.00048828125f /* 1 + 2^-11: tie, even */,
                            1.00146484375f /* 1 + 3 * 2^-11: tie, odd below */, 3.14159265f};
  for (int64_t n : {0, 1, 15, 16, 17, 33, 100003}) {
    // Magnitudes over the whole f16 range and past it: 10^[-9, 6).
    Tensor x = random_tensor({n}, 7 + uint64_t(n), DType::f32, -9, 6);
    float* p = x.data<float>();
    for (int64_t i = 0; i < n; ++i) p[i] = (i % 2 ? -1.0f : 1.0f) * std::pow(10.0f, p[i]);
    for (int64_t i = 0; i < n; ++i)
      if (i % 5 == 3) p[i] = specials[size_t(i / 5) % (sizeof(specials) / sizeof(float))];
    if (n > 5) {  // a signalling NaN with a payload: it comes out the canonical quiet NaN
      uint32_t snan = 0xFF800123u;
      std::memcpy(&p[5], &snan, 4);
    }
    std::vector<float> fast(size_t(n) + 1);
    kernels::cpu::round_to_f16(p, fast.data(), n);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_TRUE(same_bits(fast[size_t(i)], round_f16(p[i])))
          << "n " << n << " index " << i << " value " << p[i] << ": " << fast[size_t(i)] << " vs " << round_f16(p[i]);
    // In place gives the same.
    std::vector<float> in_place(p, p + n);
    kernels::cpu::round_to_f16(in_place.data(), in_place.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_TRUE(same_bits(in_place[size_t(i)], fast[size_t(i)])) << i;
  }
  // The rule itself: nearest even, overflow to inf from 65520 up, denormals kept, underflow to 0.
  EXPECT_EQ(round_f16(65519.0f), 65504.0f);
  EXPECT_EQ(round_f16(65520.0f), inf);
  EXPECT_EQ(round_f16(-70000.0f), -inf);
  EXPECT_EQ(round_f16(1.00048828125f), 1.0f);
  EXPECT_EQ(round_f16(1.00146484375f), 1.001953125f);
  EXPECT_EQ(round_f16(1.0006f), 1.0009765625f);
  EXPECT_EQ(round_f16(std::ldexp(3.0f, -24)), std::ldexp(3.0f, -24));
  EXPECT_EQ(round_f16(std::ldexp(1.0f, -25)), 0.0f);
  EXPECT_EQ(round_f16(std::ldexp(3.0f, -25)), std::ldexp(1.0f, -23));
  EXPECT_EQ(round_f16(1e-9f), 0.0f);
}

// Tight: fp16-mixed is exactly the f32 op on f16-rounded operands. Inputs and the upstream r are
// rounded first, so the plain fp32 run sees the same operand values; the fast path runs the same
// f32 kernels, the reference path the reference ones (only accumulation order may differ).
TEST(Fp16Mixed, EqualsF32OpOnRoundedOperands) {
  for (const Case& c : cases()) {
    // The bias (third input) is added in f32 by the mode, so only the two operands are rounded.
    std::vector<Tensor> inputs = case_inputs(c), rounded_inputs;
    for (size_t i = 0; i < inputs.size(); ++i) rounded_inputs.push_back(i < 2 ? rounded(inputs[i]) : inputs[i]);
    for (bool reference : {false, true}) {
      std::vector<Tensor> mixed = run(c.fn, inputs, Precision::fp16_mixed, reference, true);
      std::vector<Tensor> oracle = run(c.fn, rounded_inputs, Precision::fp32, reference, true);
      for (size_t i = 0; i < mixed.size(); ++i) {
        // The bias gradient is a plain f32 sum of r in both runs; everything else goes through the
        // same kernel on the same values.
        EXPECT_TRUE(all_close(mixed[i], oracle[i], 1e-6, 1e-6))
            << c.name << " " << result_name(i) << (reference ? " (reference)" : " (fast)");
      }
    }
    // Fast against reference kernels in fp16-mixed mode, on unrounded inputs.
    std::vector<Tensor> fast = run(c.fn, inputs, Precision::fp16_mixed, false, false);
    std::vector<Tensor> oracle = run(c.fn, inputs, Precision::fp16_mixed, true, false);
    for (size_t i = 0; i < fast.size(); ++i)
      EXPECT_TRUE(all_close(fast[i], oracle[i], 2e-5, 2e-5)) << c.name << " " << result_name(i);
  }
}

// fp16-mixed really rounds: on random f32 operands outputs and gradients differ from fp32 (within
// f16's relative error 2^-11 per operand, so by about 1e-3 of the result's scale at most).
TEST(Fp16Mixed, DiffersFromFp32WhereRoundingMatters) {
  for (const Case& c : cases()) {
    if (std::string(c.name) == "matmul tiny") continue;
    std::vector<Tensor> inputs = case_inputs(c);
    std::vector<Tensor> mixed = run(c.fn, inputs, Precision::fp16_mixed, false, false);
    std::vector<Tensor> exact = run(c.fn, inputs, Precision::fp32, false, false);
    for (size_t i = 0; i < mixed.size(); ++i) {
      std::vector<double> m = mixed[i].to_vector<double>(), e = exact[i].to_vector<double>();
      double err2 = 0, ref2 = 0;
      for (size_t j = 0; j < m.size(); ++j) err2 += (m[j] - e[j]) * (m[j] - e[j]), ref2 += e[j] * e[j];
      // The bias gradient (grad 2 of linear / conv2d) is an f32 sum of r, the same in both modes
      // for linear; conv2d sums the rounded upstream gradient, as the bf16 path does.
      const bool linear_bias = std::string(c.name) == "linear" && i == 3;
      if (linear_bias) {
        EXPECT_EQ(err2, 0) << c.name;
        continue;
      }
      EXPECT_GT(err2, 0) << c.name << " " << result_name(i) << ": no difference from fp32";
      EXPECT_LE(std::sqrt(err2), 2e-3 * std::sqrt(ref2)) << c.name << " " << result_name(i);
    }
  }
}

// Overflow and underflow of the operands, not of the result: 70000 becomes inf, 1e-8 becomes 0.
TEST(Fp16Mixed, OperandOverflowAndUnderflow) {
  Tensor a = Tensor::from_vector(std::vector<float>{70000.0f, 1.0f, 1e-8f, 1.0f}, {2, 2});
  Tensor b = Tensor::from_vector(std::vector<float>{1e-3f, 1.0f}, {2, 1});
  Tensor tiny = Tensor::from_vector(std::vector<float>{1e-8f}, {1, 1}), one = Tensor::ones({1, 1});
  Tensor fp32 = matmul(a, b), fp16, tiny_fp32 = matmul(tiny, one), tiny_fp16;
  {
    PrecisionGuard guard(Precision::fp16_mixed);
    fp16 = matmul(a, b);
    tiny_fp16 = matmul(tiny, one);
  }
  std::vector<float> e = fp32.to_vector<float>(), m = fp16.to_vector<float>();
  EXPECT_FLOAT_EQ(e[0], 71.0f);
  EXPECT_TRUE(std::isinf(m[0]) && m[0] > 0) << m[0];  // 70000 -> inf
  EXPECT_EQ(m[1], 1.0f);                              // 1e-8 -> 0: 0 * 0.001 + 1
  EXPECT_FLOAT_EQ(tiny_fp32.item(), 1e-8f);
  EXPECT_EQ(tiny_fp16.item(), 0.0);  // below half the smallest f16 denormal (2^-25)
  // Gradients overflow too: an upstream gradient of 1e5 is inf in f16.
  Tensor x = random_tensor({3, 4}, 5).set_requires_grad(true), w = random_tensor({2, 4}, 6).set_requires_grad(true);
  {
    PrecisionGuard guard(Precision::fp16_mixed);
    autograd::backward(mul_scalar(sum(linear(x, w)), 1e5));
  }
  for (float g : w.grad().to_vector<float>()) EXPECT_FALSE(std::isfinite(g));
}

TEST(Fp16Mixed, Fp32AndBf16Unchanged) {
  for (const Case& c : cases()) {
    std::vector<Tensor> inputs = case_inputs(c);
    std::vector<Tensor> fp32_before = run(c.fn, inputs, Precision::fp32, false, false);
    std::vector<Tensor> bf16_before = run(c.fn, inputs, Precision::bf16_mixed, false, false);
    run(c.fn, inputs, Precision::fp16_mixed, false, false);
    std::vector<Tensor> fp32_after = run(c.fn, inputs, Precision::fp32, false, false);
    std::vector<Tensor> bf16_after = run(c.fn, inputs, Precision::bf16_mixed, false, false);
    for (size_t i = 0; i < fp32_before.size(); ++i) {
      EXPECT_TRUE(all_close(fp32_after[i], fp32_before[i], 0, 0)) << c.name << " " << result_name(i);
      EXPECT_TRUE(all_close(bf16_after[i], bf16_before[i], 0, 0)) << c.name << " " << result_name(i);
    }
  }
  EXPECT_EQ(compute_precision(), Precision::fp32);
}

TEST(Fp16Mixed, F64IgnoresTheSetting) {
  for (const Case& c : cases()) {
    std::vector<Tensor> inputs = case_inputs(c, DType::f64);
    std::vector<Tensor> mixed = run(c.fn, inputs, Precision::fp16_mixed, false, false);
    std::vector<Tensor> plain = run(c.fn, inputs, Precision::fp32, false, false);
    for (size_t i = 0; i < mixed.size(); ++i)
      EXPECT_TRUE(all_close(mixed[i], plain[i], 0, 0)) << c.name << " " << result_name(i);
  }
}

TEST(Fp16Mixed, BackwardKeepsTheForwardPrecisionAndIsDeterministic) {
  for (const Case& c : {cases()[0], cases()[7]}) {
    std::vector<Tensor> inputs = case_inputs(c);
    std::vector<Tensor> expected = run(c.fn, inputs, Precision::fp16_mixed, false, false);
    std::vector<Tensor> again = run(c.fn, inputs, Precision::fp16_mixed, false, false);
    std::vector<Tensor> leaves;
    for (const Tensor& t : inputs) leaves.push_back(t.clone().set_requires_grad(true));
    Tensor out;
    {
      PrecisionGuard guard(Precision::fp16_mixed);
      out = c.fn(leaves);
    }
    // Backward after the guard is gone: gradients still use f16 operands.
    autograd::backward(sum(mul(out, random_tensor(out.shape(), 99))));
    for (size_t i = 0; i < leaves.size(); ++i) {
      EXPECT_TRUE(all_close(leaves[i].grad(), expected[i + 1], 0, 0)) << c.name << " " << i;
      EXPECT_TRUE(all_close(again[i + 1], expected[i + 1], 0, 0)) << c.name << " " << i;
    }
  }
}

TEST(Fp16Mixed, ParsesJobFileMode) {
  EXPECT_EQ(parse_precision("fp16-mixed", "job.toml [precision] mode"), Precision::fp16_mixed);
  EXPECT_EQ(precision_name(Precision::fp16_mixed), "fp16-mixed");
  EXPECT_INPUT_ERROR(parse_precision("fp16", "job.toml [precision] mode"), "job.toml [precision] mode", "fp16-mixed");
}

}  // namespace
}  // namespace frugal
