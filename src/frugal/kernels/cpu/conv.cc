#include "frugal/kernels/cpu/conv.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <vector>

#include "frugal/base/error.h"
#include "frugal/base/parallel.h"
#include "frugal/kernels/cpu/convert.h"
#include "frugal/kernels/cpu/scratch.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace frugal {
namespace kernels {
namespace cpu {
namespace {

constexpr int64_t kBlocks = 8;                        // image blocks, one partial result each
constexpr int64_t kMaxWeightGrad = int64_t(1) << 20;  // elements of dW (the partials are kBlocks of it)
constexpr int64_t kMaxImageBuffers = 512 << 10;       // bytes of one image's operand buffers (L2)

// Where things are in one image's buffers. The x buffer holds, for every padded row r (input row
// r - padding_h) and every position q of a step's patch start along it, the value (f32) or pair of
// values (bf16: positions q and q + 1) of all C channels: (PH, PW, C). A step is P output pixels
// of a row (1 for f32, 2 for bf16); an output row has S steps, the last one padded with a zero
// gradient when P does not divide OW. Column (kh, kw, ic) of step (oh, s) reads x buffer element
// (oh + kh, P s + kw, ic).
struct Geometry {
  int64_t H, W, C, O, KH, KW, OH, OW, ph, pw;
  int64_t P, S, PH, PW, cols;
};

Geometry geometry(const Conv2dDims& d, int64_t P) {
  Geometry g{};
  g.H = d.h, g.W = d.w, g.C = d.c, g.O = d.o, g.KH = d.kernel_h, g.KW = d.kernel_w;
  g.OH = d.out_h, g.OW = d.out_w, g.ph = d.padding_h, g.pw = d.padding_w;
  g.P = P;
  g.S = (g.OW + P - 1) / P;
  g.PH = g.OH + g.KH - 1;
  g.PW = P * (g.S - 1) + g.KW;
  g.cols = g.KH * g.KW * g.C;
  return g;
}

// What both kernels take: a stride-1 channels-last convolution, not empty, O a multiple of 16.
bool kernel_shape(const Conv2dDims& d) {
  return is_stride1_channels_last(d) && d.n >= 1 && d.c >= 1 && d.o >= 16 && d.o % 16 == 0 && d.out_h >= 1 &&
         d.out_w >= 1;
}

// What one image's accumulation reads: the x buffer and the gradient (for bf16 as pairs,
// (OH, S, O)), with elements of element_bytes.
int64_t image_buffer_bytes(const Geometry& g, int64_t element_bytes) {
  return (g.PH * g.PW * g.C + g.OH * g.S * g.O) * element_bytes;
}

#if defined(__AVX512F__)

// The arithmetic of one precision: what a buffer element is, a gradient vector load, a patch
// value broadcast, and the multiply-add (16 f32 lanes of output channels).
struct F32Math {
  using In = float;
  using Elem = float;
  static constexpr int64_t P = 1;
  static __m512 load(const Elem* p) { return _mm512_loadu_ps(p); }
  static __m512 broadcast(const Elem* p) { return _mm512_set1_ps(*p); }
  static __m512 ones() { return _mm512_set1_ps(1.0f); }
  static __m512 fma(__m512 acc, __m512 dy, __m512 x) { return _mm512_fmadd_ps(dy, x, acc); }
};

#if defined(__AVX512BF16__)
struct Bf16Math {
  using In = bf16_t;
  using Elem = uint32_t;  // two bf16: the first pixel of the pair in the low half
  static constexpr int64_t P = 2;
  static __m512 load(const Elem* p) { return _mm512_castsi512_ps(_mm512_loadu_si512(p)); }
  static __m512 broadcast(const Elem* p) { return _mm512_castsi512_ps(_mm512_set1_epi32(int(*p))); }
  static __m512 ones() { return _mm512_castsi512_ps(_mm512_set1_epi32(0x3F803F80)); }  // (1.0, 1.0)
  static __m512 fma(__m512 acc, __m512 dy, __m512 x) {
    return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh>(dy), reinterpret_cast<__m512bh>(x));
  }
};
#endif

// The x buffer of one image (x_img: (H, W, C)): its rows with zeros around them.
void fill_x_buffer(const float* x_img, const Geometry& g, float* out) {
  const int64_t right = g.PW - g.pw - g.W;  // >= 0: the buffer row spans the padded input row
  for (int64_t r = 0; r < g.PH; ++r) {
    const int64_t in_r = r - g.ph;
    if (in_r < 0 || in_r >= g.H) {
      std::memset(out, 0, size_t(g.PW * g.C) * sizeof(float));
      out += g.PW * g.C;
      continue;
    }
    std::memset(out, 0, size_t(g.pw * g.C) * sizeof(float));
    out += g.pw * g.C;
    std::memcpy(out, x_img + in_r * g.W * g.C, size_t(g.W * g.C) * sizeof(float));
    out += g.W * g.C;
    std::memset(out, 0, size_t(right * g.C) * sizeof(float));
    out += right * g.C;
  }
}

#if defined(__AVX512BF16__)
// out[i] = a[i] | a[i + shift] << 16 for i < n: pairs of values shift apart.
void pair_up(const bf16_t* a, int64_t shift, int64_t n, uint32_t* out) {
  const __mmask16 all = 0xFFFF;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i lo = _mm512_maskz_cvtepu16_epi32(all, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i)));
    const __m512i hi =
        _mm512_maskz_cvtepu16_epi32(all, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i + shift)));
    _mm512_storeu_si512(out + i, _mm512_or_si512(lo, _mm512_maskz_slli_epi32(all, hi, 16)));
  }
  for (; i < n; ++i) out[i] = uint32_t(a[i].bits) | uint32_t(a[i + shift].bits) << 16;
}

// The x buffer of one image: each padded row is copied once into row (PW + 1 positions, zeros
// outside the image), whose values `shift` apart are then paired in one flat pass: shift C pairs
// neighbouring pixels (the weight gradient's steps), shift 1 neighbouring values (the direct
// forward's patch terms). single, if not null, gets each row's values alone (zero-extended).
void fill_x_buffer(const bf16_t* x_img, const Geometry& g, uint32_t* out, bf16_t* row, int64_t shift,
                   uint32_t* single = nullptr) {
  const int64_t row_elems = g.PW * g.C;
  const int64_t left = std::min(g.pw, g.PW + 1), inside = std::max<int64_t>(0, std::min(g.W, g.PW + 1 - g.pw));
  std::memset(row, 0, size_t((g.PW + 1) * g.C) * sizeof(bf16_t));
  for (int64_t r = 0; r < g.PH; ++r, out += row_elems) {
    const int64_t in_r = r - g.ph;
    if (in_r < 0 || in_r >= g.H) {
      std::memset(out, 0, size_t(row_elems) * sizeof(uint32_t));
      if (single) std::memset(single + r * row_elems, 0, size_t(row_elems) * sizeof(uint32_t));
      continue;
    }
    // Positions [0, left) and [left + inside, PW + 1) stay zero from the memset above.
    std::memcpy(row + left * g.C, x_img + in_r * g.W * g.C, size_t(inside * g.C) * sizeof(bf16_t));
    pair_up(row, shift, row_elems, out);
    if (single)
      for (int64_t i = 0; i < row_elems; ++i) single[r * row_elems + i] = row[i].bits;
  }
}

// grad_y of one image (OH, OW, O) as pairs of horizontally adjacent pixels (OH, S, O); an odd
// row's last pixel is paired with zeros.
void fill_grad_pairs(const bf16_t* dy_img, const Geometry& g, uint32_t* out) {
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    const bf16_t* dy_row = dy_img + oh * g.OW * g.O;
    for (int64_t s = 0; s < g.OW / 2; ++s, out += g.O) pair_up(dy_row + 2 * s * g.O, g.O, g.O, out);
    if (g.OW % 2) {
      const bf16_t* last = dy_row + (g.OW - 1) * g.O;
      for (int64_t o = 0; o < g.O; ++o) out[o] = last[o].bits;
      out += g.O;
    }
  }
}
#endif

// Images summed together, in order: their x buffers and gradients (each image's own layout).
template <class M>
struct ImageGroup {
  static constexpr int64_t kMax = 8;
  const typename M::Elem* x[kMax];
  const typename M::Elem* dy[kMax];
  int64_t images = 0;
};

// Columns [col0, col0 + CB) times output channels [o0, o0 + 16 OV), summed over a group of images
// and added to part (cols, O): the CB x OV accumulators stay in registers over all of the group's
// steps. offset: the x buffer offset of each column from its step's first element.
template <class M, int OV, int CB>
void accumulate_block(const ImageGroup<M>& group, const Geometry& g, const int64_t* offset, int64_t col0,
                      int64_t o0, float* part) {
  using Elem = typename M::Elem;
  int64_t off[CB];
  for (int c = 0; c < CB; ++c) off[c] = offset[col0 + c];
  __m512 acc[OV][CB];
  for (int c = 0; c < CB; ++c)
    for (int v = 0; v < OV; ++v) acc[v][c] = _mm512_loadu_ps(part + (col0 + c) * g.O + o0 + 16 * v);
  const int64_t x_step = M::P * g.C;
  for (int64_t image = 0; image < group.images; ++image)
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      const Elem* xs = group.x[image] + oh * g.PW * g.C;
      const Elem* ds = group.dy[image] + oh * g.S * g.O + o0;
      for (int64_t s = 0; s < g.S; ++s, xs += x_step, ds += g.O) {
        __m512 d[OV];
        for (int v = 0; v < OV; ++v) d[v] = M::load(ds + 16 * v);
        for (int c = 0; c < CB; ++c) {
          const __m512 b = M::broadcast(xs + off[c]);
          for (int v = 0; v < OV; ++v) acc[v][c] = M::fma(acc[v][c], d[v], b);
        }
      }
    }
  for (int c = 0; c < CB; ++c)
    for (int v = 0; v < OV; ++v) _mm512_storeu_ps(part + (col0 + c) * g.O + o0 + 16 * v, acc[v][c]);
}

// Register blocks: up to 24 accumulators, at most 12 columns (the broadcasts).
constexpr int max_columns(int ov) { return std::min(12, 24 / ov); }

template <class M>
using BlockFn = void (*)(const ImageGroup<M>&, const Geometry&, const int64_t*, int64_t, int64_t, float*);

template <class M, int OV, int... I>
constexpr std::array<BlockFn<M>, sizeof...(I)> block_table(std::integer_sequence<int, I...>) {
  return {&accumulate_block<M, OV, I + 1>...};
}

template <class M>
BlockFn<M> block_fn(int ov, int cb) {
  static constexpr auto t1 = block_table<M, 1>(std::make_integer_sequence<int, max_columns(1)>());
  static constexpr auto t2 = block_table<M, 2>(std::make_integer_sequence<int, max_columns(2)>());
  static constexpr auto t3 = block_table<M, 3>(std::make_integer_sequence<int, max_columns(3)>());
  static constexpr auto t4 = block_table<M, 4>(std::make_integer_sequence<int, max_columns(4)>());
  switch (ov) {
    case 1: return t1[size_t(cb - 1)];
    case 2: return t2[size_t(cb - 1)];
    case 3: return t3[size_t(cb - 1)];
    default: return t4[size_t(cb - 1)];
  }
}

// The bias gradient: grad_y summed over the group's steps, added to bias_part (O). Eight
// independent sums (step i of an image goes to sum i mod 8), added up at the end: one chain of
// dependent additions would wait on the adder's latency at every step.
template <class M>
void accumulate_bias(const ImageGroup<M>& group, const Geometry& g, float* bias_part) {
  constexpr int kChains = 8;
  const __m512 ones = M::ones();
  const int64_t steps = g.OH * g.S;
  for (int64_t o = 0; o < g.O; o += 16) {
    __m512 acc[kChains];
    for (int k = 0; k < kChains; ++k) acc[k] = _mm512_setzero_ps();
    for (int64_t image = 0; image < group.images; ++image) {
      const typename M::Elem* dy = group.dy[image] + o;
      int64_t step = 0;
      for (; step + kChains <= steps; step += kChains)
        for (int k = 0; k < kChains; ++k) acc[k] = M::fma(acc[k], M::load(dy + (step + k) * g.O), ones);
      for (int k = 0; step < steps; ++step, ++k) acc[k] = M::fma(acc[k], M::load(dy + step * g.O), ones);
    }
    for (int width = kChains / 2; width > 0; width /= 2)
      for (int k = 0; k < width; ++k) acc[k] = _mm512_add_ps(acc[k], acc[k + width]);
    _mm512_storeu_ps(bias_part + o, _mm512_add_ps(_mm512_loadu_ps(bias_part + o), acc[0]));
  }
}

// A group's contribution to its block's partial result: all columns, all output channels, in
// register blocks of up to 64 channels; columns split evenly into blocks of at most max_columns.
template <class M>
void accumulate_group(const ImageGroup<M>& group, const Geometry& g, const int64_t* offset, float* part,
                      float* bias_part) {
  for (int64_t o0 = 0; o0 < g.O; o0 += 64) {
    const int ov = int(std::min<int64_t>(4, (g.O - o0) / 16));
    const int64_t blocks = (g.cols + max_columns(ov) - 1) / max_columns(ov);
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t col0 = g.cols * b / blocks, col1 = g.cols * (b + 1) / blocks;
      block_fn<M>(ov, int(col1 - col0))(group, g, offset, col0, o0, part);
    }
  }
  if (bias_part) accumulate_bias<M>(group, g, bias_part);
}

// Images per group: as many as keep the group's buffers within kGroupBytes (L2), at most 8.
constexpr int64_t kGroupBytes = 256 << 10;

template <class M>
void weight_grad(const typename M::In* x, const typename M::In* grad_y, float* grad_weight, float* grad_bias,
                 const Conv2dDims& d) {
  using Elem = typename M::Elem;
  const Geometry g = geometry(d, M::P);
  const int64_t blocks = std::min<int64_t>(d.n, kBlocks), part_size = g.cols * g.O;
  const int64_t x_elems = g.PH * g.PW * g.C, pair_elems = M::P == 2 ? g.OH * g.S * g.O : 0;
  const int64_t group_max =
      std::clamp<int64_t>(kGroupBytes / image_buffer_bytes(g, sizeof(Elem)), 1, ImageGroup<M>::kMax);
  // On this thread: the partial results (blocks, cols, O) then (blocks, O), and each column's x
  // buffer offset.
  float* part = scratch<float>(kPartials, blocks * (part_size + g.O));
  float* bias_part = part + blocks * part_size;
  thread_local std::vector<int64_t> offsets;
  offsets.resize(size_t(g.cols));
  for (int64_t col = 0; col < g.cols; ++col) {
    const int64_t kh = col / (g.KW * g.C);
    offsets[size_t(col)] = kh * g.PW * g.C + (col - kh * g.KW * g.C);  // (kh, kw * C + ic)
  }
  const int64_t* offset = offsets.data();  // the workers see their own thread_locals
  const int64_t x_image = g.H * g.W * g.C, dy_image = g.OH * g.OW * g.O;
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    Elem* x_buffer = scratch<Elem>(kImage, group_max * x_elems);
    Elem* pair_buffer = M::P == 2 ? scratch<Elem>(kPairs, group_max * pair_elems) : nullptr;
    bf16_t* row = M::P == 2 ? scratch<bf16_t>(kRow, (g.PW + 1) * g.C) : nullptr;
    for (int64_t b = b0; b < b1; ++b) {
      float* bp = part + b * part_size;
      float* bb = grad_bias ? bias_part + b * g.O : nullptr;
      std::fill(bp, bp + part_size, 0.0f);
      if (bb) std::fill(bb, bb + g.O, 0.0f);
      const int64_t end = d.n * (b + 1) / blocks;
      for (int64_t first = d.n * b / blocks; first < end; first += group_max) {
        ImageGroup<M> group;
        group.images = std::min(group_max, end - first);
        for (int64_t k = 0; k < group.images; ++k) {
          const int64_t i = first + k;
          Elem* xb = x_buffer + k * x_elems;
          if constexpr (M::P == 2) {
            fill_x_buffer(x + i * x_image, g, xb, row, g.C);
            fill_grad_pairs(grad_y + i * dy_image, g, pair_buffer + k * pair_elems);
            group.dy[k] = pair_buffer + k * pair_elems;
          } else {
            fill_x_buffer(x + i * x_image, g, xb);
            group.dy[k] = grad_y + i * dy_image;
          }
          group.x[k] = xb;
        }
        accumulate_group<M>(group, g, offset, bp, bb);
      }
    }
  });
  // The blocks in order; dW from (kh, kw, ic, o) to (o, ic, kh, kw).
  parallel_for(g.cols, 16, [&](int64_t c0, int64_t c1) {
    for (int64_t col = c0; col < c1; ++col) {
      const int64_t kh = col / (g.KW * g.C), kw = col / g.C % g.KW, ic = col % g.C;
      for (int64_t o = 0; o < g.O; ++o) {
        float sum = part[col * g.O + o];
        for (int64_t b = 1; b < blocks; ++b) sum += part[b * part_size + col * g.O + o];
        grad_weight[((o * g.C + ic) * g.KH + kh) * g.KW + kw] = sum;
      }
    }
  });
  if (grad_bias) {
    for (int64_t o = 0; o < g.O; ++o) {
      float sum = bias_part[o];
      for (int64_t b = 1; b < blocks; ++b) sum += bias_part[b * g.O + o];
      grad_bias[o] = sum;
    }
  }
}


// ---- direct forward ----

constexpr int64_t kMaxTerms = 16;

// Terms per output pixel: f32 one per patch value, bf16 one per pair of a kernel row's values.
int64_t direct_terms(const Conv2dDims& d, bool bf16) {
  const int64_t row = d.kernel_w * d.c;
  return d.kernel_h * (bf16 ? (row + 1) / 2 : row);
}

// 32 output channels per block when the weights of all terms and at least 4 pixels fit in
// registers, else 16; pixels per block: what is left of 28 registers, at most 8.
int direct_channel_vectors(int64_t O, int64_t terms) { return O % 32 == 0 && terms <= 10 ? 2 : 1; }
constexpr int pixel_block(int ov, int terms) { return std::clamp((28 - terms * ov) / ov, 1, 8); }

inline void store_out(float* y, __m512 v) { _mm512_storeu_ps(y, v); }
#if defined(__AVX512BW__)
inline void store_out(bf16_t* y, __m512 v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), round_to_bf16x16(v));
}
#endif

// Output channels [o0, o0 + 16 OV) of one image from its x buffer: weights[t] (O lanes) is term
// t's weight (pair), offset[t] where its value (pair) is from a pixel's first buffer element.
template <class M, int OV, int NT, class Out>
void direct_image(const typename M::Elem* buffer, const int64_t* offset, const typename M::Elem* weights,
                  const float* bias, Out* y, const Geometry& g, int64_t o0) {
  using Elem = typename M::Elem;
  constexpr int PB = pixel_block(OV, NT);
  __m512 wv[NT][OV], b[OV];
  int64_t off[NT];
  for (int t = 0; t < NT; ++t) {
    off[t] = offset[t];
    for (int v = 0; v < OV; ++v) wv[t][v] = M::load(weights + t * g.O + o0 + 16 * v);
  }
  for (int v = 0; v < OV; ++v) b[v] = bias ? _mm512_loadu_ps(bias + o0 + 16 * v) : _mm512_setzero_ps();
  const int64_t C = g.C, O = g.O;
  // K pixels from xs (buffer) to ys (output), all terms in order.
  auto pixels = [&](auto k_pixels, const Elem* xs, Out* ys) {
    constexpr int K = decltype(k_pixels)::value;
    __m512 acc[K][OV];
    for (int k = 0; k < K; ++k)
      for (int v = 0; v < OV; ++v) acc[k][v] = b[v];
    for (int t = 0; t < NT; ++t)
      for (int k = 0; k < K; ++k) {
        const __m512 x = M::broadcast(xs + k * C + off[t]);
        for (int v = 0; v < OV; ++v) acc[k][v] = M::fma(acc[k][v], wv[t][v], x);
      }
    for (int k = 0; k < K; ++k)
      for (int v = 0; v < OV; ++v) store_out(ys + k * O + 16 * v, acc[k][v]);
  };
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    const Elem* xs = buffer + oh * g.PW * C;
    Out* ys = y + oh * g.OW * O + o0;
    int64_t ow = 0;
    for (; ow + PB <= g.OW; ow += PB) pixels(std::integral_constant<int, PB>(), xs + ow * C, ys + ow * O);
    for (; ow < g.OW; ++ow) pixels(std::integral_constant<int, 1>(), xs + ow * C, ys + ow * O);
  }
}

template <class M, class Out>
using DirectFn = void (*)(const typename M::Elem*, const int64_t*, const typename M::Elem*, const float*, Out*,
                          const Geometry&, int64_t);

template <class M, class Out, int OV, int... I>
constexpr std::array<DirectFn<M, Out>, sizeof...(I)> direct_table(std::integer_sequence<int, I...>) {
  return {&direct_image<M, OV, I + 1, Out>...};
}

template <class M, class Out>
DirectFn<M, Out> direct_fn(int ov, int64_t terms) {
  static constexpr auto t1 = direct_table<M, Out, 1>(std::make_integer_sequence<int, int(kMaxTerms)>());
  static constexpr auto t2 = direct_table<M, Out, 2>(std::make_integer_sequence<int, 10>());
  return ov == 2 ? t2[size_t(terms - 1)] : t1[size_t(terms - 1)];
}

inline uint32_t weight_bits(float w) { return float_bits(w); }
inline uint32_t weight_bits(bf16_t w) { return w.bits; }

template <class M, class Out>
void direct_forward(const typename M::In* x, const typename M::In* weight, const float* bias, Out* y,
                    const Conv2dDims& d) {
  using Elem = typename M::Elem;
  constexpr bool pairs = M::P == 2;
  const Geometry g = geometry(d, 1);
  const int64_t row_values = g.KW * g.C, per_row = pairs ? (row_values + 1) / 2 : row_values;
  const int64_t terms = g.KH * per_row, row_elems = g.PW * g.C, image_elems = g.PH * row_elems;
  // Per call, on this thread: each term's offset and weights (O lanes, a pair's first value low).
  thread_local std::vector<int64_t> offsets;
  thread_local std::vector<Elem> weights;
  offsets.resize(size_t(terms));
  weights.resize(size_t(terms * g.O));
  auto w_at = [&](int64_t o, int64_t kh, int64_t j) {  // j = kw C + ic, a kernel row's value
    return weight[((o * g.C + j % g.C) * g.KH + kh) * g.KW + j / g.C];
  };
  for (int64_t kh = 0; kh < g.KH; ++kh)
    for (int64_t q = 0; q < per_row; ++q) {
      const int64_t t = kh * per_row + q, j = pairs ? 2 * q : q;
      const bool alone = pairs && j + 1 == row_values;  // read from the zero-extended copy
      offsets[size_t(t)] = (alone ? image_elems : 0) + kh * row_elems + j;
      for (int64_t o = 0; o < g.O; ++o) {
        uint32_t bits = weight_bits(w_at(o, kh, j));
        if (pairs && !alone) bits |= weight_bits(w_at(o, kh, j + 1)) << 16;
        std::memcpy(&weights[size_t(t * g.O + o)], &bits, sizeof(Elem));
      }
    }
  const int ov = direct_channel_vectors(g.O, terms);
  const DirectFn<M, Out> fn = direct_fn<M, Out>(ov, terms);
  const int64_t x_image = g.H * g.W * g.C, y_image = g.OH * g.OW * g.O;
  // The workers see their own thread_locals: these two are the caller's.
  const int64_t* offset = offsets.data();
  const Elem* weight_lanes = weights.data();
  parallel_for(d.n, 1, [&](int64_t i0, int64_t i1) {
    // Pairs then values alone (bf16), or the padded image (f32).
    Elem* buffer = scratch<Elem>(kImage, (pairs ? 2 : 1) * image_elems);
    bf16_t* row = pairs ? scratch<bf16_t>(kRow, (g.PW + 1) * g.C) : nullptr;
    for (int64_t i = i0; i < i1; ++i) {
      if constexpr (pairs)
        fill_x_buffer(x + i * x_image, g, buffer, row, 1, buffer + image_elems);
      else
        fill_x_buffer(x + i * x_image, g, buffer);
      for (int64_t o0 = 0; o0 < g.O; o0 += 16 * ov) fn(buffer, offset, weight_lanes, bias, y + i * y_image, g, o0);
    }
  });
}

#endif  // __AVX512F__

template <class Out>
void direct_forward_bf16(const bf16_t* x, const bf16_t* weight, const float* bias, Out* y, const Conv2dDims& d) {
  FRUGAL_CHECK(conv_direct_supported(d, true), "conv_direct_forward_nhwc: unsupported bf16 convolution");
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512BF16__)
  direct_forward<Bf16Math>(x, weight, bias, y, d);
#else
  (void)x, (void)weight, (void)bias, (void)y;
#endif
}

}  // namespace

bool is_stride1_channels_last(const Conv2dDims& d) {
  return d.channels_last && d.groups == 1 && d.stride_h == 1 && d.stride_w == 1 && d.dilation_h == 1 &&
         d.dilation_w == 1 && d.out_h == d.h + 2 * d.padding_h - d.kernel_h + 1 &&
         d.out_w == d.w + 2 * d.padding_w - d.kernel_w + 1;
}

bool conv_weight_grad_supported(const Conv2dDims& d, bool bf16) {
#if defined(__AVX512F__)
#if !defined(__AVX512BF16__)
  if (bf16) return false;
#endif
  if (!kernel_shape(d)) return false;
  if (d.o * d.c * d.kernel_h * d.kernel_w > kMaxWeightGrad) return false;
  return image_buffer_bytes(geometry(d, bf16 ? 2 : 1), 4) <= kMaxImageBuffers;
#else
  (void)d, (void)bf16;
  return false;
#endif
}

void conv_weight_grad_nhwc(const float* x, const float* grad_y, float* grad_weight, float* grad_bias,
                           const Conv2dDims& d) {
  FRUGAL_CHECK(conv_weight_grad_supported(d, false), "conv_weight_grad_nhwc: unsupported convolution");
#if defined(__AVX512F__)
  weight_grad<F32Math>(x, grad_y, grad_weight, grad_bias, d);
#else
  (void)x, (void)grad_y, (void)grad_weight, (void)grad_bias;
#endif
}

void conv_weight_grad_nhwc(const bf16_t* x, const bf16_t* grad_y, float* grad_weight, float* grad_bias,
                           const Conv2dDims& d) {
  FRUGAL_CHECK(conv_weight_grad_supported(d, true), "conv_weight_grad_nhwc: unsupported bf16 convolution");
#if defined(__AVX512F__) && defined(__AVX512BF16__)
  weight_grad<Bf16Math>(x, grad_y, grad_weight, grad_bias, d);
#else
  (void)x, (void)grad_y, (void)grad_weight, (void)grad_bias;
#endif
}


bool conv_direct_supported(const Conv2dDims& d, bool bf16) {
#if defined(__AVX512F__) && defined(__AVX512BW__)
#if !defined(__AVX512BF16__)
  if (bf16) return false;
#endif
  if (!kernel_shape(d)) return false;
  if (direct_terms(d, bf16) > kMaxTerms) return false;
  const Geometry g = geometry(d, 1);
  return (bf16 ? 2 : 1) * g.PH * g.PW * g.C * 4 <= kMaxImageBuffers;
#else
  (void)d, (void)bf16;
  return false;
#endif
}

void conv_direct_forward_nhwc(const float* x, const float* weight, const float* bias, float* y, const Conv2dDims& d) {
  FRUGAL_CHECK(conv_direct_supported(d, false), "conv_direct_forward_nhwc: unsupported convolution");
#if defined(__AVX512F__) && defined(__AVX512BW__)
  direct_forward<F32Math>(x, weight, bias, y, d);
#else
  (void)x, (void)weight, (void)bias, (void)y;
#endif
}

void conv_direct_forward_nhwc(const bf16_t* x, const bf16_t* weight, const float* bias, float* y,
                              const Conv2dDims& d) {
  direct_forward_bf16(x, weight, bias, y, d);
}

void conv_direct_forward_nhwc(const bf16_t* x, const bf16_t* weight, const float* bias, bf16_t* y,
                              const Conv2dDims& d) {
  direct_forward_bf16(x, weight, bias, y, d);
}

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
