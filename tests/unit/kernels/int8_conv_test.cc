// The int8 convolution (oneDNN) against its scalar oracle (bit for bit) on odd and tiny shapes, u8 and s8
// inputs, with and without bias and ReLU; against the f32 convolution within the bound that the
// quantization steps imply; the activation quantizer against its oracle and its half-step bound.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "frugal/kernels/cpu/int8_conv.h"
#include "frugal/kernels/ref/dense.h"
#include "frugal/kernels/ref/int8_conv.h"

namespace frugal {
namespace {
using kernels::Conv2dDims;

Conv2dDims dims_of(int64_t n, int64_t c, int64_t h, int64_t w, int64_t o, int64_t k, int64_t stride, int64_t pad) {
  Conv2dDims d;
  d.n = n, d.c = c, d.h = h, d.w = w, d.o = o, d.kernel_h = d.kernel_w = k;
  d.stride_h = d.stride_w = stride, d.padding_h = d.padding_w = pad;
  d.out_h = (h + 2 * pad - k) / stride + 1, d.out_w = (w + 2 * pad - k) / stride + 1;
  d.channels_last = true;
  return d;
}

TEST(Int8Conv, MatchesTheOracle) {
  std::mt19937 rng(7);
  struct Case { int64_t n, c, h, w, o, k, stride, pad; };
  for (const Case& s : {Case{1, 1, 5, 5, 1, 3, 1, 1}, Case{2, 3, 7, 6, 5, 3, 1, 1}, Case{3, 16, 9, 9, 32, 3, 2, 1},
                        Case{2, 32, 14, 14, 64, 3, 1, 1}, Case{1, 7, 4, 5, 3, 1, 1, 0}, Case{2, 5, 8, 8, 17, 5, 1, 2}})
    for (bool x_unsigned : {false, true})
      for (int variant = 0; variant < 3; ++variant) {
        const Conv2dDims d = dims_of(s.n, s.c, s.h, s.w, s.o, s.k, s.stride, s.pad);
        std::vector<uint8_t> x(size_t(d.n * d.h * d.w * d.c));
        for (auto& v : x) v = x_unsigned ? uint8_t(rng() % 256) : uint8_t(int8_t(int(rng() % 255) - 127));
        std::vector<int8_t> weight(size_t(d.o * d.c * d.kernel_h * d.kernel_w));
        for (auto& v : weight) v = int8_t(int(rng() % 255) - 127);
        std::vector<float> scale(size_t(d.o)), bias(size_t(d.o));
        for (int64_t o = 0; o < d.o; ++o) scale[size_t(o)] = 1e-4f * float(1 + rng() % 100), bias[size_t(o)] = float(int(rng() % 200) - 100) / 50;
        kernels::Int8ConvEpilogue e{scale.data(), variant >= 1 ? bias.data() : nullptr, variant == 2};
        const size_t out = size_t(d.n * d.out_h * d.out_w * d.o);
        std::vector<float> expected(out), got(out, -1);
        kernels::ref::conv2d_s8(x.data(), x_unsigned, weight.data(), expected.data(), d, e);
        kernels::cpu::conv2d_s8(x.data(), x_unsigned, weight.data(), got.data(), d, e);
        double max_diff = 0;
        for (size_t i = 0; i < out; ++i) {
          const double diff = std::abs(double(got[i]) - expected[i]);
          max_diff = std::max(max_diff, diff);
          ASSERT_LE(diff, 0) << "case c " << s.c << " o " << s.o << " u8 " << x_unsigned
                                                              << " variant " << variant << " at " << i;
        }
        if (s.c == 32) std::printf("c32 u8 %d variant %d: max |cpu - ref| %.3g\n", int(x_unsigned), variant, max_diff);
      }
}

TEST(Int8Conv, FusedReluAndPoolingMatchTheOracle) {
  std::mt19937 rng(5);
  struct Case { int64_t n, c, h, w, o; };
  for (const Case& s : {Case{1, 4, 4, 4, 16}, Case{2, 8, 7, 9, 17}, Case{3, 32, 14, 14, 64}, Case{1, 5, 3, 2, 3}})
    for (bool bias : {false, true}) {
      const Conv2dDims d = dims_of(s.n, s.c, s.h, s.w, s.o, 3, 1, 1);
      std::vector<uint8_t> x(size_t(d.n * d.h * d.w * d.c));
      for (auto& v : x) v = uint8_t(rng() % 256);
      std::vector<int8_t> weight(size_t(d.o * d.c * 9));
      for (auto& v : weight) v = int8_t(int(rng() % 255) - 127);
      std::vector<float> scale(size_t(d.o)), shift(size_t(d.o));
      for (int64_t o = 0; o < d.o; ++o) scale[size_t(o)] = 1e-4f * float(1 + rng() % 100), shift[size_t(o)] = float(int(rng() % 200) - 100) / 50;
      kernels::Int8ConvEpilogue e{scale.data(), bias ? shift.data() : nullptr, false};
      const size_t out = size_t(d.n * (d.out_h / 2) * (d.out_w / 2) * d.o);
      std::vector<float> expected(out), got(out, -1);
      kernels::ref::conv2d_s8_relu_pool2x2(x.data(), true, weight.data(), expected.data(), d, e);
      kernels::cpu::conv2d_s8_relu_pool2x2(x.data(), true, weight.data(), got.data(), d, e);
      for (size_t i = 0; i < out; ++i) ASSERT_EQ(got[i], expected[i]) << "c " << s.c << " o " << s.o << " at " << i;
    }
}

TEST(Int8Conv, ReusesItsPrimitive) {
  const Conv2dDims d = dims_of(2, 4, 6, 6, 8, 3, 1, 1);
  std::vector<int8_t> x(size_t(2 * 6 * 6 * 4), 3), weight(size_t(8 * 4 * 9), -2);
  std::vector<float> scale(8, 0.5f), y(size_t(2 * 6 * 6 * 8));
  kernels::Int8ConvEpilogue e{scale.data()};
  kernels::cpu::conv2d_s8(x.data(), false, weight.data(), y.data(), d, e);
  const int64_t created = kernels::cpu::int8_conv_primitives_created();
  scale.assign(8, 0.25f);  // a new scale needs no new primitive
  kernels::cpu::conv2d_s8(x.data(), false, weight.data(), y.data(), d, e);
  EXPECT_EQ(kernels::cpu::int8_conv_primitives_created(), created);
  EXPECT_FLOAT_EQ(y[0], 0.25f * 3 * -2 * 4 * 4);  // a corner pixel sees 2 x 2 of the 3 x 3 window
  // The same buffer holding other weights (a freed buffer reused) is packed again, never served stale.
  weight.assign(weight.size(), 5);
  kernels::cpu::conv2d_s8(x.data(), false, weight.data(), y.data(), d, e);
  EXPECT_FLOAT_EQ(y[0], 0.25f * 3 * 5 * 4 * 4);
}

// Quantized x (step sx) and weight (step sw per channel) against the f32 convolution: each
// product x w differs from its quantized one by at most |x| sw/2 + |w| sx/2 + sx sw/4.
TEST(Int8Conv, StaysWithinTheQuantizationBoundOfF32) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  const Conv2dDims d = dims_of(2, 8, 10, 10, 12, 3, 1, 1);
  const int64_t taps = d.c * d.kernel_h * d.kernel_w;
  std::vector<float> x(size_t(d.n * d.h * d.w * d.c)), weight(size_t(d.o * taps)), bias(size_t(d.o));
  for (auto& v : x) v = std::abs(normal(rng));  // non-negative: a ReLU's output, quantized to u8
  for (auto& v : weight) v = 0.1f * normal(rng);
  for (auto& v : bias) v = normal(rng);
  float x_max = 0;
  for (float v : x) x_max = std::max(x_max, v);
  const float sx = x_max / 255;
  std::vector<uint8_t> xq(x.size());
  kernels::cpu::quantize_activation(x.data(), int64_t(x.size()), sx, true, xq.data());
  std::vector<int8_t> wq(weight.size());
  std::vector<float> sw(size_t(d.o)), scale(size_t(d.o));
  for (int64_t o = 0; o < d.o; ++o) {
    float m = 0;
    for (int64_t t = 0; t < taps; ++t) m = std::max(m, std::abs(weight[size_t(o * taps + t)]));
    sw[size_t(o)] = m / 127, scale[size_t(o)] = sx * m / 127;
    for (int64_t t = 0; t < taps; ++t)
      wq[size_t(o * taps + t)] = int8_t(std::nearbyint(weight[size_t(o * taps + t)] / sw[size_t(o)]));
  }
  std::vector<float> y(size_t(d.n * d.out_h * d.out_w * d.o));
  kernels::cpu::conv2d_s8(xq.data(), true, wq.data(), y.data(), d, {scale.data(), bias.data(), false});
  // f32 reference and the bound, by the same loops as the oracle
  double worst_ratio = 0;
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t oh = 0; oh < d.out_h; ++oh)
      for (int64_t ow = 0; ow < d.out_w; ++ow)
        for (int64_t o = 0; o < d.o; ++o) {
          double exact = bias[size_t(o)], bound = 1e-5;
          for (int64_t kh = 0; kh < 3; ++kh)
            for (int64_t kw = 0; kw < 3; ++kw) {
              const int64_t ih = oh - 1 + kh, iw = ow - 1 + kw;
              if (ih < 0 || ih >= d.h || iw < 0 || iw >= d.w) continue;
              for (int64_t c = 0; c < d.c; ++c) {
                const double xv = x[size_t(((n * d.h + ih) * d.w + iw) * d.c + c)];
                const double wv = weight[size_t(((o * d.c + c) * 3 + kh) * 3 + kw)];
                exact += xv * wv;
                bound += std::abs(xv) * sw[size_t(o)] / 2 + std::abs(wv) * sx / 2 + sx * sw[size_t(o)] / 4;
              }
            }
          const double got = y[size_t(((n * d.out_h + oh) * d.out_w + ow) * d.o + o)];
          ASSERT_LE(std::abs(got - exact), bound) << "at n " << n << " oh " << oh << " ow " << ow << " o " << o;
          worst_ratio = std::max(worst_ratio, std::abs(got - exact) / bound);
        }
  std::printf("int8 vs f32: worst error %.2f of the bound\n", worst_ratio);
}

TEST(Int8Conv, QuantizerMatchesItsOracleWithinHalfAStep) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  for (int64_t n : {1, 15, 16, 17, 1000, 100003})
    for (bool to_unsigned : {false, true}) {
      std::vector<float> x(static_cast<size_t>(n));
      for (auto& v : x) v = 3 * normal(rng);
      x[0] = 0.5f * 0.05f;  // a tie: rounds to even (0)
      const float scale = 0.05f;
      std::vector<uint8_t> got(static_cast<size_t>(n)), expected(static_cast<size_t>(n));
      kernels::cpu::quantize_activation(x.data(), n, scale, to_unsigned, got.data());
      kernels::ref::quantize_activation(x.data(), n, scale, to_unsigned, expected.data());
      ASSERT_EQ(got, expected) << "n " << n;
      const float high = to_unsigned ? 255 * scale : 127 * scale, low = to_unsigned ? 0 : -high;
      for (int64_t i = 0; i < n; ++i) {
        const float back = to_unsigned ? float(got[size_t(i)]) * scale : float(int8_t(got[size_t(i)])) * scale;
        const float clipped = std::min(std::max(x[size_t(i)], low), high);
        ASSERT_LE(std::abs(back - clipped), scale / 2 * (1 + 1e-5f) + 1e-6f) << "at " << i;
      }
    }
}

}  // namespace
}  // namespace frugal
