// 2x2 stride-2 max pooling (see pool.h): AVX-512 over 16 outputs of a row at a time, masked at the
// row's end, with a scalar twin for builds without AVX-512. Memory-bound: one read of x and one
// write of y and a byte per output forward; one read of g and where and one write of dx backward.
#include "frugal/kernels/cpu/pool.h"

#include <algorithm>
#include <cmath>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include "frugal/base/parallel.h"

namespace frugal {
namespace kernels {
namespace cpu {

namespace {
// Scalar rule for one window (a b / c d): the reference kernel's scan order and NaN rule.
inline void window_max(float a, float b, float c, float d, float* best_out, uint8_t* where_out) {
  float best = a;
  uint8_t where = 0;
  const float rest[3] = {b, c, d};
  for (uint8_t i = 0; i < 3; ++i) {
    const float v = rest[i];
    if (v > best || (std::isnan(v) && !std::isnan(best))) {
      best = v;
      where = uint8_t(i + 1);
    }
  }
  *best_out = best;
  *where_out = where;
}

#ifdef __AVX512F__
// Lanes of a step of up to 16 outputs: the outputs, and their 2n inputs as the first 16 and the rest.
struct Masks {
  __mmask16 out, lo, hi;
  explicit Masks(int64_t left) {
    const unsigned n = unsigned(left < 16 ? left : 16);
    out = __mmask16((1u << n) - 1u);
    lo = n >= 8 ? __mmask16(0xFFFF) : __mmask16((1u << (2 * n)) - 1u);
    hi = n > 8 ? __mmask16((1u << (2 * n - 16)) - 1u) : __mmask16(0);
  }
};
#endif


// Rows of one output row: r0, r1 the two input rows, ow outputs.
void forward_row(const float* r0, const float* r1, float* y, uint8_t* where, int64_t ow) {
  int64_t j = 0;
#ifdef __AVX512F__
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (; j < ow; j += 16) {
    const Masks m(ow - j);
    const __mmask16 out_mask = m.out, lo_mask = m.lo, hi_mask = m.hi;
    const float* p0 = r0 + 2 * j;
    const float* p1 = r1 + 2 * j;
    const __m512 lo0 = _mm512_maskz_loadu_ps(lo_mask, p0), hi0 = _mm512_maskz_loadu_ps(hi_mask, p0 + 16);
    const __m512 lo1 = _mm512_maskz_loadu_ps(lo_mask, p1), hi1 = _mm512_maskz_loadu_ps(hi_mask, p1 + 16);
    const __m512 a = _mm512_permutex2var_ps(lo0, even, hi0), b = _mm512_permutex2var_ps(lo0, odd, hi0);
    const __m512 c = _mm512_permutex2var_ps(lo1, even, hi1), d = _mm512_permutex2var_ps(lo1, odd, hi1);
    max_pool_window16(a, b, c, d, y + j, where + j, out_mask);
  }
#endif
  for (; j < ow; ++j) window_max(r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1], y + j, where + j);
}

void backward_row(const float* g, const uint8_t* where, float* r0, float* r1, int64_t ow) {
  int64_t j = 0;
#ifdef __AVX512F__
  const __m512i lo_pick = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi_pick = _mm512_add_epi32(lo_pick, _mm512_set1_epi32(8));
  for (; j < ow; j += 16) {
    const Masks m(ow - j);
    const __mmask16 out_mask = m.out, lo_mask = m.lo, hi_mask = m.hi;
    const __m512 gv = _mm512_maskz_loadu_ps(out_mask, g + j);
    const __m512i at = _mm512_maskz_cvtepu8_epi32(__mmask16(0xFFFF), _mm_maskz_loadu_epi8(out_mask, where + j));
    __m512 v[4];
    for (int i = 0; i < 4; ++i) v[i] = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, _mm512_set1_epi32(i)), gv);
    // Row 0 is a b a b ..., row 1 is c d c d ...
    _mm512_mask_storeu_ps(r0 + 2 * j, lo_mask, _mm512_permutex2var_ps(v[0], lo_pick, v[1]));
    _mm512_mask_storeu_ps(r0 + 2 * j + 16, hi_mask, _mm512_permutex2var_ps(v[0], hi_pick, v[1]));
    _mm512_mask_storeu_ps(r1 + 2 * j, lo_mask, _mm512_permutex2var_ps(v[2], lo_pick, v[3]));
    _mm512_mask_storeu_ps(r1 + 2 * j + 16, hi_mask, _mm512_permutex2var_ps(v[2], hi_pick, v[3]));
  }
#endif
  for (; j < ow; ++j) {
    const float gj = g[j];
    const uint8_t at = where[j];
    r0[2 * j] = at == 0 ? gj : 0.0f;
    r0[2 * j + 1] = at == 1 ? gj : 0.0f;
    r1[2 * j] = at == 2 ? gj : 0.0f;
    r1[2 * j + 1] = at == 3 ? gj : 0.0f;
  }
}

constexpr int64_t kGrain = 16384;  // input elements per thread chunk
}  // namespace

void max_pool2x2_forward(const float* x, float* y, uint8_t* where, int64_t planes, int64_t h, int64_t w) {
  const int64_t oh = h / 2, ow = w / 2;
  parallel_for(planes * oh, std::max<int64_t>(1, kGrain / std::max<int64_t>(2 * w, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t plane = row / oh, i = row % oh;
      const float* in = x + (plane * h + 2 * i) * w;
      forward_row(in, in + w, y + row * ow, where + row * ow, ow);
    }
  });
}

void max_pool2x2_backward(const float* grad_y, const uint8_t* where, float* grad_x, int64_t planes, int64_t h,
                          int64_t w) {
  const int64_t oh = h / 2, ow = w / 2;
  parallel_for(planes, std::max<int64_t>(1, kGrain / std::max<int64_t>(h * w, 1)), [&](int64_t p0, int64_t p1) {
    for (int64_t plane = p0; plane < p1; ++plane) {
      float* out = grad_x + plane * h * w;
      for (int64_t i = 0; i < oh; ++i) {
        float* row0 = out + 2 * i * w;
        backward_row(grad_y + (plane * oh + i) * ow, where + (plane * oh + i) * ow, row0, row0 + w, ow);
        if (w % 2) row0[w - 1] = row0[2 * w - 1] = 0.0f;  // the dropped column
      }
      if (h % 2) std::fill(out + (h - 1) * w, out + h * w, 0.0f);  // the dropped row
    }
  });
}

void max_pool_window_row(const float* a, const float* b, const float* c, const float* d, float* y, uint8_t* where,
                         int64_t n) {
  int64_t k = 0;
#ifdef __AVX512F__
  for (; k < n; k += 16) {  // 16 windows at a time, the last step masked
    const __mmask16 m = n - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - k)) - 1u);
    max_pool_window16(_mm512_maskz_loadu_ps(m, a + k), _mm512_maskz_loadu_ps(m, b + k), _mm512_maskz_loadu_ps(m, c + k),
                 _mm512_maskz_loadu_ps(m, d + k), y + k, where + k, m);
  }
#endif
  for (; k < n; ++k) window_max(a[k], b[k], c[k], d[k], y + k, where + k);
}

void max_pool2x2_forward_nhwc(const float* x, float* y, uint8_t* where, int64_t n, int64_t h, int64_t w,
                              int64_t c) {
  const int64_t oh = h / 2, ow = w / 2;
  parallel_for(n * oh, std::max<int64_t>(1, kGrain / std::max<int64_t>(2 * w * c, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {  // (image, output row)
      const int64_t image = row / oh, i = row % oh;
      for (int64_t j = 0; j < ow; ++j) {
        const float* __restrict a = x + ((image * h + 2 * i) * w + 2 * j) * c;  // window (a b / cc d)
        const float* __restrict b = a + c;
        const float* __restrict cc = a + w * c;
        const float* __restrict d = cc + c;
        max_pool_window_row(a, b, cc, d, y + (row * ow + j) * c, where + (row * ow + j) * c, c);
      }
    }
  });
}

void max_pool2x2_backward_nhwc(const float* grad_y, const int64_t grad_strides[4], const uint8_t* where,
                               float* grad_x, int64_t n, int64_t h, int64_t w, int64_t c) {
  const int64_t oh = h / 2, ow = w / 2;
  const int64_t sn = grad_strides[0], sc = grad_strides[1], sh = grad_strides[2], sw = grad_strides[3];
  parallel_for(n * h, std::max<int64_t>(1, kGrain / std::max<int64_t>(w * c, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {  // (image, input row)
      const int64_t image = row / h, ih = row % h, i = ih / 2;
      float* __restrict out = grad_x + row * w * c;
      if (i >= oh) {  // the dropped odd row
        std::fill(out, out + w * c, 0.0f);
        continue;
      }
      const uint8_t base = uint8_t(2 * (ih % 2));  // positions 0, 1 on even rows, 2, 3 on odd ones
      for (int64_t j = 0; j < ow; ++j) {
        const float* g = grad_y + image * sn + i * sh + j * sw;
        const uint8_t* __restrict at = where + ((image * oh + i) * ow + j) * c;
        float* __restrict left = out + 2 * j * c;
        float* __restrict right = left + c;
        int64_t k = 0;
#ifdef __AVX512F__
        const __m512i first = _mm512_set1_epi32(base), second = _mm512_set1_epi32(base + 1);
        const __m512i g_index = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                   _mm512_set1_epi32(int(sc)));
        for (; k < c && sc < (int64_t(1) << 26); k += 16) {  // 16 channels at a time; a packed gradient is gathered
          const __mmask16 m = c - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (c - k)) - 1u);
          const __m512 gk = sc == 1 ? _mm512_maskz_loadu_ps(m, g + k)
                                    : _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, g_index, g + k * sc, 4);
          const __m512i pos = _mm512_maskz_cvtepu8_epi32(__mmask16(0xFFFF), _mm_maskz_loadu_epi8(m, at + k));
          _mm512_mask_storeu_ps(left + k, m, _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(pos, first), gk));
          _mm512_mask_storeu_ps(right + k, m, _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(pos, second), gk));
        }
#endif
        for (; k < c; ++k) {
          const float gk = g[k * sc];
          left[k] = at[k] == base ? gk : 0.0f;
          right[k] = at[k] == base + 1 ? gk : 0.0f;
        }
      }
      if (w % 2) std::fill(out + (w - 1) * c, out + w * c, 0.0f);  // the dropped column
    }
  });
}

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
