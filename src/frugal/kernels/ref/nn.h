// Reference kernels for losses, normalization and attention: plain loops accumulating in double,
// the oracle cpu/nn.h is tested against and what f64 runs. Operands are contiguous; the ops in
// autograd/ops_nn.cc validate shapes and targets. Attention here materializes each (Tq, Tk) block.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace frugal {
namespace kernels {
namespace ref {

// ---- cross entropy: logits (N, C), targets (N) ----
// loss_rows[n] = (1 - eps) * (lse - x[t]) + eps * (lse - mean_c x[c]), 0 for ignored rows;
// lse (N) = log(sum_c exp(x[c])), saved for the backward.
template <class T>
void cross_entropy_forward(const T* logits, const int64_t* targets, T* loss_rows, T* lse, int64_t N, int64_t C,
                           double label_smoothing, int64_t ignore_index) {
  for (int64_t n = 0; n < N; ++n) {
    const T* x = logits + n * C;
    double row_max = -std::numeric_limits<double>::infinity();
    for (int64_t c = 0; c < C; ++c) row_max = std::max(row_max, double(x[c]));
    double total_exp = 0, total_x = 0;
    for (int64_t c = 0; c < C; ++c) {
      total_exp += std::exp(double(x[c]) - row_max);
      total_x += double(x[c]);
    }
    const double row_lse = row_max + std::log(total_exp);
    lse[n] = T(row_lse);
    const int64_t t = targets[n];
    if (t == ignore_index) {
      loss_rows[n] = T(0);
      continue;
    }
    const double nll = row_lse - double(x[t]);
    const double smooth = row_lse - total_x / double(C);
    loss_rows[n] = T((1.0 - label_smoothing) * nll + label_smoothing * smooth);
  }
}

// grad_logits[n, c] = grad[n * grad_stride] * scale * (softmax[c] - (1 - eps) * [c == t] - eps / C);
// ignored rows get 0. grad_stride is 0 for a reduced (scalar) loss, 1 for Reduction::none.
template <class T>
void cross_entropy_backward(const T* logits, const int64_t* targets, const T* lse, const T* grad, int64_t grad_stride,
                            double scale, T* grad_logits, int64_t N, int64_t C, double label_smoothing,
                            int64_t ignore_index) {
  for (int64_t n = 0; n < N; ++n) {
    const T* x = logits + n * C;
    T* dx = grad_logits + n * C;
    const int64_t t = targets[n];
    if (t == ignore_index) {
      for (int64_t c = 0; c < C; ++c) dx[c] = T(0);
      continue;
    }
    const double g = double(grad[n * grad_stride]) * scale;
    const double uniform = label_smoothing / double(C);
    for (int64_t c = 0; c < C; ++c) {
      double p = std::exp(double(x[c]) - double(lse[n]));
      double target_weight = uniform + (c == t ? 1.0 - label_smoothing : 0.0);
      dx[c] = T(g * (p - target_weight));
    }
  }
}

// ---- mse: elementwise over n values ----
template <class T>
void mse_elements(const T* x, const T* y, T* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    double d = double(x[i]) - double(y[i]);
    out[i] = T(d * d);
  }
}

template <class T>
double mse_sum(const T* x, const T* y, int64_t n) {
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    double d = double(x[i]) - double(y[i]);
    total += d * d;
  }
  return total;
}

// dx = 2 * scale * grad * (x - y), dy = -dx; either may be null.
template <class T>
void mse_backward(const T* x, const T* y, const T* grad, int64_t grad_stride, double scale, T* dx, T* dy, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    double d = 2.0 * scale * double(grad[i * grad_stride]) * (double(x[i]) - double(y[i]));
    if (dx) dx[i] = T(d);
    if (dy) dy[i] = T(-d);
  }
}

// ---- layer norm: x (M, C) normalized over C; weight, bias (C) or null ----
// mean, rstd (M) are saved for the backward; variance is biased.
template <class T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd, int64_t M, int64_t C,
                        double eps) {
  for (int64_t m = 0; m < M; ++m) {
    const T* xr = x + m * C;
    double total = 0;
    for (int64_t c = 0; c < C; ++c) total += double(xr[c]);
    const double mu = total / double(C);
    double squares = 0;
    for (int64_t c = 0; c < C; ++c) squares += (double(xr[c]) - mu) * (double(xr[c]) - mu);
    const double r = 1.0 / std::sqrt(squares / double(C) + eps);
    mean[m] = T(mu);
    rstd[m] = T(r);
    for (int64_t c = 0; c < C; ++c) {
      double v = (double(xr[c]) - mu) * r;
      if (weight) v *= double(weight[c]);
      if (bias) v += double(bias[c]);
      y[m * C + c] = T(v);
    }
  }
}

// With xhat = (x - mean) * rstd and gw = grad * weight:
// dx = rstd * (gw - mean_c(gw) - xhat * mean_c(gw * xhat)), dweight = sum_m grad * xhat,
// dbias = sum_m grad. Any of dx, dweight, dbias may be null.
template <class T>
void layer_norm_backward(const T* x, const T* weight, const T* mean, const T* rstd, const T* grad, T* dx, T* dweight,
                         T* dbias, int64_t M, int64_t C) {
  std::vector<double> dw(dweight ? static_cast<size_t>(C) : 0, 0.0), db(dbias ? static_cast<size_t>(C) : 0, 0.0);
  for (int64_t m = 0; m < M; ++m) {
    const T* xr = x + m * C;
    const T* gr = grad + m * C;
    const double mu = double(mean[m]), r = double(rstd[m]);
    double total_gw = 0, total_gw_xhat = 0;
    for (int64_t c = 0; c < C; ++c) {
      double xhat = (double(xr[c]) - mu) * r;
      double gw = double(gr[c]) * (weight ? double(weight[c]) : 1.0);
      total_gw += gw;
      total_gw_xhat += gw * xhat;
      if (dweight) dw[size_t(c)] += double(gr[c]) * xhat;
      if (dbias) db[size_t(c)] += double(gr[c]);
    }
    if (!dx) continue;
    const double mean_gw = total_gw / double(C), mean_gw_xhat = total_gw_xhat / double(C);
    for (int64_t c = 0; c < C; ++c) {
      double xhat = (double(xr[c]) - mu) * r;
      double gw = double(gr[c]) * (weight ? double(weight[c]) : 1.0);
      dx[m * C + c] = T(r * (gw - mean_gw - xhat * mean_gw_xhat));
    }
  }
  for (int64_t c = 0; c < C; ++c) {
    if (dweight) dweight[c] = T(dw[size_t(c)]);
    if (dbias) dbias[c] = T(db[size_t(c)]);
  }
}

// ---- batch norm: x viewed as (N, C, S), S = H * W (1 for 2-D input) ----
// Per-channel mean and biased variance over (N, S).
template <class T>
void batch_norm_stats(const T* x, T* mean, T* var, int64_t N, int64_t C, int64_t S) {
  const double count = double(N * S);
  for (int64_t c = 0; c < C; ++c) {
    double total = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) total += double(x[(n * C + c) * S + s]);
    const double mu = total / count;
    double squares = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) {
        double d = double(x[(n * C + c) * S + s]) - mu;
        squares += d * d;
      }
    mean[c] = T(mu);
    var[c] = T(squares / count);
  }
}

// y = (x - mean[c]) * rstd[c] * weight[c] + bias[c]; weight, bias may be null.
template <class T>
void batch_norm_forward(const T* x, const T* mean, const T* rstd, const T* weight, const T* bias, T* y, int64_t N,
                        int64_t C, int64_t S) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const double mu = double(mean[c]), r = double(rstd[c]);
      const double w = weight ? double(weight[c]) : 1.0, b = bias ? double(bias[c]) : 0.0;
      for (int64_t s = 0; s < S; ++s) {
        int64_t i = (n * C + c) * S + s;
        y[i] = T((double(x[i]) - mu) * r * w + b);
      }
    }
}

// Training (statistics from this batch): dx = w * rstd * (g - mean(g) - xhat * mean(g * xhat)).
// Eval (fixed statistics): dx = g * w * rstd. Both: dweight = sum g * xhat, dbias = sum g.
// dx, dweight, dbias may be null.
template <class T>
void batch_norm_backward(const T* x, const T* mean, const T* rstd, const T* weight, const T* grad, T* dx, T* dweight,
                         T* dbias, int64_t N, int64_t C, int64_t S, bool training) {
  const double count = double(N * S);
  for (int64_t c = 0; c < C; ++c) {
    const double mu = double(mean[c]), r = double(rstd[c]), w = weight ? double(weight[c]) : 1.0;
    double total_g = 0, total_g_xhat = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) {
        int64_t i = (n * C + c) * S + s;
        total_g += double(grad[i]);
        total_g_xhat += double(grad[i]) * (double(x[i]) - mu) * r;
      }
    if (dweight) dweight[c] = T(total_g_xhat);
    if (dbias) dbias[c] = T(total_g);
    if (!dx) continue;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) {
        int64_t i = (n * C + c) * S + s;
        double g = double(grad[i]);
        if (training) {
          double xhat = (double(x[i]) - mu) * r;
          dx[i] = T(w * r * (g - total_g / count - xhat * total_g_xhat / count));
        } else {
          dx[i] = T(g * w * r);
        }
      }
  }
}

// ---- attention: q (BH, Tq, D), k and v (BH, Tk, D) -> out (BH, Tq, D), lse (BH, Tq) ----
// P = softmax(q k^T / sqrt(D)) with key j hidden from query i when causal and j > i (the mask is
// aligned top-left, as PyTorch's is_causal). lse is the log-sum-exp of each row of scaled scores.
template <class T>
void attention_forward(const T* q, const T* k, const T* v, T* out, T* lse, int64_t BH, int64_t Tq, int64_t Tk,
                       int64_t D, bool causal) {
  const double scale = 1.0 / std::sqrt(double(D));
  std::vector<double> scores(static_cast<size_t>(Tk));  // (Tk) one row of the (Tq, Tk) matrix
  for (int64_t bh = 0; bh < BH; ++bh) {
    const T* qb = q + bh * Tq * D;
    const T* kb = k + bh * Tk * D;
    const T* vb = v + bh * Tk * D;
    for (int64_t i = 0; i < Tq; ++i) {
      const int64_t visible = causal ? std::min(Tk, i + 1) : Tk;
      double row_max = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < visible; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += double(qb[i * D + d]) * double(kb[j * D + d]);
        scores[size_t(j)] = dot * scale;
        row_max = std::max(row_max, scores[size_t(j)]);
      }
      double total = 0;
      for (int64_t j = 0; j < visible; ++j) total += std::exp(scores[size_t(j)] - row_max);
      const double row_lse = row_max + std::log(total);
      lse[bh * Tq + i] = T(row_lse);
      for (int64_t j = 0; j < visible; ++j) scores[size_t(j)] = std::exp(scores[size_t(j)] - row_lse);
      for (int64_t d = 0; d < D; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < visible; ++j) acc += scores[size_t(j)] * double(vb[j * D + d]);
        out[(bh * Tq + i) * D + d] = T(acc);
      }
    }
  }
}

// With P recomputed from lse, dO = grad: dv = P^T dO; dP = dO v^T; dS = P * (dP - rowsum(dO * out));
// dq = scale * dS k; dk = scale * dS^T q. All three outputs are written.
template <class T>
void attention_backward(const T* q, const T* k, const T* v, const T* out, const T* lse, const T* grad, T* dq, T* dk,
                        T* dv, int64_t BH, int64_t Tq, int64_t Tk, int64_t D, bool causal) {
  const double scale = 1.0 / std::sqrt(double(D));
  std::vector<double> dq_acc(static_cast<size_t>(Tq * D)), dk_acc(static_cast<size_t>(Tk * D)), dv_acc(static_cast<size_t>(Tk * D));
  for (int64_t bh = 0; bh < BH; ++bh) {
    const T* qb = q + bh * Tq * D;
    const T* kb = k + bh * Tk * D;
    const T* vb = v + bh * Tk * D;
    const T* ob = out + bh * Tq * D;
    const T* gb = grad + bh * Tq * D;
    std::fill(dq_acc.begin(), dq_acc.end(), 0.0);
    std::fill(dk_acc.begin(), dk_acc.end(), 0.0);
    std::fill(dv_acc.begin(), dv_acc.end(), 0.0);
    for (int64_t i = 0; i < Tq; ++i) {
      const int64_t visible = causal ? std::min(Tk, i + 1) : Tk;
      double delta = 0;
      for (int64_t d = 0; d < D; ++d) delta += double(gb[i * D + d]) * double(ob[i * D + d]);
      for (int64_t j = 0; j < visible; ++j) {
        double dot = 0, dp = 0;
        for (int64_t d = 0; d < D; ++d) {
          dot += double(qb[i * D + d]) * double(kb[j * D + d]);
          dp += double(gb[i * D + d]) * double(vb[j * D + d]);
        }
        const double p = std::exp(dot * scale - double(lse[bh * Tq + i]));
        const double ds = p * (dp - delta) * scale;
        for (int64_t d = 0; d < D; ++d) {
          dv_acc[size_t(j * D + d)] += p * double(gb[i * D + d]);
          dq_acc[size_t(i * D + d)] += ds * double(kb[j * D + d]);
          dk_acc[size_t(j * D + d)] += ds * double(qb[i * D + d]);
        }
      }
    }
    for (int64_t i = 0; i < Tq * D; ++i) dq[bh * Tq * D + i] = T(dq_acc[size_t(i)]);
    for (int64_t i = 0; i < Tk * D; ++i) {
      dk[bh * Tk * D + i] = T(dk_acc[size_t(i)]);
      dv[bh * Tk * D + i] = T(dv_acc[size_t(i)]);
    }
  }
}

}  // namespace ref
}  // namespace kernels
}  // namespace frugal
