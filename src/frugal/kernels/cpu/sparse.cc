// The sparse linear kernel: a gather path for tiny batches, a transposed-tile path otherwise.
// Each output element sums its row's nonzeros in stored order from bias (or 0) in f32, whichever
// path and thread computes it, so the two paths and all thread counts agree bit for bit.
#include "frugal/kernels/cpu/sparse.h"

#include <algorithm>
#include <cmath>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "frugal/base/parallel.h"

namespace frugal {
namespace kernels {
namespace cpu {
namespace {

// Batches up to this many rows take the gather path (a transposed tile would be mostly padding).
constexpr int64_t kGatherMaxRows = 3;

// Outputs per parallel chunk such that a chunk holds ~32K nonzero products (threads are not free).
int64_t output_grain(const SparseMatrix& w, int64_t rows_per_output) {
  const int64_t per_row = std::max<int64_t>(1, w.nonzeros() / std::max<int64_t>(1, w.rows)) * rows_per_output;
  return std::max<int64_t>(1, 32768 / per_row);
}

// y(i, o) for i in [0, n) and o in [o_begin, o_end): one dot product per (row, output), the
// nonzeros taken 16 at a time with a gather of x. Sequential within a dot, in stored order.
void gather_rows(const float* x, int64_t n, const SparseMatrix& w, const float* bias, float* y, int64_t o_begin,
                 int64_t o_end) {
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * w.cols;  // (in)
    for (int64_t o = o_begin; o < o_end; ++o) {
      const int64_t begin = w.row_start[size_t(o)], end = w.row_start[size_t(o + 1)];
      float total = bias ? bias[o] : 0.0f;
      // Stored order, one product at a time: the tile path's order exactly (see the file comment).
      for (int64_t e = begin; e < end; ++e) total = std::fma(w.value[size_t(e)], xi[w.column[size_t(e)]], total);
      y[i * w.rows + o] = total;
    }
  }
}

// Per-thread scratch: the transposed x tile (in, T) and the transposed y tile (outputs, T).
struct TileScratch {
  std::vector<float> xt, yt;
};
TileScratch& tile_scratch() {
  thread_local TileScratch scratch;
  return scratch;
}

// dst (cols, rows) = src (rows, cols) transposed, for rows, cols <= 16: 16x16 blocks in registers
// (three rounds of shuffles), anything smaller element by element.
void transpose_block(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows, int64_t cols) {
#if defined(__AVX512F__)
  if (rows == 16 && cols == 16) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * src_stride);
    for (int i = 0; i < 8; ++i) {  // pairs of rows interleaved: (r0 c0, r1 c0, r0 c1, r1 c1) per lane
      t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; ++i) {  // r[4i + k] lane L: rows 4i..4i+3 of column 4L + k
      const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
      const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
      r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
      r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
      r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
      r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int k = 0; k < 4; ++k) {  // gather the four row groups' lanes of each column
      t[k] = _mm512_shuffle_f32x4(r[k], r[4 + k], 0x88);
      t[4 + k] = _mm512_shuffle_f32x4(r[k], r[4 + k], 0xdd);
      t[8 + k] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0x88);
      t[12 + k] = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0xdd);
    }
    for (int k = 0; k < 4; ++k) {
      _mm512_storeu_ps(dst + k * dst_stride, _mm512_shuffle_f32x4(t[k], t[8 + k], 0x88));
      _mm512_storeu_ps(dst + (8 + k) * dst_stride, _mm512_shuffle_f32x4(t[k], t[8 + k], 0xdd));
      _mm512_storeu_ps(dst + (4 + k) * dst_stride, _mm512_shuffle_f32x4(t[4 + k], t[12 + k], 0x88));
      _mm512_storeu_ps(dst + (12 + k) * dst_stride, _mm512_shuffle_f32x4(t[4 + k], t[12 + k], 0xdd));
    }
    return;
  }
#endif
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) dst[j * dst_stride + i] = src[i * src_stride + j];
}

// dst (cols, rows) = src (rows, cols) transposed, in 16x16 blocks.
void transpose(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows, int64_t cols) {
  for (int64_t i = 0; i < rows; i += 16)
    for (int64_t j = 0; j < cols; j += 16)
      transpose_block(src + i * src_stride + j, src_stride, dst + j * dst_stride + i, dst_stride,
                      std::min<int64_t>(16, rows - i), std::min<int64_t>(16, cols - j));
}

// Rows [row_begin, row_begin + rows) of x into xt (in, T), padded with zeros up to T columns.
template <int T>
void transpose_in(const float* x, int64_t row_begin, int64_t rows, int64_t in, float* xt) {
  if (rows < T) std::fill(xt, xt + in * T, 0.0f);
  transpose(x + row_begin * in, in, xt, T, rows, in);
}

// yt (o_end - o_begin, T) = W[o_begin:o_end] applied to the tile xt (in, T), then written into y.
template <int T>
void tile_rows(const float* xt, int64_t row_begin, int64_t rows, const SparseMatrix& w, const float* bias,
               int64_t o_begin, int64_t o_end, float* yt, float* y) {
  constexpr int Z = T / 16;
  for (int64_t o = o_begin; o < o_end; ++o) {
    const int64_t begin = w.row_start[size_t(o)], end = w.row_start[size_t(o + 1)];
    float* out = yt + (o - o_begin) * T;  // (T)
#if defined(__AVX512F__)
    __m512 acc[Z];
    const __m512 start = _mm512_set1_ps(bias ? bias[o] : 0.0f);
    for (int z = 0; z < Z; ++z) acc[z] = start;
    for (int64_t e = begin; e < end; ++e) {
      const __m512 v = _mm512_set1_ps(w.value[size_t(e)]);
      const float* xc = xt + int64_t(w.column[size_t(e)]) * T;
      for (int z = 0; z < Z; ++z) acc[z] = _mm512_fmadd_ps(v, _mm512_loadu_ps(xc + 16 * z), acc[z]);
    }
    for (int z = 0; z < Z; ++z) _mm512_storeu_ps(out + 16 * z, acc[z]);
#else
    for (int t = 0; t < T; ++t) out[t] = bias ? bias[o] : 0.0f;
    for (int64_t e = begin; e < end; ++e) {
      const float v = w.value[size_t(e)];
      const float* xc = xt + int64_t(w.column[size_t(e)]) * T;
      for (int t = 0; t < T; ++t) out[t] = std::fma(v, xc[t], out[t]);
    }
#endif
  }
  transpose(yt, T, y + row_begin * w.rows + o_begin, w.rows, o_end - o_begin, rows);
}

template <int T>
void tiled(const float* x, int64_t n, const SparseMatrix& w, const float* bias, float* y) {
  const int64_t tiles = (n + T - 1) / T;
  const int threads = num_threads();
  // Few tiles: split the outputs too, each thread transposing the tiles it needs itself.
  const int64_t splits = tiles >= threads ? 1 : (threads + tiles - 1) / tiles;
  const int64_t grain = tiles >= threads ? 1 : std::max<int64_t>(1, output_grain(w, T) / std::max<int64_t>(1, w.rows / splits));
  parallel_for(tiles * splits, grain, [&](int64_t item_begin, int64_t item_end) {
    TileScratch& s = tile_scratch();
    s.xt.resize(size_t(w.cols * T));
    s.yt.resize(size_t(w.rows * T));
    int64_t transposed = -1;
    for (int64_t item = item_begin; item < item_end; ++item) {
      const int64_t tile = item / splits, split = item % splits;
      const int64_t row_begin = tile * T, rows = std::min<int64_t>(T, n - row_begin);
      if (tile != transposed) transpose_in<T>(x, row_begin, rows, w.cols, s.xt.data());
      transposed = tile;
      const int64_t o_begin = w.rows * split / splits, o_end = w.rows * (split + 1) / splits;
      tile_rows<T>(s.xt.data(), row_begin, rows, w, bias, o_begin, o_end, s.yt.data(), y);
    }
  });
}

}  // namespace

void sparse_linear(const float* x, int64_t n, const SparseMatrix& w, const float* bias, float* y) {
  if (n <= 0 || w.rows <= 0) return;
  if (n <= kGatherMaxRows) {
    parallel_for(w.rows, output_grain(w, n),
                 [&](int64_t o_begin, int64_t o_end) { gather_rows(x, n, w, bias, y, o_begin, o_end); });
  } else if (n <= 16) {
    tiled<16>(x, n, w, bias, y);
  } else {
    tiled<64>(x, n, w, bias, y);
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
