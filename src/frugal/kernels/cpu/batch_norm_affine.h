// Batch norm's per-channel affine form and its 16-lane step, shared by the batch norm kernels
// (nn.cc) and the first-block kernels (stem.cc) so that their values agree bit for bit.
#pragma once

#include <cstdint>
#include <vector>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace frugal {
namespace kernels {
namespace cpu {

// y = x * scale + shift per channel: (2, C), scale = rstd * weight, shift = bias - mean * scale
// (weight, bias null: 1, 0).
inline std::vector<float> bn_affine(const float* mean, const float* rstd, const float* weight, const float* bias,
                                    int64_t C) {
  std::vector<float> ab(static_cast<size_t>(2 * C));
  for (int64_t c = 0; c < C; ++c) {
    ab[size_t(c)] = rstd[c] * (weight ? weight[c] : 1.0f);
    ab[size_t(C + c)] = (bias ? bias[c] : 0.0f) - mean[c] * ab[size_t(c)];
  }
  return ab;
}

#ifdef __AVX512F__
// x * a + b (one rounding), then, for relu, 0 where that is below 0 (NaN and -0 stay).
inline __m512 bn16(__m512 x, __m512 a, __m512 b, bool relu) {
  const __m512 v = _mm512_fmadd_ps(x, a, b);
  return relu ? _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ), _mm512_setzero_ps()) : v;
}
#endif

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
