// Winograd F(2x2, 3x3) for f32 3x3 stride-1 channels-last convolutions (conv.h).
//
// Each 2x2 block of outputs (a tile) of each output channel is A^T [ sum_c (G g G^T) . (B^T d B) ] A,
// where d is the tile's 4x4 input patch of channel c, g the 3x3 kernel of (o, c), and . the
// elementwise product: 16 products per tile and channel pair instead of 36, the sum over c being
// 16 independent matrix products (one per position xi of the 4x4 transform). The transforms of
// F(2x2, 3x3) only add, subtract and halve, so they round like a few more additions; the products
// sum over c in order, in f32.
//
// Work is split into blocks of kTiles tiles (across rows and images). A block's input tiles are
// transformed into V (16, kTiles, C), multiplied by the transformed weights U (16, C, O) into
// M (16, kTiles, O) and transformed back into the output: V and M stay in L1/L2 and U in L2, so
// nothing but x and y travels to memory. Every output is computed by one thread in a fixed order:
// the result does not depend on the thread count.
#include <algorithm>
#include <cstring>

#include "frugal/base/error.h"
#include "frugal/base/parallel.h"
#include "frugal/kernels/cpu/conv.h"
#include "frugal/kernels/cpu/scratch.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace frugal {
namespace kernels {
namespace cpu {
namespace {

constexpr int64_t kTiles = 12;        // tiles per block: two 6-row or one 12-row register block
constexpr int64_t kMaxChannels = 256;  // C and O; beyond, U leaves L2 and oneDNN is the better bet
constexpr int64_t kMaxWeightGradPairs = 128 * 128;  // C O: the weight gradient's partial sums (8 MiB)

#if defined(__AVX512F__)

struct Shape {
  int64_t N, H, W, C, O, OH, OW, ph, pw;
  int64_t TH, TW, tiles;  // tiles per column and row of an image, and in all
};

Shape shape_of(const Conv2dDims& d) {
  Shape s{};
  s.N = d.n, s.H = d.h, s.W = d.w, s.C = d.c, s.O = d.o, s.OH = d.out_h, s.OW = d.out_w;
  s.ph = d.padding_h, s.pw = d.padding_w;
  s.TH = (s.OH + 1) / 2, s.TW = (s.OW + 1) / 2;
  s.tiles = s.N * s.TH * s.TW;
  return s;
}

// Tile t (in image, row, column order): its image and its first output row and column.
struct Tile {
  int64_t n, oh, ow;
};
Tile tile_at(const Shape& s, int64_t t) { return {t / (s.TH * s.TW), 2 * (t / s.TW % s.TH), 2 * (t % s.TW)}; }

// U (16, C, O) = G g G^T for every (o, c), weight (o, c, 3, 3); G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2;
// 0 0 1].
void transform_weights(const float* weight, const Shape& s, float* U) {
  for (int64_t o = 0; o < s.O; ++o)
    for (int64_t c = 0; c < s.C; ++c) {
      const float* g = weight + (o * s.C + c) * 9;
      float gg[4][3];  // G g: the kernel's rows combined
      for (int j = 0; j < 3; ++j) {
        gg[0][j] = g[j];
        gg[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
        gg[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
        gg[3][j] = g[6 + j];
      }
      for (int i = 0; i < 4; ++i) {
        const float u[4] = {gg[i][0], 0.5f * (gg[i][0] + gg[i][1] + gg[i][2]), 0.5f * (gg[i][0] - gg[i][1] + gg[i][2]),
                            gg[i][2]};
        for (int j = 0; j < 4; ++j) U[((i * 4 + j) * s.C + c) * s.O + o] = u[j];
      }
    }
}

// V[xi][r][c..c+16) = (B^T d B)[xi] for the tile's 4x4 patch d of 16 channels at c (V holds `rows`
// tiles per xi); B^T =
// [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. Outside the image d is zero.
void transform_tile(const float* x, const Shape& s, int64_t n, int64_t ih0, int64_t iw0, int64_t r, int64_t rows,
                    float* V) {
  const int64_t row_stride = rows * s.C;  // V's xi stride: rows tiles of C channels
  for (int64_t c = 0; c < s.C; c += 16) {
    __m512 d[4][4];
    for (int i = 0; i < 4; ++i) {
      const int64_t ih = ih0 + i;
      for (int j = 0; j < 4; ++j) {
        const int64_t iw = iw0 + j;
        d[i][j] = (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W)
                      ? _mm512_loadu_ps(x + ((n * s.H + ih) * s.W + iw) * s.C + c)
                      : _mm512_setzero_ps();
      }
    }
    __m512 t[4][4];  // B^T d
    for (int j = 0; j < 4; ++j) {
      t[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
      t[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
      t[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
      t[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
    }
    float* out = V + r * s.C + c;
    for (int i = 0; i < 4; ++i) {  // (B^T d) B
      _mm512_storeu_ps(out + (i * 4 + 0) * row_stride, _mm512_sub_ps(t[i][0], t[i][2]));
      _mm512_storeu_ps(out + (i * 4 + 1) * row_stride, _mm512_add_ps(t[i][1], t[i][2]));
      _mm512_storeu_ps(out + (i * 4 + 2) * row_stride, _mm512_sub_ps(t[i][2], t[i][1]));
      _mm512_storeu_ps(out + (i * 4 + 3) * row_stride, _mm512_sub_ps(t[i][1], t[i][3]));
    }
  }
}

// M[r][o0..o0+16 OV) for rows r0..r0+NR of one xi: the sum over c of V[r][c] U[c][o], in c order.
template <int NR, int OV>
void multiply(const float* V, const float* U, float* M, const Shape& s, int64_t r0, int64_t o0) {
  __m512 acc[NR][OV];
  for (int r = 0; r < NR; ++r)
    for (int k = 0; k < OV; ++k) acc[r][k] = _mm512_setzero_ps();
  const float* v = V + r0 * s.C;
  const float* u = U + o0;
  for (int64_t c = 0; c < s.C; ++c) {
    __m512 w[OV];
    for (int k = 0; k < OV; ++k) w[k] = _mm512_loadu_ps(u + c * s.O + 16 * k);
    for (int r = 0; r < NR; ++r) {
      const __m512 b = _mm512_set1_ps(v[r * s.C + c]);
      for (int k = 0; k < OV; ++k) acc[r][k] = _mm512_fmadd_ps(b, w[k], acc[r][k]);
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int k = 0; k < OV; ++k) _mm512_storeu_ps(M + (r0 + r) * s.O + o0 + 16 * k, acc[r][k]);
}

// y's 2x2 outputs of tile row r from M (16, kTiles, O): A^T m A + bias, A^T = [1 1 1 0; 0 1 -1 -1];
// outputs past the image's edge are dropped.
void untransform_tile(const float* M, const float* bias, const Shape& s, int64_t n, int64_t oh0, int64_t ow0,
                      int64_t r, float* y) {
  const int64_t xi_stride = kTiles * s.O;
  const bool down = oh0 + 1 < s.OH, right = ow0 + 1 < s.OW;
  for (int64_t o = 0; o < s.O; o += 16) {
    const float* m = M + r * s.O + o;
    __m512 a[2][4];  // A^T m
    for (int j = 0; j < 4; ++j) {
      const __m512 m0 = _mm512_loadu_ps(m + (0 * 4 + j) * xi_stride), m1 = _mm512_loadu_ps(m + (1 * 4 + j) * xi_stride);
      const __m512 m2 = _mm512_loadu_ps(m + (2 * 4 + j) * xi_stride), m3 = _mm512_loadu_ps(m + (3 * 4 + j) * xi_stride);
      a[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
      a[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
    }
    const __m512 b = bias ? _mm512_loadu_ps(bias + o) : _mm512_setzero_ps();
    for (int i = 0; i < 2; ++i) {
      if (i == 1 && !down) break;
      float* out = y + ((n * s.OH + oh0 + i) * s.OW + ow0) * s.O + o;
      const __m512 left = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a[i][0], a[i][1]), a[i][2]), b);
      _mm512_storeu_ps(out, left);
      if (right) _mm512_storeu_ps(out + s.O, _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(a[i][1], a[i][2]), a[i][3]), b));
    }
  }
}

void winograd(const float* x, const float* weight, const float* bias, float* y, const Conv2dDims& d) {
  const Shape s = shape_of(d);
  float* U = scratch<float>(kWinoWeights, 16 * s.C * s.O);  // the caller's, read by every worker
  transform_weights(weight, s, U);
  const int64_t blocks = (s.tiles + kTiles - 1) / kTiles;
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    float* V = scratch<float>(kWinoTiles, 16 * kTiles * (s.C + s.O));  // this worker's
    float* M = V + 16 * kTiles * s.C;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t t0 = b * kTiles, count = std::min(kTiles, s.tiles - t0);
      for (int64_t r = 0; r < count; ++r) {
        const Tile t = tile_at(s, t0 + r);
        transform_tile(x, s, t.n, t.oh - s.ph, t.ow - s.pw, r, kTiles, V);
      }
      for (int64_t xi = 0; xi < 16; ++xi) {
        float* v = V + xi * kTiles * s.C;
        if (count < kTiles) std::memset(v + count * s.C, 0, size_t((kTiles - count) * s.C) * sizeof(float));
        const float* u = U + xi * s.C * s.O;
        float* m = M + xi * kTiles * s.O;
        int64_t o = 0;
        for (; o + 64 <= s.O; o += 64) {
          multiply<6, 4>(v, u, m, s, 0, o);
          multiply<6, 4>(v, u, m, s, 6, o);
        }
        for (; o + 32 <= s.O; o += 32) multiply<12, 2>(v, u, m, s, 0, o);
        for (; o < s.O; o += 16) multiply<12, 1>(v, u, m, s, 0, o);
      }
      for (int64_t r = 0; r < count; ++r) {
        const Tile t = tile_at(s, t0 + r);
        untransform_tile(M, bias, s, t.n, t.oh, t.ow, r, y);
      }
    }
  });
}

// ---- weight gradient: the adjoint of the forward ----
// y = A^T [(G g G^T) . (B^T d B)] A is linear in g, so dL/dg = G^T [(A dy A^T) . (B^T d B)] G, summed
// over tiles: the sum runs in the transformed domain, S (16, C, O) = sum over tiles of V (16, t, C)
// times Y (16, t, O), Y = A dy A^T per tile and output channel, and one G^T S G per (o, c) ends it.
// The tiles are split into kBlocks fixed ranges with their own partial S, added in order.

constexpr int64_t kBlocks = 8;   // tile ranges, one partial sum each: independent of the thread count
constexpr int64_t kChunk = 48;   // tiles transformed at a time: V, Y and a block's S stay in L2

// Y[xi][r][o..o+16) = (A dy A^T)[xi] for the tile's 2x2 gradient (zero past the image's edge), A =
// [1 0; 1 1; 1 -1; 0 -1]; bias_sum[o] += the tile's four gradients when given.
void transform_grad_tile(const float* dy, const Shape& s, int64_t n, int64_t oh0, int64_t ow0, int64_t r,
                         int64_t chunk, float* Y, float* bias_sum) {
  const bool down = oh0 + 1 < s.OH, right = ow0 + 1 < s.OW;
  const int64_t xi_stride = chunk * s.O;
  for (int64_t o = 0; o < s.O; o += 16) {
    const float* p = dy + ((n * s.OH + oh0) * s.OW + ow0) * s.O + o;
    const __m512 zero = _mm512_setzero_ps();
    const __m512 g00 = _mm512_loadu_ps(p), g01 = right ? _mm512_loadu_ps(p + s.O) : zero;
    const __m512 g10 = down ? _mm512_loadu_ps(p + s.OW * s.O) : zero;
    const __m512 g11 = down && right ? _mm512_loadu_ps(p + (s.OW + 1) * s.O) : zero;
    if (bias_sum)
      _mm512_storeu_ps(bias_sum + o, _mm512_add_ps(_mm512_loadu_ps(bias_sum + o),
                                                   _mm512_add_ps(_mm512_add_ps(g00, g01), _mm512_add_ps(g10, g11))));
    // A dy: rows (g0., g0. + g1., g0. - g1., -g1.); then times A^T along each row the same way.
    const __m512 rows[4][2] = {{g00, g01},
                               {_mm512_add_ps(g00, g10), _mm512_add_ps(g01, g11)},
                               {_mm512_sub_ps(g00, g10), _mm512_sub_ps(g01, g11)},
                               {_mm512_sub_ps(zero, g10), _mm512_sub_ps(zero, g11)}};
    float* out = Y + r * s.O + o;
    for (int i = 0; i < 4; ++i) {
      const __m512 a = rows[i][0], b = rows[i][1];
      _mm512_storeu_ps(out + (i * 4 + 0) * xi_stride, a);
      _mm512_storeu_ps(out + (i * 4 + 1) * xi_stride, _mm512_add_ps(a, b));
      _mm512_storeu_ps(out + (i * 4 + 2) * xi_stride, _mm512_sub_ps(a, b));
      _mm512_storeu_ps(out + (i * 4 + 3) * xi_stride, _mm512_sub_ps(zero, b));
    }
  }
}

// S[c0..c0+4)[o0..o0+16 OV) += sum over the chunk's count tiles of V[t][c] Y[t][o], t in order.
template <int OV>
void accumulate(const float* V, const float* Y, float* S, const Shape& s, int64_t count, int64_t c0, int64_t o0) {
  constexpr int NR = 4;
  __m512 acc[NR][OV];
  for (int r = 0; r < NR; ++r)
    for (int k = 0; k < OV; ++k) acc[r][k] = _mm512_loadu_ps(S + (c0 + r) * s.O + o0 + 16 * k);
  for (int64_t t = 0; t < count; ++t) {
    __m512 y[OV];
    for (int k = 0; k < OV; ++k) {
      y[k] = _mm512_loadu_ps(Y + t * s.O + o0 + 16 * k);
      // In a register: GCC would otherwise fold the load into every FMA, four loads for one.
      asm("" : "+v"(y[k]));
    }
    for (int r = 0; r < NR; ++r) {
      const __m512 b = _mm512_set1_ps(V[t * s.C + c0 + r]);
      for (int k = 0; k < OV; ++k) acc[r][k] = _mm512_fmadd_ps(b, y[k], acc[r][k]);
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int k = 0; k < OV; ++k) _mm512_storeu_ps(S + (c0 + r) * s.O + o0 + 16 * k, acc[r][k]);
}

// grad_weight (o, c, 3, 3) = G^T S G for every (o, c), S (16, C, O); G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0;
// 0 1/2 1/2 1].
void untransform_weights(const float* S, const Shape& s, float* grad_weight) {
  for (int64_t o = 0; o < s.O; ++o)
    for (int64_t c = 0; c < s.C; ++c) {
      float m[4][4], t[3][4];
      for (int xi = 0; xi < 16; ++xi) m[xi / 4][xi % 4] = S[(xi * s.C + c) * s.O + o];
      for (int j = 0; j < 4; ++j) {
        t[0][j] = m[0][j] + 0.5f * (m[1][j] + m[2][j]);
        t[1][j] = 0.5f * (m[1][j] - m[2][j]);
        t[2][j] = 0.5f * (m[1][j] + m[2][j]) + m[3][j];
      }
      float* g = grad_weight + (o * s.C + c) * 9;
      for (int i = 0; i < 3; ++i) {
        g[i * 3 + 0] = t[i][0] + 0.5f * (t[i][1] + t[i][2]);
        g[i * 3 + 1] = 0.5f * (t[i][1] - t[i][2]);
        g[i * 3 + 2] = 0.5f * (t[i][1] + t[i][2]) + t[i][3];
      }
    }
}

void winograd_weight_grad(const float* x, const float* dy, float* grad_weight, float* grad_bias, const Conv2dDims& d) {
  const Shape s = shape_of(d);
  const int64_t part = 16 * s.C * s.O + s.O;  // a block's S, then its bias sum
  float* parts = scratch<float>(kWinoWeights, kBlocks * part);  // the caller's, written by the workers
  parallel_for(kBlocks, 1, [&](int64_t b0, int64_t b1) {
    float* V = scratch<float>(kWinoTiles, 16 * kChunk * (s.C + s.O));  // this worker's
    float* Y = V + 16 * kChunk * s.C;
    for (int64_t b = b0; b < b1; ++b) {
      float* S = parts + b * part;
      float* bias_sum = grad_bias ? S + 16 * s.C * s.O : nullptr;
      std::memset(S, 0, size_t(part) * sizeof(float));
      const int64_t first = s.tiles * b / kBlocks, last = s.tiles * (b + 1) / kBlocks;
      for (int64_t t0 = first; t0 < last; t0 += kChunk) {
        const int64_t count = std::min(kChunk, last - t0);
        for (int64_t r = 0; r < count; ++r) {
          const Tile t = tile_at(s, t0 + r);
          transform_tile(x, s, t.n, t.oh - s.ph, t.ow - s.pw, r, kChunk, V);
          transform_grad_tile(dy, s, t.n, t.oh, t.ow, r, kChunk, Y, bias_sum);
        }
        for (int64_t xi = 0; xi < 16; ++xi) {
          const float* v = V + xi * kChunk * s.C;
          const float* y = Y + xi * kChunk * s.O;
          float* sx = S + xi * s.C * s.O;
          for (int64_t c = 0; c < s.C; c += 4) {
            int64_t o = 0;
            for (; o + 64 <= s.O; o += 64) accumulate<4>(v, y, sx, s, count, c, o);
            for (; o + 32 <= s.O; o += 32) accumulate<2>(v, y, sx, s, count, c, o);
            for (; o < s.O; o += 16) accumulate<1>(v, y, sx, s, count, c, o);
          }
        }
      }
    }
  });
  for (int64_t b = 1; b < kBlocks; ++b) {  // in block order
    const float* from = parts + b * part;
    for (int64_t i = 0; i < part; ++i) parts[i] += from[i];
  }
  untransform_weights(parts, s, grad_weight);
  if (grad_bias) std::memcpy(grad_bias, parts + 16 * s.C * s.O, size_t(s.O) * sizeof(float));
}

#endif  // __AVX512F__

}  // namespace

bool conv_winograd_supported(const Conv2dDims& d) {
#if defined(__AVX512F__)
  return is_stride1_channels_last(d) && d.kernel_h == 3 && d.kernel_w == 3 && d.n >= 1 && d.out_h >= 1 &&
         d.out_w >= 1 && d.c >= 16 && d.c % 16 == 0 && d.c <= kMaxChannels && d.o >= 16 && d.o % 16 == 0 &&
         d.o <= kMaxChannels;
#else
  (void)d;
  return false;
#endif
}

bool conv_winograd_weight_grad_supported(const Conv2dDims& d) {
  return conv_winograd_supported(d) && d.c * d.o <= kMaxWeightGradPairs;
}

void conv_winograd_weight_grad_nhwc(const float* x, const float* grad_y, float* grad_weight, float* grad_bias,
                                    const Conv2dDims& d) {
  FRUGAL_CHECK(conv_winograd_weight_grad_supported(d), "conv_winograd_weight_grad_nhwc: unsupported convolution");
#if defined(__AVX512F__)
  winograd_weight_grad(x, grad_y, grad_weight, grad_bias, d);
#else
  (void)x, (void)grad_y, (void)grad_weight, (void)grad_bias;
#endif
}

void conv_winograd_forward_nhwc(const float* x, const float* weight, const float* bias, float* y,
                                const Conv2dDims& d) {
  FRUGAL_CHECK(conv_winograd_supported(d), "conv_winograd_forward_nhwc: unsupported convolution");
#if defined(__AVX512F__)
  winograd(x, weight, bias, y, d);
#else
  (void)x, (void)weight, (void)bias, (void)y;
#endif
}

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
