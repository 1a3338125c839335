// f32 -> bf16 rounding in AVX-512 integer arithmetic (u + 0x7FFF + lsb, NaNs made quiet), with
// the scalar float_to_bf16 for tails and for builds without AVX-512.
#include "frugal/kernels/cpu/convert.h"

#include <immintrin.h>

#include "frugal/base/parallel.h"

namespace frugal {
namespace kernels {
namespace cpu {

namespace {
constexpr int64_t kGrain = 32768;  // elements per thread chunk; conversion is memory bound

void convert_range(const float* x, bf16_t* y, int64_t begin, int64_t end) {
  int64_t i = begin;
#if defined(__AVX512F__) && defined(__AVX512BW__)
  const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
  const __m512i inf_bits = _mm512_set1_epi32(0x7F800000);
  const __m512i round_bias = _mm512_set1_epi32(0x7FFF);
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i quiet = _mm512_set1_epi32(0x00400000);
  // The all-lanes maskz forms: GCC 12 warns about the undefined pass-through of the plain ones.
  const __mmask16 all = 0xFFFF;
  for (; i + 16 <= end; i += 16) {
    __m512i u = _mm512_castps_si512(_mm512_loadu_ps(x + i));
    // NaN: magnitude above the infinity pattern (unsigned compare; the sign bit is masked off).
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs_mask), inf_bits);
    __m512i lsb = _mm512_and_si512(_mm512_maskz_srli_epi32(all, u, 16), one);
    __m512i rounded = _mm512_add_epi32(u, _mm512_add_epi32(round_bias, lsb));
    rounded = _mm512_mask_mov_epi32(rounded, nan, _mm512_or_si512(u, quiet));
    __m256i packed = _mm512_maskz_cvtepi32_epi16(all, _mm512_maskz_srli_epi32(all, rounded, 16));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), packed);
  }
#endif
  for (; i < end; ++i) y[i] = float_to_bf16(x[i]);
}
}  // namespace

void f32_to_bf16_serial(const float* x, bf16_t* y, int64_t n) { convert_range(x, y, 0, n); }

void f32_to_bf16(const float* x, bf16_t* y, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) { convert_range(x, y, begin, end); });
}

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
