// int8-mixed precision for linear (SwitchBack): the output and dX equal, bit for bit, the scalar
// reference of the same quantized arithmetic, dW its bf16 product within f32 rounding; all three
// within a bound derived from the quantization steps of the fp32 result; excluded weights run
// bf16-mixed exactly; the mode's name parses; convolutions and matmul stay bf16-mixed.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/ops.h"
#include "frugal/autograd/precision.h"
#include "frugal/base/error.h"
#include "frugal/kernels/kernels.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::random_tensor;

struct LinearResult {
  Tensor y, gx, gw, gb;
};

// y = linear(x, w, b) (or linear_relu), loss = sum(y * r): the upstream gradient is r itself.
LinearResult run_linear(const Tensor& x0, const Tensor& w0, const Tensor& b0, Precision precision, bool reference,
                        bool relu = false) {
  kernels::ReferenceModeGuard reference_mode(reference);
  PrecisionGuard guard(precision);
  Tensor x = x0.clone(), w = w0.clone(), b = b0.clone();
  for (Tensor* t : {&x, &w, &b}) t->set_requires_grad(true);
  Tensor y = relu ? linear_relu(x, w, b) : linear(x, w, b);
  Tensor r = random_tensor(y.shape(), 99);
  autograd::backward(sum(mul(y, r)));
  return {y.detach(), x.grad(), w.grad(), b.grad()};
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  if (a.numel() != b.numel()) return false;
  const Tensor ac = a.contiguous(), bc = b.contiguous();
  for (int64_t i = 0; i < a.numel(); ++i)
    if (ac.data<float>()[i] != bc.data<float>()[i]) return false;
  return true;
}

double max_abs(const Tensor& t, int64_t begin, int64_t n, int64_t stride = 1) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(double(t.data<float>()[begin + i * stride])));
  return m;
}

struct Shape3 {
  int64_t m, in, out;
};

TEST(Int8Mixed, MatchesTheScalarReferenceOfTheSameArithmetic) {
  for (const Shape3& s : {Shape3{1, 7, 5}, Shape3{33, 65, 17}, Shape3{128, 784, 256}, Shape3{64, 128, 512}}) {
    for (bool relu : {false, true}) {
      const Tensor x = random_tensor({s.m, s.in}, 1), w = random_tensor({s.out, s.in}, 2, DType::f32, -0.2, 0.2),
                   b = random_tensor({s.out}, 3);
      const LinearResult fast = run_linear(x, w, b, Precision::int8_mixed, false, relu);
      const LinearResult ref = run_linear(x, w, b, Precision::int8_mixed, true, relu);
      EXPECT_TRUE(bit_equal(fast.y, ref.y)) << s.m << "x" << s.in << "x" << s.out << " relu " << relu;
      EXPECT_TRUE(bit_equal(fast.gx, ref.gx)) << s.m << "x" << s.in << "x" << s.out << " relu " << relu;
      for (int64_t o = 0; o < s.out; ++o)  // an f32 column sum (the reference sums in double)
        ASSERT_NEAR(fast.gb.data<float>()[o], ref.gb.data<float>()[o], 1e-5 * std::sqrt(double(s.m)));
      // dW: bf16 operands both ways; oneDNN sums in f32, the reference in double.
      const double scale = max_abs(ref.gw, 0, ref.gw.numel()) + 1e-30;
      for (int64_t i = 0; i < ref.gw.numel(); ++i)
        ASSERT_NEAR(fast.gw.data<float>()[i], ref.gw.data<float>()[i], 1e-5 * scale + 1e-6 * std::sqrt(double(s.m)))
            << "dW " << i;
    }
  }
}

// |int8 - fp32| per element against the worst case of the quantization steps: with sx = max|x row|
// / 127 and sw = max|W| / 127, each code is off by at most half a step, so a sum over k of
// products is off by at most sum_k (|x_k| sw / 2 + |w_k| sx / 2 + sx sw / 4); plus f32 rounding.
// dX the same with dY's row steps; dW in bf16: each operand off by at most 2^-9 relative.
TEST(Int8Mixed, WithinTheQuantizationBoundOfFp32) {
  const int64_t M = 48, in = 200, out = 70;
  const Tensor x = random_tensor({M, in}, 4), w = random_tensor({out, in}, 5, DType::f32, -0.3, 0.3),
               b = random_tensor({out}, 6);
  const LinearResult q = run_linear(x, w, b, Precision::int8_mixed, false);
  const LinearResult f = run_linear(x, w, b, Precision::fp32, true);
  const Tensor r = random_tensor({M, out}, 99);  // the upstream gradient
  const double sw = max_abs(w, 0, w.numel()) / 127;
  const float* xp = x.data<float>();
  const float* wp = w.data<float>();
  const float* rp = r.data<float>();
  double worst_ratio = 0;
  for (int64_t i = 0; i < M; ++i) {
    const double sx = max_abs(x, i * in, in) / 127, sg = max_abs(r, i * out, out) / 127;
    for (int64_t o = 0; o < out; ++o) {
      double bound = 1e-5;
      for (int64_t k = 0; k < in; ++k) bound += std::fabs(xp[i * in + k]) * sw / 2 + std::fabs(wp[o * in + k]) * sx / 2 + sx * sw / 4;
      const double diff = std::fabs(q.y.data<float>()[i * out + o] - f.y.data<float>()[i * out + o]);
      ASSERT_LE(diff, bound) << "y(" << i << ", " << o << ")";
      worst_ratio = std::max(worst_ratio, diff / bound);
    }
    for (int64_t k = 0; k < in; ++k) {
      double bound = 1e-5;
      for (int64_t o = 0; o < out; ++o) bound += std::fabs(rp[i * out + o]) * sw / 2 + std::fabs(wp[o * in + k]) * sg / 2 + sg * sw / 4;
      ASSERT_LE(std::fabs(q.gx.data<float>()[i * in + k] - f.gx.data<float>()[i * in + k]), bound) << "dX(" << i << ", " << k << ")";
    }
  }
  for (int64_t o = 0; o < out; ++o)
    for (int64_t k = 0; k < in; ++k) {
      double bound = 1e-5;
      for (int64_t i = 0; i < M; ++i) bound += std::fabs(rp[i * out + o] * xp[i * in + k]) * (2.0 / 512 + 1.0 / 65536);
      ASSERT_LE(std::fabs(q.gw.data<float>()[o * in + k] - f.gw.data<float>()[o * in + k]), bound) << "dW(" << o << ", " << k << ")";
    }
  for (int64_t o = 0; o < out; ++o)  // the bias gradient is not quantized: a plain sum either way
    ASSERT_NEAR(q.gb.data<float>()[o], f.gb.data<float>()[o], 1e-5);
  // The bound is a worst case; the typical error is far inside it (errors of random sign cancel).
  EXPECT_LT(worst_ratio, 0.5);
  EXPECT_FALSE(bit_equal(q.y, f.y)) << "the mode is active";
}

TEST(Int8Mixed, ZeroRowsAndBatchOne) {
  Tensor x = random_tensor({3, 16}, 7);
  for (int64_t k = 0; k < 16; ++k) x.data<float>()[16 + k] = 0;  // row 1 all zeros: scale 1, codes 0
  const Tensor w = random_tensor({5, 16}, 8), b = random_tensor({5}, 9);
  const LinearResult q = run_linear(x, w, b, Precision::int8_mixed, false);
  for (int64_t o = 0; o < 5; ++o) EXPECT_EQ(q.y.data<float>()[5 + o], b.data<float>()[o]);
  Tensor last = Tensor::empty({1, 16});
  for (int64_t k = 0; k < 16; ++k) last.data<float>()[k] = x.data<float>()[32 + k];
  const LinearResult one = run_linear(last, w, b, Precision::int8_mixed, false);
  for (int64_t o = 0; o < 5; ++o) EXPECT_EQ(one.y.data<float>()[o], q.y.data<float>()[10 + o]) << "per-row scales: a row's output does not depend on its batch";
}

TEST(Int8Mixed, ExcludedWeightsRunBf16MixedExactly) {
  const Tensor x = random_tensor({20, 30}, 10), w = random_tensor({12, 30}, 11), b = random_tensor({12}, 12);
  const LinearResult bf16 = run_linear(x, w, b, Precision::bf16_mixed, false);
  // run_linear clones w, so exclude by the clone: run it by hand.
  Tensor xc = x.clone(), wc = w.clone(), bc = b.clone();
  for (Tensor* t : {&xc, &wc, &bc}) t->set_requires_grad(true);
  set_int8_excluded_weights({wc.data<float>()});
  Tensor y;
  {
    PrecisionGuard guard(Precision::int8_mixed);
    y = linear(xc, wc, bc);
    autograd::backward(sum(mul(y, random_tensor(y.shape(), 99))));
  }
  set_int8_excluded_weights({});
  EXPECT_TRUE(bit_equal(y, bf16.y));
  EXPECT_TRUE(bit_equal(xc.grad(), bf16.gx));
  EXPECT_TRUE(bit_equal(wc.grad(), bf16.gw));
  // matmul (attention's, and any plain product) runs bf16-mixed in int8-mixed too.
  Tensor a = random_tensor({9, 30}, 13), c = random_tensor({30, 11}, 14), m8, m16;
  {
    PrecisionGuard guard(Precision::int8_mixed);
    m8 = matmul(a, c);
  }
  {
    PrecisionGuard guard(Precision::bf16_mixed);
    m16 = matmul(a, c);
  }
  EXPECT_TRUE(bit_equal(m8, m16));
}

TEST(Int8Mixed, NameParses) {
  EXPECT_EQ(parse_precision("int8-mixed", "mode"), Precision::int8_mixed);
  EXPECT_EQ(precision_name(Precision::int8_mixed), "int8-mixed");
  EXPECT_TRUE(bf16_operands(Precision::int8_mixed));
  try {
    parse_precision("int4", "mode");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("\"int8-mixed\""), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace frugal
