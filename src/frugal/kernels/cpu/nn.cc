// Fast f32 kernels for losses, norms and attention (see nn.h). Reductions run in 16 f32 lanes
// combined in double; every parallel split is a fixed partition of rows, channels or blocks.
#include "frugal/kernels/cpu/nn.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "frugal/base/parallel.h"
#include "frugal/kernels/cpu/activation.h"
#include "frugal/kernels/cpu/batch_norm_affine.h"
#include "frugal/kernels/cpu/convert.h"
#include "frugal/kernels/cpu/pool.h"

// The AVX-512 forms of the channels-last batch norm rows (byte compares and masked stores need BW
// and VL, which every AVX-512 CPU since Skylake-X has); scalar loops otherwise.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define FRUGAL_NN_AVX512 1
#else
#define FRUGAL_NN_AVX512 0
#endif

namespace frugal {
namespace kernels {
namespace cpu {

namespace {
constexpr int64_t kGrain = 16384;  // elements per thread chunk below which one thread is faster
constexpr int kLanes = 16;
constexpr int64_t kBlockQ = 64;  // attention: query rows per task
constexpr int64_t kBlockK = 64;  // attention: keys per block of the online softmax

int64_t rows_grain(int64_t cols) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(cols, 1)); }

double lane_sum(const float* x, int64_t n) {
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] += x[i + l];
  double total = 0;
  for (int l = 0; l < kLanes; ++l) total += lanes[l];
  for (; i < n; ++i) total += x[i];
  return total;
}

// sum (x - shift)^2
double lane_sum_sq_dev(const float* x, float shift, int64_t n) {
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      float d = x[i + l] - shift;
      lanes[l] += d * d;
    }
  double total = 0;
  for (int l = 0; l < kLanes; ++l) total += lanes[l];
  for (; i < n; ++i) total += double(x[i] - shift) * double(x[i] - shift);
  return total;
}

double lane_dot(const float* a, const float* b, int64_t n) {
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] += a[i + l] * b[i + l];
  double total = 0;
  for (int l = 0; l < kLanes; ++l) total += lanes[l];
  for (; i < n; ++i) total += double(a[i]) * double(b[i]);
  return total;
}

float lane_max(const float* x, int64_t n) {
  float lanes[kLanes];
  for (int l = 0; l < kLanes; ++l) lanes[l] = -std::numeric_limits<float>::infinity();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] = std::max(lanes[l], x[i + l]);
  float best = lanes[0];
  for (int l = 1; l < kLanes; ++l) best = std::max(best, lanes[l]);
  for (; i < n; ++i) best = std::max(best, x[i]);
  return best;
}
}  // namespace

// ---- cross entropy ----

void cross_entropy_forward(const float* logits, const int64_t* targets, float* loss_rows, float* lse, int64_t N,
                           int64_t C, double label_smoothing, int64_t ignore_index) {
  parallel_for(N, rows_grain(C), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const float* x = logits + n * C;  // (C)
      const float row_max = lane_max(x, C);
      float lanes_exp[kLanes] = {}, lanes_x[kLanes] = {};
      int64_t c = 0;
      for (; c + kLanes <= C; c += kLanes)
        for (int l = 0; l < kLanes; ++l) {
          lanes_exp[l] += fast::exp(x[c + l] - row_max);
          lanes_x[l] += x[c + l];
        }
      double total_exp = 0, total_x = 0;
      for (int l = 0; l < kLanes; ++l) total_exp += lanes_exp[l], total_x += lanes_x[l];
      for (; c < C; ++c) total_exp += fast::exp(x[c] - row_max), total_x += x[c];
      const double row_lse = double(row_max) + std::log(total_exp);
      lse[n] = float(row_lse);
      const int64_t t = targets[n];
      if (t == ignore_index) {
        loss_rows[n] = 0.0f;
        continue;
      }
      const double nll = row_lse - double(x[t]);
      const double smooth = row_lse - total_x / double(C);
      loss_rows[n] = float((1.0 - label_smoothing) * nll + label_smoothing * smooth);
    }
  });
}

void cross_entropy_backward(const float* logits, const int64_t* targets, const float* lse, const float* grad,
                            int64_t grad_stride, double scale, float* grad_logits, int64_t N, int64_t C,
                            double label_smoothing, int64_t ignore_index) {
  parallel_for(N, rows_grain(C), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const float* x = logits + n * C;  // (C)
      float* dx = grad_logits + n * C;  // (C)
      const int64_t t = targets[n];
      if (t == ignore_index) {
        std::fill(dx, dx + C, 0.0f);
        continue;
      }
      const float g = float(double(grad[n * grad_stride]) * scale);
      const float uniform = float(label_smoothing / double(C));
      const float row_lse = lse[n];
      for (int64_t c = 0; c < C; ++c) dx[c] = g * (fast::exp(x[c] - row_lse) - uniform);
      dx[t] -= g * float(1.0 - label_smoothing);
    }
  });
}

// ---- mse ----

void mse_elements(const float* x, const float* y, float* out, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float d = x[i] - y[i];
      out[i] = d * d;
    }
  });
}

double mse_sum(const float* x, const float* y, int64_t n) {
  const int64_t blocks = (n + kGrain - 1) / kGrain;
  std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t begin = b * kGrain, end = std::min(n, begin + kGrain);
      float lanes[kLanes] = {};
      int64_t i = begin;
      for (; i + kLanes <= end; i += kLanes)
        for (int l = 0; l < kLanes; ++l) {
          float d = x[i + l] - y[i + l];
          lanes[l] += d * d;
        }
      double total = 0;
      for (int l = 0; l < kLanes; ++l) total += lanes[l];
      for (; i < end; ++i) total += double(x[i] - y[i]) * double(x[i] - y[i]);
      partial[size_t(b)] = total;
    }
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

void mse_backward(const float* x, const float* y, const float* grad, int64_t grad_stride, double scale, float* dx,
                  float* dy, int64_t n) {
  const float two_scale = float(2.0 * scale);
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float d = two_scale * grad[i * grad_stride] * (x[i] - y[i]);
      if (dx) dx[i] = d;
      if (dy) dy[i] = -d;
    }
  });
}

// ---- layer norm ----

void layer_norm_forward(const float* x, const float* weight, const float* bias, float* y, float* mean, float* rstd,
                        int64_t M, int64_t C, double eps) {
  parallel_for(M, rows_grain(C), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      const float* xr = x + m * C;  // (C)
      float* yr = y + m * C;        // (C)
      const float mu = float(lane_sum(xr, C) / double(C));
      const float r = float(1.0 / std::sqrt(lane_sum_sq_dev(xr, mu, C) / double(C) + eps));
      mean[m] = mu;
      rstd[m] = r;
      if (weight && bias) {
        for (int64_t c = 0; c < C; ++c) yr[c] = (xr[c] - mu) * r * weight[c] + bias[c];
      } else {
        for (int64_t c = 0; c < C; ++c) yr[c] = (xr[c] - mu) * r;
        if (weight) for (int64_t c = 0; c < C; ++c) yr[c] *= weight[c];
        if (bias) for (int64_t c = 0; c < C; ++c) yr[c] += bias[c];
      }
    }
  });
}

void layer_norm_backward(const float* x, const float* weight, const float* mean, const float* rstd,
                         const float* grad, float* dx, float* dweight, float* dbias, int64_t M, int64_t C) {
  if (M == 0) {
    if (dweight) std::fill(dweight, dweight + C, 0.0f);
    if (dbias) std::fill(dbias, dbias + C, 0.0f);
    return;
  }
  // Row blocks fixed by (M, C) alone, so partial sums and their combination order never depend
  // on the thread count.
  const int64_t blocks = std::clamp<int64_t>((M * C + kGrain - 1) / kGrain, 1, std::min<int64_t>(M, 64));
  const bool need_params = dweight || dbias;
  std::vector<float> partial_dw(need_params ? static_cast<size_t>(blocks * C) : 0, 0.0f);  // (blocks, C)
  std::vector<float> partial_db(need_params ? static_cast<size_t>(blocks * C) : 0, 0.0f);  // (blocks, C)
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> xhat(static_cast<size_t>(C)), gw(static_cast<size_t>(C));  // (C) scratch
    for (int64_t b = b0; b < b1; ++b) {
      float* pdw = need_params ? partial_dw.data() + b * C : nullptr;
      float* pdb = need_params ? partial_db.data() + b * C : nullptr;
      for (int64_t m = M * b / blocks; m < M * (b + 1) / blocks; ++m) {
        const float* xr = x + m * C;     // (C)
        const float* gr = grad + m * C;  // (C)
        const float mu = mean[m], r = rstd[m];
        for (int64_t c = 0; c < C; ++c) {
          xhat[size_t(c)] = (xr[c] - mu) * r;
          gw[size_t(c)] = weight ? gr[c] * weight[c] : gr[c];
        }
        if (need_params)
          for (int64_t c = 0; c < C; ++c) {
            pdw[c] += gr[c] * xhat[size_t(c)];
            pdb[c] += gr[c];
          }
        if (!dx) continue;
        const float mean_gw = float(lane_sum(gw.data(), C) / double(C));
        const float mean_gw_xhat = float(lane_dot(gw.data(), xhat.data(), C) / double(C));
        float* dxr = dx + m * C;  // (C)
        for (int64_t c = 0; c < C; ++c) dxr[c] = r * (gw[size_t(c)] - mean_gw - xhat[size_t(c)] * mean_gw_xhat);
      }
    }
  });
  if (!need_params) return;
  std::vector<double> dw(static_cast<size_t>(C), 0.0), db(static_cast<size_t>(C), 0.0);
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t c = 0; c < C; ++c) {
      dw[size_t(c)] += partial_dw[size_t(b * C + c)];
      db[size_t(c)] += partial_db[size_t(b * C + c)];
    }
  for (int64_t c = 0; c < C; ++c) {
    if (dweight) dweight[c] = float(dw[size_t(c)]);
    if (dbias) dbias[c] = float(db[size_t(c)]);
  }
}

// ---- batch norm: x (N, C, S) ----

namespace {
// For channels [c0, c1): out[c - c0] = sum over (n, s) of f(row of S values of channel c).
template <class RowSum>
void channel_sums(int64_t N, int64_t C, int64_t S, int64_t c0, int64_t c1, double* out, RowSum&& row_sum) {
  std::fill(out, out + (c1 - c0), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = c0; c < c1; ++c) out[c - c0] += row_sum(c, (n * C + c) * S);
}
}  // namespace

void batch_norm_stats(const float* x, float* mean, float* var, int64_t N, int64_t C, int64_t S) {
  const double count = double(N * S);
  parallel_for(C, rows_grain(N * S), [&](int64_t c0, int64_t c1) {
    std::vector<double> totals(static_cast<size_t>(c1 - c0));
    channel_sums(N, C, S, c0, c1, totals.data(), [&](int64_t, int64_t at) { return lane_sum(x + at, S); });
    for (int64_t c = c0; c < c1; ++c) mean[c] = float(totals[size_t(c - c0)] / count);
    channel_sums(N, C, S, c0, c1, totals.data(),
                 [&](int64_t c, int64_t at) { return lane_sum_sq_dev(x + at, mean[c], S); });
    for (int64_t c = c0; c < c1; ++c) var[c] = float(totals[size_t(c - c0)] / count);
  });
}

void batch_norm_forward(const float* x, const float* mean, const float* rstd, const float* weight, const float* bias,
                        float* y, int64_t N, int64_t C, int64_t S, bool relu) {
  std::vector<float> scale(static_cast<size_t>(C)), shift(static_cast<size_t>(C));  // y = x * scale + shift per channel
  for (int64_t c = 0; c < C; ++c) {
    scale[size_t(c)] = rstd[c] * (weight ? weight[c] : 1.0f);
    shift[size_t(c)] = (bias ? bias[c] : 0.0f) - mean[c] * scale[size_t(c)];
  }
  parallel_for(N * C, rows_grain(S), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t c = row % C;
      const float a = scale[size_t(c)], b = shift[size_t(c)];
      const float* xr = x + row * S;
      float* yr = y + row * S;
      if (relu) {
        for (int64_t s = 0; s < S; ++s) {
          const float v = xr[s] * a + b;
          yr[s] = v < 0.0f ? 0.0f : v;  // as relu: NaN stays NaN
        }
      } else {
        for (int64_t s = 0; s < S; ++s) yr[s] = xr[s] * a + b;
      }
    }
  });
}

namespace {
// The gradient reaching batch norm: grad itself, or with a fused relu grad where the relu's output
// is positive (relu's own backward rule, so the fused op equals batch_norm then relu bit for bit).
template <bool Masked>
inline float bn_grad(const float* grad, const float* relu_out, int64_t i) {
  const float g = grad[i];  // read unconditionally, so the masked loops vectorize as blends
  if constexpr (Masked) return relu_out[i] > 0.0f ? g : 0.0f;
  else return g;
}

template <bool Masked>
void batch_norm_backward_impl(const float* x, const float* mean, const float* rstd, const float* weight,
                              const float* grad, const float* relu_out, float* dx, float* dweight, float* dbias,
                              int64_t N, int64_t C, int64_t S, bool training) {
  const double count = double(N * S);
  std::vector<double> total_g(static_cast<size_t>(C)), total_g_xhat(static_cast<size_t>(C));  // (C)
  parallel_for(C, rows_grain(N * S), [&](int64_t c0, int64_t c1) {
    // Both sums in one pass over each row, each with lane_sum's 16 lanes (the plain sum of g, and
    // g * (x - mean) in the direct form, which keeps precision), g masked on the fly.
    for (int64_t c = c0; c < c1; ++c) total_g[size_t(c)] = total_g_xhat[size_t(c)] = 0.0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t at = (n * C + c) * S;
        const float mu = mean[c];
        float lanes_g[kLanes] = {}, lanes_gx[kLanes] = {};
        int64_t s = 0;
        for (; s + kLanes <= S; s += kLanes)
          for (int l = 0; l < kLanes; ++l) {
            const float g = bn_grad<Masked>(grad, relu_out, at + s + l);
            lanes_g[l] += g;
            lanes_gx[l] += g * (x[at + s + l] - mu);
          }
        double row_g = 0, row_gx = 0;
        for (int l = 0; l < kLanes; ++l) row_g += lanes_g[l];
        for (int l = 0; l < kLanes; ++l) row_gx += lanes_gx[l];
        for (; s < S; ++s) {
          const float g = bn_grad<Masked>(grad, relu_out, at + s);
          row_g += g;
          row_gx += double(g) * double(x[at + s] - mu);
        }
        total_g[size_t(c)] += row_g;
        total_g_xhat[size_t(c)] += row_gx * double(rstd[c]);
      }
  });
  for (int64_t c = 0; c < C; ++c) {
    if (dweight) dweight[c] = float(total_g_xhat[size_t(c)]);
    if (dbias) dbias[c] = float(total_g[size_t(c)]);
  }
  if (!dx) return;
  parallel_for(N * C, rows_grain(S), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t c = row % C;
      const float r = rstd[c], mu = mean[c];
      const float coef = r * (weight ? weight[c] : 1.0f);
      const float* xr = x + row * S;
      const float* gr = grad + row * S;
      const float* yr = Masked ? relu_out + row * S : nullptr;
      float* dxr = dx + row * S;
      if (training) {
        const float mean_g = float(total_g[size_t(c)] / count);
        const float mean_g_xhat = float(total_g_xhat[size_t(c)] / count);
        for (int64_t s = 0; s < S; ++s)
          dxr[s] = coef * (bn_grad<Masked>(gr, yr, s) - mean_g - (xr[s] - mu) * r * mean_g_xhat);
      } else {
        for (int64_t s = 0; s < S; ++s) dxr[s] = coef * bn_grad<Masked>(gr, yr, s);
      }
    }
  });
}
}  // namespace

void batch_norm_backward(const float* x, const float* mean, const float* rstd, const float* weight,
                         const float* grad, float* dx, float* dweight, float* dbias, int64_t N, int64_t C, int64_t S,
                         bool training, const float* relu_out) {
  if (relu_out)
    batch_norm_backward_impl<true>(x, mean, rstd, weight, grad, relu_out, dx, dweight, dbias, N, C, S, training);
  else
    batch_norm_backward_impl<false>(x, mean, rstd, weight, grad, nullptr, dx, dweight, dbias, N, C, S, training);
}

// ---- batch norm, channels-last: x viewed as (M, C), M = N * H * W ----

namespace {
constexpr int64_t kBlockRows = 128;  // rows per f32 partial sum

// K per-channel sums over the rows of an (M, C) array into out (K, C): fixed blocks of kBlockRows
// rows sum in f32 (block(m0, m1, acc) adds rows [m0, m1) into acc (K, C), one row after the other),
// blocks combine in double in block order, so the result does not depend on the thread count.
template <int K, class Block>
void column_sums(int64_t M, int64_t C, double* out, Block&& block) {
  const int64_t blocks = (M + kBlockRows - 1) / kBlockRows;
  std::vector<double> partial(static_cast<size_t>(blocks * K * C));
  parallel_for(blocks, std::max<int64_t>(1, kGrain / std::max<int64_t>(kBlockRows * C, 1)), [&](int64_t b0, int64_t b1) {
    std::vector<float> acc(static_cast<size_t>(K * C));
    for (int64_t b = b0; b < b1; ++b) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      block(b * kBlockRows, std::min(M, (b + 1) * kBlockRows), acc.data());
      std::copy(acc.begin(), acc.end(), partial.begin() + b * K * C);
    }
  });
  std::fill(out, out + K * C, 0.0);
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t i = 0; i < K * C; ++i) out[i] += partial[static_cast<size_t>(b * K * C + i)];
}

// Calls f(std::integral_constant<int64_t, CT>) with CT = C for the usual channel counts, so the
// per-row loops over channels compile to a fixed run of vector operations (C = 32 is two
// registers: a run-time count costs more in loop setup than in arithmetic), and CT = 0 (use the
// run-time C) for the others. The arithmetic is the same either way.
template <class F>
void with_channels(int64_t C, F&& f) {
  switch (C) {
    case 16: return f(std::integral_constant<int64_t, 16>{});
    case 32: return f(std::integral_constant<int64_t, 32>{});
    case 64: return f(std::integral_constant<int64_t, 64>{});
    case 128: return f(std::integral_constant<int64_t, 128>{});
    case 256: return f(std::integral_constant<int64_t, 256>{});
    default: return f(std::integral_constant<int64_t, 0>{});
  }
}

// This thread's scratch row of C floats (the gradient reaching batch norm at one row).
float* row_scratch(int64_t C) {
  thread_local std::vector<float> row;
  if (int64_t(row.size()) < C) row.resize(size_t(C));
  return row.data();
}

// A stored activation as f32: bf16 widens exactly.
inline float widen(float v) { return v; }
inline float widen(bf16_t v) { return bf16_to_float(v); }

template <int64_t CT, class T>
void batch_norm_stats_rows(const T* x, float* mean, float* var, int64_t M, int64_t channels) {
  const int64_t C = CT > 0 ? CT : channels;
  std::vector<double> totals(static_cast<size_t>(C));
  column_sums<1>(M, C, totals.data(), [&](int64_t m0, int64_t m1, float* __restrict acc) {
    for (int64_t m = m0; m < m1; ++m) {
      const T* __restrict xr = x + m * C;
      for (int64_t c = 0; c < C; ++c) acc[c] += widen(xr[c]);
    }
  });
  for (int64_t c = 0; c < C; ++c) mean[c] = float(totals[size_t(c)] / double(M));
  const float* __restrict mu = mean;
  column_sums<1>(M, C, totals.data(), [&](int64_t m0, int64_t m1, float* __restrict acc) {
    for (int64_t m = m0; m < m1; ++m) {
      const T* __restrict xr = x + m * C;
      for (int64_t c = 0; c < C; ++c) {
        const float d = widen(xr[c]) - mu[c];
        acc[c] += d * d;
      }
    }
  });
  for (int64_t c = 0; c < C; ++c) var[c] = float(totals[size_t(c)] / double(M));
}
}  // namespace

void batch_norm_stats_nhwc(const float* x, float* mean, float* var, int64_t M, int64_t C) {
  with_channels(C, [&](auto ct) { batch_norm_stats_rows<decltype(ct)::value>(x, mean, var, M, C); });
}
void batch_norm_stats_nhwc(const bf16_t* x, float* mean, float* var, int64_t M, int64_t C) {
  with_channels(C, [&](auto ct) { batch_norm_stats_rows<decltype(ct)::value>(x, mean, var, M, C); });
}

namespace {
#if FRUGAL_NN_AVX512
constexpr bool kAvx512 = true;
inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load16(const bf16_t* p) { return widen_bf16x16(p); }
inline void store16(float* p, __m512 v) { _mm512_storeu_ps(p, v); }
inline void store16(bf16_t* p, __m512 v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), round_to_bf16x16(v)); }
#else
constexpr bool kAvx512 = false;
#endif
// Whole registers per row: the row helpers below take their AVX-512 form.
template <int64_t CT>
constexpr bool kVectorRow = kAvx512 && CT > 0 && CT % 16 == 0;

// y = x * scale + shift per channel, then max(y, 0) with relu's NaN rule: one row of C channels.
// The plain and the pooled kernels both call it (or bn16, its AVX-512 form, which it uses for
// whole registers), so their values agree bit for bit.
template <int64_t CT, class T>
inline void bn_row(const T* __restrict x, const float* __restrict a, const float* __restrict b, float* __restrict y,
                   int64_t C, bool relu) {
#if FRUGAL_NN_AVX512
  if constexpr (kVectorRow<CT>) {
    for (int64_t c = 0; c < CT; c += 16)
      _mm512_storeu_ps(y + c, bn16(load16(x + c), _mm512_loadu_ps(a + c), _mm512_loadu_ps(b + c), relu));
    return;
  }
#endif
  if (relu) {
    for (int64_t c = 0; c < C; ++c) {
      const float v = widen(x[c]) * a[c] + b[c];
      y[c] = v < 0.0f ? 0.0f : v;
    }
  } else {
    for (int64_t c = 0; c < C; ++c) y[c] = widen(x[c]) * a[c] + b[c];
  }
}

inline float narrow_to(float v, float*) { return v; }
inline bf16_t narrow_to(float v, bf16_t*) { return float_to_bf16(v); }

// The gradient reaching batch norm, row after row of (M, C): seek(m), then fill(g) (the row's C
// values) or, on AVX-512 builds, g16(c) (16 of them from channel c), and next() to the
// following row. The plain, ReLU and pooling variants of the backward differ only here.
struct PlainGrad {  // grad itself, or masked by relu's rule on its output relu_out (may be null)
  const float* grad;
  const float* relu_out;
  int64_t C;
  int64_t m = 0;
  void seek(int64_t row) { m = row; }
  void next() { ++m; }
  void fill(float* __restrict g) const {
    const float* __restrict gr = grad + m * C;
    const float* __restrict yr = relu_out ? relu_out + m * C : nullptr;
    for (int64_t c = 0; c < C; ++c) g[c] = !yr || yr[c] > 0.0f ? gr[c] : 0.0f;
  }
#if FRUGAL_NN_AVX512
  __m512 g16(int64_t c) const {
    const __m512 gv = _mm512_loadu_ps(grad + m * C + c);
    if (!relu_out) return gv;
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_loadu_ps(relu_out + m * C + c), _mm512_setzero_ps(), _CMP_GT_OQ),
                               gv);
  }
#endif
};

// After 2x2 max pooling of the rectified output: at pixel (n, h, w) the pooled gradient where
// this pixel won its window and the window's maximum y is positive, else 0 (a dropped odd row or
// column gets 0): max pooling's backward, then relu's rule, exactly as the three ops give it.
struct PoolGrad {
  const float* grad_y;
  const float* y;
  const uint8_t* where;
  int64_t H, W, C;
  int64_t n = 0, h = 0, w = 0;
  int64_t at = -1;  // the row's window in the pooled arrays, -1 if dropped
  uint8_t pos = 0;  // the pixel's place in its window, as `where` records winners
  void seek(int64_t m) {
    w = m % W, h = (m / W) % H, n = m / (W * H);
    place();
  }
  void next() {
    if (++w == W) {
      w = 0;
      if (++h == H) h = 0, ++n;
    }
    place();
  }
  void place() {
    const int64_t OH = H / 2, OW = W / 2, i = h / 2, j = w / 2;
    at = i < OH && j < OW ? ((n * OH + i) * OW + j) * C : -1;
    pos = uint8_t((h % 2) * 2 + (w % 2));
  }
  void fill(float* __restrict g) const {
    if (at < 0) return std::fill(g, g + C, 0.0f);
    for (int64_t c = 0; c < C; ++c) {
      const float gc = where[at + c] == pos ? grad_y[at + c] : 0.0f;
      g[c] = y[at + c] > 0.0f ? gc : 0.0f;
    }
  }
#if FRUGAL_NN_AVX512
  __m512 g16(int64_t c) const {
    if (at < 0) return _mm512_setzero_ps();
    const __m128i winners = _mm_loadu_si128(reinterpret_cast<const __m128i*>(where + at + c));
    const __mmask16 won = _mm_cmpeq_epi8_mask(winners, _mm_set1_epi8(char(pos)));
    const __mmask16 positive = _mm512_cmp_ps_mask(_mm512_loadu_ps(y + at + c), _mm512_setzero_ps(), _CMP_GT_OQ);
    return _mm512_maskz_mov_ps(won & positive, _mm512_loadu_ps(grad_y + at + c));
  }
#endif
};

// Batch norm backward over the rows of (M, C), the gradient reaching it from `grad` (PlainGrad or
// PoolGrad). Pass 1 sums g and g * (x - mean) per channel in fixed row blocks (column_sums), pass
// 2 writes dx = k (g - mean(g) - (x - mean) mean(g xhat) rstd). With whole registers per row
// (C a multiple of 16 known at compile time) the block's sums stay in registers and g is never
// stored; otherwise rows go through a scratch row. The variants share this code, so their sums
// and values agree bit for bit.
// T: x's stored type; D: dx's (bf16 dx is the f32 result rounded, as f32_to_bf16 rounds it).
template <int64_t CT, class T, class D, class Grad>
void batch_norm_backward_rows(const T* x, const float* mean, const float* rstd, const float* weight, const Grad& grad,
                              D* dx, float* dweight, float* dbias, int64_t M, int64_t channels, bool training) {
  const int64_t C = CT > 0 ? CT : channels;
  std::vector<double> totals(static_cast<size_t>(2 * C));  // sum g, then sum g * (x - mean)
  const float* mu = mean;
  column_sums<2>(M, C, totals.data(), [&](int64_t m0, int64_t m1, float* acc) {
    Grad g = grad;
    g.seek(m0);
#if FRUGAL_NN_AVX512
    if constexpr (kVectorRow<CT>) {
      constexpr int64_t V = CT / 16;
      __m512 sum_g[V], sum_gx[V], mu_v[V];
      for (int64_t v = 0; v < V; ++v) {
        sum_g[v] = _mm512_loadu_ps(acc + 16 * v), sum_gx[v] = _mm512_loadu_ps(acc + CT + 16 * v);
        mu_v[v] = _mm512_loadu_ps(mu + 16 * v);
      }
      for (int64_t m = m0; m < m1; ++m, g.next())
        for (int64_t v = 0; v < V; ++v) {
          const __m512 gv = g.g16(16 * v);
          sum_g[v] = _mm512_add_ps(sum_g[v], gv);
          sum_gx[v] = _mm512_fmadd_ps(gv, _mm512_sub_ps(load16(x + m * CT + 16 * v), mu_v[v]), sum_gx[v]);
        }
      for (int64_t v = 0; v < V; ++v) {
        _mm512_storeu_ps(acc + 16 * v, sum_g[v]);
        _mm512_storeu_ps(acc + CT + 16 * v, sum_gx[v]);
      }
      return;
    }
#endif
    float* __restrict row = row_scratch(C);
    for (int64_t m = m0; m < m1; ++m, g.next()) {
      g.fill(row);
      const T* __restrict xr = x + m * C;
      for (int64_t c = 0; c < C; ++c) {
        acc[c] += row[c];
        acc[C + c] += row[c] * (widen(xr[c]) - mu[c]);
      }
    }
  });
  std::vector<float> coef(static_cast<size_t>(C)), mean_g(static_cast<size_t>(C)), mean_gx(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    const double g_xhat = totals[size_t(C + c)] * double(rstd[c]);
    if (dweight) dweight[c] = float(g_xhat);
    if (dbias) dbias[c] = float(totals[size_t(c)]);
    coef[size_t(c)] = rstd[c] * (weight ? weight[c] : 1.0f);
    mean_g[size_t(c)] = training ? float(totals[size_t(c)] / double(M)) : 0.0f;
    // (x - mean) * rstd * mean(g * xhat), folded per channel
    mean_gx[size_t(c)] = training ? float(g_xhat / double(M)) * rstd[c] : 0.0f;
  }
  if (!dx) return;
  const float* k = coef.data();
  const float* mg = mean_g.data();
  const float* mgx = mean_gx.data();
  parallel_for(M, rows_grain(C), [&](int64_t m0, int64_t m1) {
    Grad g = grad;
    g.seek(m0);
#if FRUGAL_NN_AVX512
    if constexpr (kVectorRow<CT>) {
      constexpr int64_t V = CT / 16;
      __m512 k_v[V], mg_v[V], mu_v[V], mgx_v[V];
      for (int64_t v = 0; v < V; ++v) {
        k_v[v] = _mm512_loadu_ps(k + 16 * v), mg_v[v] = _mm512_loadu_ps(mg + 16 * v);
        mu_v[v] = _mm512_loadu_ps(mu + 16 * v), mgx_v[v] = _mm512_loadu_ps(mgx + 16 * v);
      }
      for (int64_t m = m0; m < m1; ++m, g.next())
        for (int64_t v = 0; v < V; ++v) {
          const __m512 d = _mm512_sub_ps(load16(x + m * CT + 16 * v), mu_v[v]);
          const __m512 centered = _mm512_sub_ps(g.g16(16 * v), mg_v[v]);
          store16(dx + m * CT + 16 * v, _mm512_mul_ps(k_v[v], _mm512_fnmadd_ps(d, mgx_v[v], centered)));
        }
      return;
    }
#endif
    float* __restrict row = row_scratch(C);
    for (int64_t m = m0; m < m1; ++m, g.next()) {
      g.fill(row);
      const T* __restrict xr = x + m * C;
      D* __restrict dxr = dx + m * C;
      for (int64_t c = 0; c < C; ++c) dxr[c] = narrow_to(k[c] * (row[c] - mg[c] - (widen(xr[c]) - mu[c]) * mgx[c]), dxr);
    }
  });
}
}  // namespace

void batch_norm_forward_nhwc(const float* x, const float* mean, const float* rstd, const float* weight,
                             const float* bias, float* y, int64_t M, int64_t channels, bool relu) {
  const std::vector<float> ab = bn_affine(mean, rstd, weight, bias, channels);
  with_channels(channels, [&](auto ct) {
    const int64_t C = decltype(ct)::value > 0 ? decltype(ct)::value : channels;
    parallel_for(M, rows_grain(C), [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; ++m) bn_row<decltype(ct)::value>(x + m * C, ab.data(), ab.data() + C, y + m * C, C, relu);
    });
  });
}

void batch_norm_backward_nhwc(const float* x, const float* mean, const float* rstd, const float* weight,
                              const float* grad, float* dx, float* dweight, float* dbias, int64_t M, int64_t channels,
                              bool training, const float* relu_out) {
  with_channels(channels, [&](auto ct) {
    constexpr int64_t CT = decltype(ct)::value;
    const int64_t C = CT > 0 ? CT : channels;
    batch_norm_backward_rows<CT>(x, mean, rstd, weight, PlainGrad{grad, relu_out, C}, dx, dweight, dbias, M, C,
                                 training);
  });
}

namespace {
template <int64_t CT, class T>
void bn_relu_pool_forward_rows(const T* x, const float* mean, const float* rstd, const float* weight,
                               const float* bias, float* y, uint8_t* where, int64_t N, int64_t H, int64_t W,
                               int64_t channels) {
  const int64_t C = CT > 0 ? CT : channels;
  const std::vector<float> ab = bn_affine(mean, rstd, weight, bias, C);
  const float* a = ab.data();
  const float* b = ab.data() + C;
  const int64_t OH = H / 2, OW = W / 2;
  parallel_for(N * OH, std::max<int64_t>(1, kGrain / std::max<int64_t>(2 * W * C, 1)), [&](int64_t r0, int64_t r1) {
#if FRUGAL_NN_AVX512
    if constexpr (kVectorRow<CT>) {  // the window's four pixels in registers, 16 channels at a time
      for (int64_t row = r0; row < r1; ++row) {  // (image, output row)
        const int64_t n = row / OH, i = row % OH;
        for (int64_t j = 0; j < OW; ++j) {
          const T* x00 = x + ((n * H + 2 * i) * W + 2 * j) * CT;
          const T* x10 = x00 + W * CT;
          const int64_t out = (row * OW + j) * CT;
          for (int64_t c = 0; c < CT; c += 16) {
            const __m512 av = _mm512_loadu_ps(a + c), bv = _mm512_loadu_ps(b + c);
            max_pool_window16(bn16(load16(x00 + c), av, bv, true), bn16(load16(x00 + CT + c), av, bv, true),
                              bn16(load16(x10 + c), av, bv, true), bn16(load16(x10 + CT + c), av, bv, true),
                              y + out + c, where + out + c, __mmask16(0xFFFF));
          }
        }
      }
      return;
    }
#endif
    std::vector<float> pixels(static_cast<size_t>(4 * C));  // the window's four normalized, rectified pixels
    float* v[4] = {pixels.data(), pixels.data() + C, pixels.data() + 2 * C, pixels.data() + 3 * C};
    for (int64_t row = r0; row < r1; ++row) {  // (image, output row)
      const int64_t n = row / OH, i = row % OH;
      for (int64_t j = 0; j < OW; ++j) {
        const T* x00 = x + ((n * H + 2 * i) * W + 2 * j) * C;
        const T* at[4] = {x00, x00 + C, x00 + W * C, x00 + W * C + C};
        for (int p = 0; p < 4; ++p) bn_row<CT>(at[p], a, b, v[p], C, true);
        max_pool_window_row(v[0], v[1], v[2], v[3], y + (row * OW + j) * C, where + (row * OW + j) * C, C);
      }
    }
  });
}
}  // namespace

void batch_norm_relu_pool_forward_nhwc(const float* x, const float* mean, const float* rstd, const float* weight,
                                       const float* bias, float* y, uint8_t* where, int64_t N, int64_t H, int64_t W,
                                       int64_t C) {
  with_channels(C, [&](auto ct) {
    bn_relu_pool_forward_rows<decltype(ct)::value>(x, mean, rstd, weight, bias, y, where, N, H, W, C);
  });
}
void batch_norm_relu_pool_forward_nhwc(const bf16_t* x, const float* mean, const float* rstd, const float* weight,
                                       const float* bias, float* y, uint8_t* where, int64_t N, int64_t H, int64_t W,
                                       int64_t C) {
  with_channels(C, [&](auto ct) {
    bn_relu_pool_forward_rows<decltype(ct)::value>(x, mean, rstd, weight, bias, y, where, N, H, W, C);
  });
}

namespace {
template <int64_t CT, class T, class D>
void bn_relu_pool_backward_rows(const T* x, const float* mean, const float* rstd, const float* weight,
                                const float* y, const uint8_t* where, const float* grad_y, D* dx, float* dweight,
                                float* dbias, int64_t N, int64_t H, int64_t W, int64_t channels, bool training) {
  const int64_t C = CT > 0 ? CT : channels;
  batch_norm_backward_rows<CT>(x, mean, rstd, weight, PoolGrad{grad_y, y, where, H, W, C}, dx, dweight, dbias,
                               N * H * W, C, training);
}
}  // namespace

void batch_norm_relu_pool_backward_nhwc(const float* x, const float* mean, const float* rstd, const float* weight,
                                        const float* y, const uint8_t* where, const float* grad_y, float* dx,
                                        float* dweight, float* dbias, int64_t N, int64_t H, int64_t W, int64_t C,
                                        bool training) {
  with_channels(C, [&](auto ct) {
    bn_relu_pool_backward_rows<decltype(ct)::value>(x, mean, rstd, weight, y, where, grad_y, dx, dweight, dbias, N, H,
                                                    W, C, training);
  });
}
void batch_norm_relu_pool_backward_nhwc(const bf16_t* x, const float* mean, const float* rstd, const float* weight,
                                        const float* y, const uint8_t* where, const float* grad_y, bf16_t* dx,
                                        float* dweight, float* dbias, int64_t N, int64_t H, int64_t W, int64_t C,
                                        bool training) {
  with_channels(C, [&](auto ct) {
    bn_relu_pool_backward_rows<decltype(ct)::value>(x, mean, rstd, weight, y, where, grad_y, dx, dweight, dbias, N, H,
                                                    W, C, training);
  });
}

// ---- attention ----
// Blocks of kBlockK keys against groups of kRows query rows: register-sized tiles (kRows x 64
// accumulators) so the inner loops are FMAs on values already loaded, not loads and stores.

namespace {
constexpr int kRows = 4;  // query rows per micro-tile

// kt (D, kBlockK) = rows [j0, j0 + cols) of src (Tk, D), transposed and zero-padded to kBlockK
// columns, so a query row times the block is a fixed-length loop over contiguous keys.
void pack_transposed(const float* src, int64_t j0, int64_t cols, int64_t D, float* kt) {
  for (int64_t d = 0; d < D; ++d) {
    float* dst = kt + d * kBlockK;
    for (int64_t jj = 0; jj < cols; ++jj) dst[jj] = src[(j0 + jj) * D + d];
    for (int64_t jj = cols; jj < kBlockK; ++jj) dst[jj] = 0.0f;
  }
}

// out[r][jj] = scale * sum_d rows[r][d] * kt[d][jj] for R rows and all kBlockK columns.
template <int R>
void rows_times_block(const float* const* rows, float scale, const float* kt, int64_t D, float* out) {
  float acc[R][kBlockK] = {};
  for (int64_t d = 0; d < D; ++d) {
    const float* kd = kt + d * kBlockK;
    for (int r = 0; r < R; ++r) {
      const float a = rows[r][d];
      for (int64_t jj = 0; jj < kBlockK; ++jj) acc[r][jj] += a * kd[jj];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int64_t jj = 0; jj < kBlockK; ++jj) out[r * kBlockK + jj] = acc[r][jj] * scale;
}

// out_rows[r][d] += sum_{jj < cols} weights[r][jj] * src[jj][d], src (cols, D) row-major; the
// D axis in chunks of W (a multiple of 16 dividing D) held in registers across the jj loop.
template <int R, int W>
void accumulate_rows_chunked(float* const* out_rows, const float* weights, const float* src, int64_t cols,
                             int64_t D) {
  for (int64_t d0 = 0; d0 < D; d0 += W) {
    float acc[R][W];
    for (int r = 0; r < R; ++r)
      for (int w = 0; w < W; ++w) acc[r][w] = out_rows[r][d0 + w];
    for (int64_t jj = 0; jj < cols; ++jj) {
      const float* s = src + jj * D + d0;
      for (int r = 0; r < R; ++r) {
        const float p = weights[r * kBlockK + jj];
        for (int w = 0; w < W; ++w) acc[r][w] += p * s[w];
      }
    }
    for (int r = 0; r < R; ++r)
      for (int w = 0; w < W; ++w) out_rows[r][d0 + w] = acc[r][w];
  }
}

template <int R>
void accumulate_rows(float* const* out_rows, const float* weights, const float* src, int64_t cols, int64_t D) {
  if (D % 64 == 0) return accumulate_rows_chunked<R, 64>(out_rows, weights, src, cols, D);
  if (D % 32 == 0) return accumulate_rows_chunked<R, 32>(out_rows, weights, src, cols, D);
  if (D % 16 == 0) return accumulate_rows_chunked<R, 16>(out_rows, weights, src, cols, D);
  for (int64_t jj = 0; jj < cols; ++jj)
    for (int r = 0; r < R; ++r) {
      const float p = weights[r * kBlockK + jj];
      for (int64_t d = 0; d < D; ++d) out_rows[r][d] += p * src[jj * D + d];
    }
}

// out[jj][d] += sum_r weights[r][jj] * rows[r][d] for jj < cols: the transposed product that
// gives dk and dv, one output row loaded and stored once per group of R query rows.
template <int R>
void accumulate_transposed(float* out, const float* weights, const float* const* rows, int64_t cols, int64_t D) {
  for (int64_t jj = 0; jj < cols; ++jj) {
    float w[R];
    for (int r = 0; r < R; ++r) w[r] = weights[r * kBlockK + jj];
    float* o = out + jj * D;
    for (int64_t d = 0; d < D; ++d) {
      float total = o[d];
      for (int r = 0; r < R; ++r) total += w[r] * rows[r][d];
      o[d] = total;
    }
  }
}

// Keys of the block starting at j0 (with `cols` keys) that query row i may see.
int64_t visible_keys(bool causal, int64_t i, int64_t j0, int64_t cols) {
  return causal ? std::clamp<int64_t>(i - j0 + 1, 0, cols) : cols;
}

struct AttentionShape {
  int64_t Tq, Tk, D;
  bool causal;
  float scale;
};

// Forward of one group of R query rows [i, i + R) against one packed key block: online softmax
// update of row_max, row_sum and the unnormalized output rows acc (R, D).
template <int R>
void forward_rows(const AttentionShape& s, const float* qb, const float* vb, int64_t i, int64_t j0, int64_t cols,
                  const float* kt, float* probs, float* row_max, float* row_sum, float* acc) {
  const float* q_rows[R];
  float* acc_rows[R];
  for (int r = 0; r < R; ++r) q_rows[r] = qb + (i + r) * s.D, acc_rows[r] = acc + r * s.D;
  rows_times_block<R>(q_rows, s.scale, kt, s.D, probs);
  int64_t widest = 0;
  for (int r = 0; r < R; ++r) {
    float* p = probs + r * kBlockK;  // (Bk)
    const int64_t visible = visible_keys(s.causal, i + r, j0, cols);
    widest = std::max(widest, visible);
    if (visible == 0) {
      std::fill(p, p + kBlockK, 0.0f);
      continue;
    }
    const float new_max = std::max(row_max[r], lane_max(p, visible));
    const float correction = fast::exp(row_max[r] - new_max);  // 0 on the first block
    for (int64_t jj = 0; jj < visible; ++jj) p[jj] = fast::exp(p[jj] - new_max);
    for (int64_t jj = visible; jj < kBlockK; ++jj) p[jj] = 0.0f;
    row_sum[r] = row_sum[r] * correction + float(lane_sum(p, visible));
    row_max[r] = new_max;
    if (correction != 1.0f)
      for (int64_t d = 0; d < s.D; ++d) acc_rows[r][d] *= correction;
  }
  accumulate_rows<R>(acc_rows, probs, vb + j0 * s.D, widest, s.D);
}

// Backward pieces for R query rows against one packed key block: probabilities p (R, Bk) from
// the saved lse, and ds = p * (dp - delta) * scale, both zero on hidden keys. Returns the widest
// visible key count of the group.
template <int R>
int64_t backward_rows(const AttentionShape& s, const float* qb, const float* gb, const float* lse_b,
                      const float* delta_b, int64_t i, int64_t j0, int64_t cols, const float* kt, const float* vt,
                      float* p, float* ds) {
  const float* q_rows[R];
  const float* g_rows[R];
  for (int r = 0; r < R; ++r) q_rows[r] = qb + (i + r) * s.D, g_rows[r] = gb + (i + r) * s.D;
  rows_times_block<R>(q_rows, s.scale, kt, s.D, p);
  rows_times_block<R>(g_rows, 1.0f, vt, s.D, ds);  // dP = dO v^T
  int64_t widest = 0;
  for (int r = 0; r < R; ++r) {
    float* pr = p + r * kBlockK;
    float* dsr = ds + r * kBlockK;
    const int64_t visible = visible_keys(s.causal, i + r, j0, cols);
    widest = std::max(widest, visible);
    const float row_lse = lse_b[i + r], row_delta = delta_b[i + r];
    for (int64_t jj = 0; jj < visible; ++jj) pr[jj] = fast::exp(pr[jj] - row_lse);
    for (int64_t jj = 0; jj < visible; ++jj) dsr[jj] = pr[jj] * (dsr[jj] - row_delta) * s.scale;
    for (int64_t jj = visible; jj < kBlockK; ++jj) pr[jj] = 0.0f, dsr[jj] = 0.0f;
  }
  return widest;
}
}  // namespace

void attention_forward(const float* q, const float* k, const float* v, float* out, float* lse, int64_t BH,
                       int64_t Tq, int64_t Tk, int64_t D, bool causal) {
  const AttentionShape shape{Tq, Tk, D, causal, float(1.0 / std::sqrt(double(D)))};
  const int64_t query_blocks = (Tq + kBlockQ - 1) / kBlockQ;
  parallel_for(BH * query_blocks, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> kt(static_cast<size_t>(D * kBlockK));        // (D, Bk) key block, transposed
    std::vector<float> probs(static_cast<size_t>(kRows * kBlockK));  // (R, Bk) scores, then weights
    std::vector<float> acc(static_cast<size_t>(kBlockQ * D));        // (Bq, D) unnormalized output
    std::vector<float> row_max(static_cast<size_t>(kBlockQ)), row_sum(static_cast<size_t>(kBlockQ));  // (Bq)
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t bh = task / query_blocks, i0 = (task % query_blocks) * kBlockQ;
      const int64_t i1 = std::min(Tq, i0 + kBlockQ);
      const float* qb = q + bh * Tq * D;  // (Tq, D)
      const float* kb = k + bh * Tk * D;  // (Tk, D)
      const float* vb = v + bh * Tk * D;  // (Tk, D)
      std::fill(acc.begin(), acc.end(), 0.0f);
      std::fill(row_max.begin(), row_max.end(), -std::numeric_limits<float>::infinity());
      std::fill(row_sum.begin(), row_sum.end(), 0.0f);
      const int64_t key_end = causal ? std::min(Tk, i1) : Tk;  // blocks past the diagonal are skipped
      for (int64_t j0 = 0; j0 < key_end; j0 += kBlockK) {
        const int64_t cols = std::min(kBlockK, key_end - j0);
        pack_transposed(kb, j0, cols, D, kt.data());
        int64_t i = i0;
        for (; i + kRows <= i1; i += kRows)
          forward_rows<kRows>(shape, qb, vb, i, j0, cols, kt.data(), probs.data(), &row_max[size_t(i - i0)],
                              &row_sum[size_t(i - i0)], &acc[size_t((i - i0) * D)]);
        for (; i < i1; ++i)
          forward_rows<1>(shape, qb, vb, i, j0, cols, kt.data(), probs.data(), &row_max[size_t(i - i0)],
                          &row_sum[size_t(i - i0)], &acc[size_t((i - i0) * D)]);
      }
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t r = i - i0;
        const float inv = 1.0f / row_sum[size_t(r)];
        float* out_row = out + (bh * Tq + i) * D;
        for (int64_t d = 0; d < D; ++d) out_row[d] = acc[size_t(r * D + d)] * inv;
        lse[bh * Tq + i] = row_max[size_t(r)] + std::log(row_sum[size_t(r)]);
      }
    }
  });
}

void attention_backward(const float* q, const float* k, const float* v, const float* out, const float* lse,
                        const float* grad, float* dq, float* dk, float* dv, int64_t BH, int64_t Tq, int64_t Tk,
                        int64_t D, bool causal) {
  const AttentionShape shape{Tq, Tk, D, causal, float(1.0 / std::sqrt(double(D)))};
  // delta[i] = rowsum(dO * O) = sum_j P_ij dP_ij, the softmax backward's per-row correction.
  std::vector<float> delta(static_cast<size_t>(BH * Tq));  // (BH, Tq)
  parallel_for(BH * Tq, rows_grain(D), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) delta[size_t(row)] = float(lane_dot(grad + row * D, out + row * D, D));
  });

  // Pass 1: each task owns one key block and accumulates its dk, dv over every query row.
  const int64_t key_blocks = (Tk + kBlockK - 1) / kBlockK;
  parallel_for(BH * key_blocks, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> kt(static_cast<size_t>(D * kBlockK)), vt(static_cast<size_t>(D * kBlockK));  // (D, Bk)
    std::vector<float> p(static_cast<size_t>(kRows * kBlockK)), ds(static_cast<size_t>(kRows * kBlockK));  // (R, Bk)
    std::vector<float> dk_acc(static_cast<size_t>(kBlockK * D)), dv_acc(static_cast<size_t>(kBlockK * D));  // (Bk, D)
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t bh = task / key_blocks, j0 = (task % key_blocks) * kBlockK;
      const int64_t cols = std::min(kBlockK, Tk - j0);
      const float* qb = q + bh * Tq * D;     // (Tq, D)
      const float* gb = grad + bh * Tq * D;  // (Tq, D)
      pack_transposed(k + bh * Tk * D, j0, cols, D, kt.data());
      pack_transposed(v + bh * Tk * D, j0, cols, D, vt.data());
      std::fill(dk_acc.begin(), dk_acc.end(), 0.0f);
      std::fill(dv_acc.begin(), dv_acc.end(), 0.0f);
      auto group = [&](auto rows_tag, int64_t i) {
        constexpr int R = decltype(rows_tag)::value;
        const int64_t widest = backward_rows<R>(shape, qb, gb, lse + bh * Tq, delta.data() + bh * Tq, i, j0, cols,
                                                kt.data(), vt.data(), p.data(), ds.data());
        const float* q_rows[R];
        const float* g_rows[R];
        for (int r = 0; r < R; ++r) q_rows[r] = qb + (i + r) * D, g_rows[r] = gb + (i + r) * D;
        accumulate_transposed<R>(dv_acc.data(), p.data(), g_rows, widest, D);
        accumulate_transposed<R>(dk_acc.data(), ds.data(), q_rows, widest, D);
      };
      int64_t i = causal ? std::min(j0, Tq) : 0;  // causal: rows above j0 see none of this block
      for (; i + kRows <= Tq; i += kRows) group(std::integral_constant<int, kRows>{}, i);
      for (; i < Tq; ++i) group(std::integral_constant<int, 1>{}, i);
      std::copy(dk_acc.begin(), dk_acc.begin() + cols * D, dk + (bh * Tk + j0) * D);
      std::copy(dv_acc.begin(), dv_acc.begin() + cols * D, dv + (bh * Tk + j0) * D);
    }
  });

  // Pass 2: each task owns one query block and accumulates its dq over the visible key blocks.
  const int64_t query_blocks = (Tq + kBlockQ - 1) / kBlockQ;
  parallel_for(BH * query_blocks, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> kt(static_cast<size_t>(D * kBlockK)), vt(static_cast<size_t>(D * kBlockK));  // (D, Bk)
    std::vector<float> p(static_cast<size_t>(kRows * kBlockK)), ds(static_cast<size_t>(kRows * kBlockK));  // (R, Bk)
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t bh = task / query_blocks, i0 = (task % query_blocks) * kBlockQ;
      const int64_t i1 = std::min(Tq, i0 + kBlockQ);
      const float* qb = q + bh * Tq * D;     // (Tq, D)
      const float* gb = grad + bh * Tq * D;  // (Tq, D)
      const float* kb = k + bh * Tk * D;     // (Tk, D)
      std::fill(dq + (bh * Tq + i0) * D, dq + (bh * Tq + i1) * D, 0.0f);
      const int64_t key_end = causal ? std::min(Tk, i1) : Tk;
      for (int64_t j0 = 0; j0 < key_end; j0 += kBlockK) {
        const int64_t cols = std::min(kBlockK, key_end - j0);
        pack_transposed(kb, j0, cols, D, kt.data());
        pack_transposed(v + bh * Tk * D, j0, cols, D, vt.data());
        auto group = [&](auto rows_tag, int64_t i) {
          constexpr int R = decltype(rows_tag)::value;
          const int64_t widest = backward_rows<R>(shape, qb, gb, lse + bh * Tq, delta.data() + bh * Tq, i, j0, cols,
                                                  kt.data(), vt.data(), p.data(), ds.data());
          float* dq_rows[R];
          for (int r = 0; r < R; ++r) dq_rows[r] = dq + (bh * Tq + i + r) * D;
          accumulate_rows<R>(dq_rows, ds.data(), kb + j0 * D, widest, D);
        };
        int64_t i = i0;
        for (; i + kRows <= i1; i += kRows) group(std::integral_constant<int, kRows>{}, i);
        for (; i < i1; ++i) group(std::integral_constant<int, 1>{}, i);
      }
    }
  });
}

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
