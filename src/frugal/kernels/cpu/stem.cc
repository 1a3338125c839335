// conv2d -> batch norm -> ReLU -> 2x2 max pooling from the input's moments (see stem.h). The
// passes split by image; each image is padded and shifted into this thread's scratch, then
// visited 16 output channels at a time with the taps' weights (or sums) in registers.
#include "frugal/kernels/cpu/stem.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "frugal/base/error.h"
#include "frugal/base/parallel.h"
#include "frugal/kernels/cpu/batch_norm_affine.h"
#include "frugal/kernels/cpu/pool.h"
#include "frugal/kernels/cpu/scratch.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define FRUGAL_STEM_AVX512 1
#include <immintrin.h>
#else
#define FRUGAL_STEM_AVX512 0
#endif

namespace frugal {
namespace kernels {
namespace cpu {

bool stem_supported(const StemDims& d) {
  const bool shape = (d.c == 1 && (d.k == 3 || d.k == 5)) || (d.c == 3 && d.k == 3);
  return FRUGAL_STEM_AVX512 && shape && d.n > 0 && d.o > 0 && d.o % 16 == 0 && d.o <= 256 && d.h >= 2 && d.w >= 2;
}

#if FRUGAL_STEM_AVX512
namespace {
// The moments' parts: [shift (c)] [S (T)] [G (T, T)].
struct Moments {
  const double* shift;
  const double* S;
  const double* G;
  Moments(const double* m, const StemDims& d) : shift(m), S(m + d.c), G(m + d.c + d.c * d.k * d.k) {}
};

// The padded, shifted input images: c planes of hp x wp values each.
struct Layout {
  StemDims d;
  int64_t pad = 0, hp = 0, wp = 0, plane = 0;
  std::vector<float> shift;  // (c)

  Layout(const StemDims& dims, const double* shift_values) : d(dims) {
    pad = d.k / 2, hp = d.h + 2 * pad, wp = d.w + 2 * pad, plane = hp * wp;
    shift.assign(shift_values, shift_values + d.c);
  }
  int64_t count() const { return d.n * d.h * d.w; }  // outputs per channel
  // Image n as z = x - shift (the border's zeros too), planar, in this thread's scratch. The
  // output at (h, w) reads its window from z + h * wp + w (ci * plane + kh * wp + kw for a tap).
  const float* padded(const float* x, int64_t n) const {
    float* z = scratch<float>(kStemImage, d.c * plane);
    for (int64_t ci = 0; ci < d.c; ++ci) {
      float* zc = z + ci * plane;
      const float s = shift[size_t(ci)];
      std::fill(zc, zc + plane, -s);
      for (int64_t h = 0; h < d.h; ++h) {
        const float* xr = x + ((n * d.h + h) * d.w) * d.c + ci;
        float* zr = zc + (h + pad) * wp + pad;
        for (int64_t w = 0; w < d.w; ++w) zr[w] = xr[w * d.c] - s;
      }
    }
    return z;
  }
};

// The weights packed by tap for 16-channel loads, and the bias of the shifted input,
// b + sum_t w_t shift_c(t).
struct Packed {
  std::vector<float> taps;     // (T, o)
  std::vector<double> bias;    // (o)
  std::vector<float> bias32;   // (o)
  Packed(const float* weight, const float* conv_bias, const double* shift, const StemDims& d) {
    const int64_t T = d.c * d.k * d.k, kk = d.k * d.k;
    taps.resize(size_t(T * d.o));
    bias.resize(size_t(d.o));
    bias32.resize(size_t(d.o));
    for (int64_t oc = 0; oc < d.o; ++oc) {
      double b = conv_bias ? double(conv_bias[oc]) : 0.0;
      for (int64_t t = 0; t < T; ++t) {
        taps[size_t(t * d.o + oc)] = weight[oc * T + t];
        b += double(weight[oc * T + t]) * shift[t / kk];
      }
      bias[size_t(oc)] = b;
      bias32[size_t(oc)] = float(b);
    }
  }
};

// f(t, offset) for the taps of a C x K x K window in weight order, t = (ci * K + kh) * K + kw,
// offset = ci * plane + kh * wp + kw.
template <int C, int K, class F>
inline void each_tap(int64_t plane, int64_t wp, F&& f) {
#pragma GCC unroll 4
  for (int ci = 0; ci < C; ++ci)
#pragma GCC unroll 8
    for (int kh = 0; kh < K; ++kh)
#pragma GCC unroll 8
      for (int kw = 0; kw < K; ++kw) f((ci * K + kh) * K + kw, ci * plane + kh * wp + kw);
}

// The convolution of the shifted input for 16 output channels from c0, one register per tap.
template <int C, int K>
struct Conv16 {
  static constexpr int T = C * K * K;
  __m512 w[T];
  __m512 bias;
  int64_t plane, wp;
  Conv16(const Packed& p, const Layout& l, int64_t c0) : plane(l.plane), wp(l.wp) {
    for (int t = 0; t < T; ++t) w[t] = _mm512_loadu_ps(p.taps.data() + t * l.d.o + c0);
    bias = _mm512_loadu_ps(p.bias32.data() + c0);
  }
  // The output whose window starts at z: the bias, then each tap's product in tap order.
  __m512 at(const float* z) const {
    __m512 acc = bias;
    each_tap<C, K>(plane, wp, [&](int t, int64_t at) { acc = _mm512_fmadd_ps(_mm512_set1_ps(z[at]), w[t], acc); });
    return acc;
  }
};

// Per-image partial sums (n, count) combined in double in image order into total (count).
void combine_images(const float* partials, int64_t n, int64_t count, double* total) {
  std::fill(total, total + count, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < count; ++r) total[r] += double(partials[i * count + r]);
}

// f(n, padded image n) for every image, split over threads by image.
template <class F>
void for_images(const Layout& l, const float* x, F&& f) {
  parallel_for(l.d.n, 1, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) f(n, l.padded(x, n));
  });
}

// The sum of 16 lanes, in lane order (GCC 12's _mm512_reduce_add_ps warns of an undefined operand).
inline float lane_sum(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float sum = 0.0f;
  for (float lane : lanes) sum += lane;
  return sum;
}

// S and G: per image over rows of 16 outputs at a time, the window's taps as 16-lane vectors.
template <int C, int K>
void moments(const Layout& l, const float* x, double* S, double* G) {
  constexpr int T = C * K * K;
  const StemDims& d = l.d;
  constexpr int64_t per_image = T + T * T;
  float* partials = scratch<float>(kStemPartials, d.n * per_image);
  for_images(l, x, [&](int64_t n, const float* z) {
    __m512 s[T], g[T][T];
    for (int t = 0; t < T; ++t) {
      s[t] = _mm512_setzero_ps();
      for (int u = t; u < T; ++u) g[t][u] = _mm512_setzero_ps();
    }
    for (int64_t h = 0; h < d.h; ++h)
      for (int64_t w0 = 0; w0 < d.w; w0 += 16) {
        const __mmask16 m = d.w - w0 >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (d.w - w0)) - 1u);
        __m512 v[T];
        each_tap<C, K>(l.plane, l.wp, [&](int t, int64_t at) { v[t] = _mm512_maskz_loadu_ps(m, z + h * l.wp + w0 + at); });
        for (int t = 0; t < T; ++t) {
          s[t] = _mm512_add_ps(s[t], v[t]);
          for (int u = t; u < T; ++u) g[t][u] = _mm512_fmadd_ps(v[t], v[u], g[t][u]);
        }
      }
    float* part = partials + n * per_image;
    for (int t = 0; t < T; ++t) {
      part[t] = lane_sum(s[t]);
      for (int u = t; u < T; ++u) part[T + t * T + u] = part[T + u * T + t] = lane_sum(g[t][u]);
    }
  });
  std::vector<double> total(static_cast<size_t>(per_image));
  combine_images(partials, d.n, per_image, total.data());
  std::copy(total.begin(), total.begin() + T, S);
  std::copy(total.begin() + T, total.end(), G);
}

template <int C, int K>
void forward(const Layout& l, const Packed& p, const float* x, const float* scale, const float* shift, float* y,
             uint8_t* where) {
  const StemDims& d = l.d;
  const int64_t oh = d.h / 2, ow = d.w / 2;
  for_images(l, x, [&](int64_t n, const float* z) {
    for (int64_t c0 = 0; c0 < d.o; c0 += 16) {
      const Conv16<C, K> conv(p, l, c0);
      const __m512 a = _mm512_loadu_ps(scale + c0), b = _mm512_loadu_ps(shift + c0);
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          const float* q = z + 2 * i * l.wp + 2 * j;  // the window a b / c d
          const int64_t out = ((n * oh + i) * ow + j) * d.o + c0;
          max_pool_window16(bn16(conv.at(q), a, b, true), bn16(conv.at(q + 1), a, b, true),
                            bn16(conv.at(q + l.wp), a, b, true), bn16(conv.at(q + l.wp + 1), a, b, true), y + out,
                            where + out, __mmask16(0xFFFF));
        }
    }
  });
}

// Backward's pass: per channel, sum g over the windows and A_t = sum g z_t at each window's
// winner, g the window's gradient where its output is positive (ReLU's rule).
template <int C, int K>
void winner_sums(const Layout& l, const float* x, const float* y, const uint8_t* where, const float* grad_y,
                 double* total) {
  constexpr int T = C * K * K;
  const StemDims& d = l.d;
  const int64_t o = d.o, oh = d.h / 2, ow = d.w / 2, per_image = (T + 1) * o;
  float* partials = scratch<float>(kStemPartials, d.n * per_image);
  for_images(l, x, [&](int64_t n, const float* z) {
    float* part = partials + n * per_image;
    const int64_t place[4] = {0, 1, l.wp, l.wp + 1};
    for (int64_t c0 = 0; c0 < o; c0 += 16) {
      __m512 a[T], sum_g = _mm512_setzero_ps();
      for (int t = 0; t < T; ++t) a[t] = _mm512_setzero_ps();
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          const int64_t at = ((n * oh + i) * ow + j) * o + c0;
          const __mmask16 positive = _mm512_cmp_ps_mask(_mm512_loadu_ps(y + at), _mm512_setzero_ps(), _CMP_GT_OQ);
          const __m512 g = _mm512_maskz_loadu_ps(positive, grad_y + at);
          const __m128i winners = _mm_loadu_si128(reinterpret_cast<const __m128i*>(where + at));
          sum_g = _mm512_add_ps(sum_g, g);
          const float* q = z + 2 * i * l.wp + 2 * j;
          for (int k = 0; k < 4; ++k) {
            const __m512 gk = _mm512_maskz_mov_ps(_mm_cmpeq_epi8_mask(winners, _mm_set1_epi8(char(k))), g);
            const float* qk = q + place[k];
            each_tap<C, K>(l.plane, l.wp, [&](int t, int64_t off) {
              a[t] = _mm512_fmadd_ps(gk, _mm512_set1_ps(qk[off]), a[t]);
            });
          }
        }
      for (int t = 0; t < T; ++t) _mm512_storeu_ps(part + t * o + c0, a[t]);
      _mm512_storeu_ps(part + T * o + c0, sum_g);
    }
  });
  combine_images(partials, d.n, per_image, total);
}

// f(std::integral_constant<int, C>, std::integral_constant<int, K>) for the supported shapes.
template <class F>
void with_shape(const StemDims& d, F&& f) {
  if (d.c == 1 && d.k == 3) return f(std::integral_constant<int, 1>{}, std::integral_constant<int, 3>{});
  if (d.c == 1 && d.k == 5) return f(std::integral_constant<int, 1>{}, std::integral_constant<int, 5>{});
  if (d.c == 3 && d.k == 3) return f(std::integral_constant<int, 3>{}, std::integral_constant<int, 3>{});
  FRUGAL_CHECK(false, "stem kernels: unsupported channels and kernel size");
}
}  // namespace

int64_t stem_moments_size(const StemDims& d) {
  const int64_t T = d.c * d.k * d.k;
  return d.c + T + T * T;
}

void stem_moments(const float* x, double* out, const StemDims& d, bool sums) {
  FRUGAL_CHECK(stem_supported(d), "stem_moments: unsupported shape");
  for (int64_t ci = 0; ci < d.c; ++ci) {  // the shift: image 0's mean
    double sum = 0;
    for (int64_t i = 0; i < d.h * d.w; ++i) sum += double(x[i * d.c + ci]);
    out[ci] = double(float(sum / double(d.h * d.w)));  // as Layout's f32 copy subtracts it
  }
  const int64_t T = d.c * d.k * d.k;
  if (!sums) return std::fill(out + d.c, out + d.c + T + T * T, 0.0);
  const Layout l(d, out);
  with_shape(d, [&](auto c, auto k) {
    moments<decltype(c)::value, decltype(k)::value>(l, x, out + d.c, out + d.c + T);
  });
}

void stem_stats(const double* moments, const float* weight, const float* bias, float* mean, float* var,
                const StemDims& d) {
  FRUGAL_CHECK(stem_supported(d), "stem_stats: unsupported shape");
  const Moments m(moments, d);
  const Packed p(weight, bias, m.shift, d);
  const int64_t T = d.c * d.k * d.k;
  const double M = double(d.n * d.h * d.w);
  for (int64_t oc = 0; oc < d.o; ++oc) {
    const float* w = weight + oc * T;
    double wS = 0, wGw = 0;
    for (int64_t t = 0; t < T; ++t) {
      wS += double(w[t]) * m.S[t];
      double Gw = 0;
      for (int64_t u = 0; u < T; ++u) Gw += m.G[t * T + u] * double(w[u]);
      wGw += double(w[t]) * Gw;
    }
    mean[oc] = float(wS / M + p.bias[size_t(oc)]);
    var[oc] = float(std::max(0.0, wGw / M - (wS / M) * (wS / M)));
  }
}

void stem_forward(const float* x, const double* moments, const float* weight, const float* bias, const float* mean,
                  const float* rstd, const float* bn_weight, const float* bn_bias, float* y, uint8_t* where,
                  const StemDims& d) {
  FRUGAL_CHECK(stem_supported(d), "stem_forward: unsupported shape");
  const Moments m(moments, d);
  const Layout l(d, m.shift);
  const Packed p(weight, bias, m.shift, d);
  const std::vector<float> ab = bn_affine(mean, rstd, bn_weight, bn_bias, d.o);
  with_shape(d, [&](auto c, auto k) {
    forward<decltype(c)::value, decltype(k)::value>(l, p, x, ab.data(), ab.data() + d.o, y, where);
  });
}

void stem_backward(const float* x, const double* moments, const float* weight, const float* bias, const float* mean,
                   const float* rstd, const float* bn_weight, const float* y, const uint8_t* where,
                   const float* grad_y, float* dweight, float* dbias, float* dbn_weight, float* dbn_bias,
                   const StemDims& d, bool training) {
  FRUGAL_CHECK(stem_supported(d), "stem_backward: unsupported shape");
  const Moments m(moments, d);
  const Layout l(d, m.shift);
  const Packed p(weight, bias, m.shift, d);
  const int64_t T = d.c * d.k * d.k, o = d.o, kk = d.k * d.k;
  const double M = double(l.count());
  std::vector<double> sums(size_t((T + 1) * o));  // A (T, o), then sum g (o)
  with_shape(d, [&](auto c, auto k) {
    winner_sums<decltype(c)::value, decltype(k)::value>(l, x, y, where, grad_y, sums.data());
  });
  for (int64_t oc = 0; oc < o; ++oc) {
    const float* w = weight + oc * T;
    auto A = [&](int64_t t) { return sums[size_t(t * o + oc)]; };
    const double sum_g = sums[size_t(T * o + oc)], centered_bias = p.bias[size_t(oc)] - double(mean[oc]);
    // Batch norm: sum g (v - mean) = w . A + (b' - mean) sum g, then batch_norm_backward_rows's
    // coefficients of dv = k (g - mean_g - (v - mean) mean_gv).
    double wA = 0, wS = 0;
    for (int64_t t = 0; t < T; ++t) wA += double(w[t]) * A(t), wS += double(w[t]) * m.S[t];
    const double g_xhat = (wA + centered_bias * sum_g) * double(rstd[oc]);
    if (dbn_weight) dbn_weight[oc] = float(g_xhat);
    if (dbn_bias) dbn_bias[oc] = float(sum_g);
    const double k = double(rstd[oc]) * (bn_weight ? double(bn_weight[oc]) : 1.0);
    const double mean_g = training ? sum_g / M : 0.0;
    const double mean_gv = training ? g_xhat / M * double(rstd[oc]) : 0.0;
    // The convolution: sum dv, and sum dv z_t = k (A_t - mean_g S_t - mean_gv sum (v - mean) z_t)
    // with sum (v - mean) z_t = (G w)_t + (b' - mean) S_t; dweight_t = sum dv z_t + shift sum dv.
    const double sum_dv = k * (sum_g - mean_g * M - mean_gv * (wS + M * centered_bias));
    if (dbias) dbias[oc] = float(sum_dv);
    if (!dweight) continue;
    for (int64_t t = 0; t < T; ++t) {
      double Gw = 0;
      for (int64_t u = 0; u < T; ++u) Gw += m.G[t * T + u] * double(w[u]);
      const double dvz = k * (A(t) - mean_g * m.S[t] - mean_gv * (Gw + centered_bias * m.S[t]));
      dweight[oc * T + t] = float(dvz + m.shift[t / kk] * sum_dv);
    }
  }
}

#else  // no AVX-512: stem_supported() is false and callers run the separate ops

int64_t stem_moments_size(const StemDims&) { return 0; }
void stem_moments(const float*, double*, const StemDims&, bool) {
  FRUGAL_CHECK(false, "stem_moments: needs an AVX-512 build");
}
void stem_stats(const double*, const float*, const float*, float*, float*, const StemDims&) {
  FRUGAL_CHECK(false, "stem_stats: needs an AVX-512 build");
}
void stem_forward(const float*, const double*, const float*, const float*, const float*, const float*, const float*,
                  const float*, float*, uint8_t*, const StemDims&) {
  FRUGAL_CHECK(false, "stem_forward: needs an AVX-512 build");
}
void stem_backward(const float*, const double*, const float*, const float*, const float*, const float*, const float*,
                   const float*, const uint8_t*, const float*, float*, float*, float*, float*, const StemDims&, bool) {
  FRUGAL_CHECK(false, "stem_backward: needs an AVX-512 build");
}
#endif

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
