// Fast f32 -> bf16 conversion for the bf16-mixed dense ops: threaded (fixed static chunks) and
// AVX-512 vectorized, bit-identical to ref/convert.h (nearest even, quiet NaN, denormals kept,
// which the AVX512-BF16 instruction would flush, hence integer arithmetic instead).
#pragma once

#include <cstdint>

#include "frugal/tensor/dtype.h"

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#endif

namespace frugal {
namespace kernels {
namespace cpu {

#if defined(__AVX512F__) && defined(__AVX512BW__)
// 16 floats rounded to bf16 exactly as f32_to_bf16 rounds them: u + 0x7FFF + lsb, NaNs made quiet.
// With AVX512-BF16, VCVTNEPS2BF16 does just that except that it reads denormals as zero
// (checked against the scalar rule on every non-denormal float); a vector holding a denormal
// takes the integer path. The all-lanes maskz forms: GCC 12 warns about the undefined
// pass-through of the plain ones.
inline __m256i round_to_bf16x16(__m512 x) {
#if defined(__AVX512BF16__) && defined(__AVX512DQ__)
  constexpr int kDenormal = 0x20;  // VFPCLASSPS category
  if (!_mm512_fpclass_ps_mask(x, kDenormal)) return reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(x));
#endif
  const __mmask16 all = 0xFFFF;
  const __m512i u = _mm512_castps_si512(x);
  // NaN: magnitude above the infinity pattern (unsigned compare; the sign bit is masked off).
  const __mmask16 nan =
      _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_epi32(0x7F800000));
  const __m512i lsb = _mm512_and_si512(_mm512_maskz_srli_epi32(all, u, 16), _mm512_set1_epi32(1));
  __m512i rounded = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), lsb));
  rounded = _mm512_mask_mov_epi32(rounded, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x00400000)));
  return _mm512_maskz_cvtepi32_epi16(all, _mm512_maskz_srli_epi32(all, rounded, 16));
}

// 16 bf16 values widened to f32 (exact).
inline __m512 widen_bf16x16(const bf16_t* x) {
  const __mmask16 all = 0xFFFF;
  const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(all, _mm512_maskz_cvtepu16_epi32(all, bits), 16));
}
#endif

void f32_to_bf16(const float* x, bf16_t* y, int64_t n);
// The same on the calling thread only: for short rows inside a caller's own parallel loop.
void f32_to_bf16_serial(const float* x, bf16_t* y, int64_t n);
// y = the bf16 rounding of x widened back to f32 (f32_to_bf16's rule): a value the bf16 kernels
// would read, for a kernel that computes in f32. y may be x.
void round_to_bf16_values(const float* x, float* y, int64_t n);

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
