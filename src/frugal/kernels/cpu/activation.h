// Fast f32 activation kernels (same signatures as ref/activation.h for T = float) and the
// branch-free float math they share with cpu/softmax, cpu/attention and cpu/nn: exp, sigmoid,
// tanh, normal cdf, written as plain arithmetic the compiler vectorizes to AVX-512. Limits: ~2e-7
// relative error; exp is 0 below -87.3 and saturates at e^88 above 88 (see exp).
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>

#include "frugal/kernels/ref/activation.h"

namespace frugal {
namespace kernels {
namespace cpu {

void activation_forward(ActivationOp op, const float* x, float* y, int64_t n);
void activation_backward(ActivationOp op, const float* saved, const float* grad_y, float* grad_x, int64_t n);

namespace fast {

inline float min_f(float a, float b) { return a < b ? a : b; }
inline float max_f(float a, float b) { return a > b ? a : b; }
inline float abs_f(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u &= 0x7FFFFFFFu;
  std::memcpy(&x, &u, 4);
  return x;
}

// e^x: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-7 polynomial (Cephes expf coefficients,
// about 1 ulp), 2^n built in the exponent bits. The one exp of the fast kernels, its edges chosen
// for every caller: below -87.3 the result is 0 (e^x < 1.2e-38 there, next to the smallest normal
// float, so no result is subnormal), which gives exp(-inf) = 0 as the online softmax needs; above
// 88, +inf included, it saturates at e^88 = 1.65e38 (the callers pass x <= 0); NaN stays NaN, as
// the clamp returns x itself when a comparison with it fails.
inline float exp(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2High = 0.693359375f, kLn2Low = -2.12194440e-4f;  // ln 2 = high + low, high exact in float
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low bits
  constexpr float kLowest = -87.3f, kHighest = 88.0f;
  const float clamped = std::min(std::max(x, kLowest), kHighest);
  const float shifted = clamped * kLog2e + kRound;
  const float n = shifted - kRound;  // round(x / ln 2), without a rounding call to block vectorization
  const float r = clamped - n * kLn2High - n * kLn2Low;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // 2^n: n + 127 in the exponent field, n read from the low bits of `shifted` (defined for NaN).
  const uint32_t exponent = (std::bit_cast<uint32_t>(shifted) - std::bit_cast<uint32_t>(kRound) + 127u) << 23;
  const float result = p * std::bit_cast<float>(exponent);
  return x < kLowest ? 0.0f : result;
}

// 1 / (1 + e^-x) from e^-|x| so that neither tail overflows or loses relative accuracy.
inline float sigmoid(float x) {
  float e = exp(-abs_f(x));
  float s = 1.0f / (1.0f + e);
  return x >= 0.0f ? s : e * s;
}

// tanh: an odd polynomial (Cephes) for |x| < 0.625, (1 - e) / (1 + e) with e = e^-2|x| beyond.
inline float tanh(float x) {
  float a = abs_f(x);
  float z = x * x;
  float poly = -5.70498872745e-3f;
  poly = poly * z + 2.06390887954e-2f;
  poly = poly * z - 5.37397155531e-2f;
  poly = poly * z + 1.33314422036e-1f;
  poly = poly * z - 3.33332819422e-1f;
  float small = x + x * z * poly;
  float e = exp(-2.0f * a);
  float large = (1.0f - e) / (1.0f + e);
  large = x < 0.0f ? -large : large;
  return a < 0.625f ? small : large;
}

// Standard normal cdf Phi(x) = erfc(-x / sqrt 2) / 2, with erfc(z) = t exp(-z^2 + P(t)),
// t = 1 / (1 + z/2): a Chebyshev fit with relative error below 1.2e-7 for all z >= 0.
inline float normal_cdf(float x) {
  float z = abs_f(x) * 0.70710678118654752f;
  float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  float half_erfc = 0.5f * t * exp(p - z * z);
  return x >= 0.0f ? 1.0f - half_erfc : half_erfc;
}

}  // namespace fast
}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
