// Reference int8 kernels: the symmetric quantization and the s8 x s8 matmul of cpu/int8.h as
// scalar loops, the oracle the fast ones are tested against. Bit-identical to them by definition of
// the arithmetic (int32 sums are exact; the epilogue's f32 operations run in the same order).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "frugal/kernels/ref/dense.h"

namespace frugal {
namespace kernels {

// What an int8 matmul does after the int32 product, in f32: c(i, j) = fma(float(acc(i, j)) *
// col_scale[j or 0], row_scale[i], bias[j]) (one rounding for the row scale and the bias; a null
// row_scale is 1, a null bias 0), then max(., 0) when relu. Spelled as fma so that no compiler's
// contraction choice changes a bit between the fast kernel and this oracle.
struct Int8Epilogue {
  const float* row_scale = nullptr;  // m values (one per row of a), or null
  const float* col_scale = nullptr;  // n values when per_column, else one value; never null
  bool per_column = false;
  const float* bias = nullptr;  // n values, or null
  bool relu = false;
};

// The scale of symmetric int8 quantization for values of largest magnitude `absmax`: absmax / 127,
// or 1 when absmax is 0 (a row of zeros quantizes to zeros either way).
inline float int8_scale(float absmax) { return absmax > 0.0f ? absmax / 127.0f : 1.0f; }

// round half to even of x * inv_scale, saturated to [-127, 127] (-128 is never produced, so the
// range is symmetric and a negated tensor quantizes to the negated codes).
inline int8_t quantize_one_s8(float x, float inv_scale) {
  const float r = std::nearbyint(x * inv_scale);  // the default rounding mode: nearest, ties to even
  return int8_t(std::clamp(r, -127.0f, 127.0f));
}

namespace ref {

inline void quantize_s8(const float* x, int64_t n, float scale, int8_t* q) {
  const float inv = 1.0f / scale;
  for (int64_t i = 0; i < n; ++i) q[i] = quantize_one_s8(x[i], inv);
}

// Row i of x (stride ldx) to row i of q (stride cols) with its own scale[i] (int8_scale of its absmax).
inline void quantize_rows_s8(const float* x, int64_t rows, int64_t cols, int64_t ldx, int8_t* q, float* scales) {
  for (int64_t i = 0; i < rows; ++i) {
    float absmax = 0.0f;
    for (int64_t j = 0; j < cols; ++j) absmax = std::max(absmax, std::fabs(x[i * ldx + j]));
    scales[i] = int8_scale(absmax);
    quantize_s8(x + i * ldx, cols, scales[i], q + i * cols);
  }
}

inline void matmul_s8(const int8_t* a, const int8_t* b, float* c, const MatmulDims& d, const Int8Epilogue& e) {
  for (int64_t i = 0; i < d.m; ++i)
    for (int64_t j = 0; j < d.n; ++j) {
      int32_t acc = 0;
      for (int64_t p = 0; p < d.k; ++p) {
        const int32_t av = d.transpose_a ? a[p * d.lda + i] : a[i * d.lda + p];
        const int32_t bv = d.transpose_b ? b[j * d.ldb + p] : b[p * d.ldb + j];
        acc += av * bv;
      }
      const float scaled = float(acc) * e.col_scale[e.per_column ? j : 0];
      float v = std::fma(scaled, e.row_scale ? e.row_scale[i] : 1.0f, e.bias ? e.bias[j] : 0.0f);
      if (e.relu) v = std::max(v, 0.0f);
      c[i * d.ldc + j] = v;
    }
}

}  // namespace ref
}  // namespace kernels
}  // namespace frugal
