// Max pooling over 2x2 windows with stride 2 and no padding, the CNN's pooling, by hand: oneDNN
// 2.6 runs it on plain NCHW tensors at a fraction of memory speed. The max_pool2d kernels of
// dense.h route this case here; the op calls the channels-last pair directly.
// Semantics are the reference kernel's: the first maximum in row-major window order wins, a NaN
// beats any number; an odd last row or column is dropped. The workspace is one byte per output:
// the winner's position in its window (0..3).
#pragma once

#include <cstdint>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include "frugal/kernels/ref/dense.h"

namespace frugal {
namespace kernels {
namespace cpu {

// The pooling these kernels do: 2x2 windows, stride 2, no padding.
bool is_pool2x2(const Pool2dDims& d);

// x (planes, h, w) -> y and where (planes, h / 2, w / 2).
void max_pool2x2_forward(const float* x, float* y, uint8_t* where, int64_t planes, int64_t h, int64_t w);
// Writes all of grad_x: the gradient at each window's winner, 0 elsewhere.
void max_pool2x2_backward(const float* grad_y, const uint8_t* where, float* grad_x, int64_t planes, int64_t h,
                          int64_t w);

#ifdef __AVX512F__
// 16 windows at once (a b / c d, one register each): the maximum and its place (0-3) stored under
// mask, with the scalar rule: the first maximum in scan order wins a tie, a NaN wins over numbers.
inline void max_pool_window16(__m512 a, __m512 b, __m512 c, __m512 d, float* y, uint8_t* where, __mmask16 mask) {
  __m512 best = a;
  __m512i at = _mm512_setzero_si512();
  const __m512 rest[3] = {b, c, d};
  for (int i = 0; i < 3; ++i) {
    const __m512 v = rest[i];
    const __mmask16 greater = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
    const __mmask16 v_nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    const __mmask16 best_nan = _mm512_cmp_ps_mask(best, best, _CMP_UNORD_Q);
    const __mmask16 take = __mmask16(greater | (v_nan & __mmask16(~best_nan)));
    best = _mm512_mask_mov_ps(best, take, v);
    at = _mm512_mask_mov_epi32(at, take, _mm512_set1_epi32(i + 1));
  }
  _mm512_mask_storeu_ps(y, mask, best);
  // The all-lanes maskz form: GCC 12 warns about the undefined pass-through of the plain one.
  _mm_mask_storeu_epi8(where, mask, _mm512_maskz_cvtepi32_epi8(__mmask16(0xFFFF), at));
}
#endif

// n windows given as their four pixels' rows (a b / c d, n values each): y and where (n each).
void max_pool_window_row(const float* a, const float* b, const float* c, const float* d, float* y, uint8_t* where,
                         int64_t n);

// The same on channels-last tensors: x (n, h, w, c) -> y and where (n, h / 2, w / 2, c). The
// gradient may come in any layout: grad_strides are its element strides for (n, c, h / 2, w / 2).
void max_pool2x2_forward_nhwc(const float* x, float* y, uint8_t* where, int64_t n, int64_t h, int64_t w,
                              int64_t c);
void max_pool2x2_backward_nhwc(const float* grad_y, const int64_t grad_strides[4], const uint8_t* where,
                               float* grad_x, int64_t n, int64_t h, int64_t w, int64_t c);

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
