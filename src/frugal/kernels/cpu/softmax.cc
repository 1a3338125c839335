// Fast f32 softmax kernels. Maxima in f32 lanes, exponentials with the vectorized fast::exp,
// sums in double lanes (a row of 50K terms stays accurate to ~1e-7).
#include "frugal/kernels/cpu/softmax.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "frugal/base/parallel.h"
#include "frugal/kernels/cpu/activation.h"

namespace frugal {
namespace kernels {
namespace cpu {

namespace {
constexpr int64_t kGrain = 16384;  // elements per thread chunk
constexpr int kLanes = 16;

float row_max(const float* x, int64_t n) {
  float lanes[kLanes];
  for (int l = 0; l < kLanes; ++l) lanes[l] = x[0];
  int64_t r = 0;
  for (; r + kLanes <= n; r += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] = fast::max_f(lanes[l], x[r + l]);
  float top = lanes[0];
  for (int l = 1; l < kLanes; ++l) top = fast::max_f(top, lanes[l]);
  for (; r < n; ++r) top = fast::max_f(top, x[r]);
  return top;
}

// y = exp(x - top) over a row; returns the sum of y in double. Two plain passes (the row is in
// cache by then) vectorize better than one loop that both exponentiates and sums.
double row_exp_sum(const float* x, float* y, int64_t n, float top);

// sum(a * b) over a row (b == nullptr: sum(a)), in double lanes.
double row_dot(const float* a, const float* b, int64_t n) {
  double lanes[kLanes] = {};
  int64_t r = 0;
  if (b) {
    for (; r + kLanes <= n; r += kLanes)
      for (int l = 0; l < kLanes; ++l) lanes[l] += double(a[r + l] * b[r + l]);
  } else {
    for (; r + kLanes <= n; r += kLanes)
      for (int l = 0; l < kLanes; ++l) lanes[l] += double(a[r + l]);
  }
  double total = 0;
  for (int l = 0; l < kLanes; ++l) total += lanes[l];
  for (; r < n; ++r) total += double(b ? a[r] * b[r] : a[r]);
  return total;
}

double row_exp_sum(const float* x, float* y, int64_t n, float top) {
  for (int64_t r = 0; r < n; ++r) y[r] = fast::exp(x[r] - top);
  return row_dot(y, nullptr, n);
}

void forward_rows(const float* x, float* y, int64_t rows, int64_t n, bool log) {
  parallel_for(rows, std::max<int64_t>(1, kGrain / n), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const float* xr = x + row * n;
      float* yr = y + row * n;
      const float top = row_max(xr, n);
      const double total = row_exp_sum(xr, yr, n, top);
      if (log) {
        // (x - top) - log(total): subtracting top first keeps the low bits of inputs near +-1000.
        const float log_total = float(std::log(total));
        for (int64_t r = 0; r < n; ++r) yr[r] = (xr[r] - top) - log_total;
      } else {
        const float inv = float(1.0 / total);
        for (int64_t r = 0; r < n; ++r) yr[r] *= inv;
      }
    }
  });
}

void backward_rows(const float* y, const float* g, float* gx, int64_t rows, int64_t n, bool log) {
  parallel_for(rows, std::max<int64_t>(1, kGrain / n), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const float* yr = y + row * n;
      const float* gr = g + row * n;
      float* out = gx + row * n;
      if (log) {
        const float total = float(row_dot(gr, nullptr, n));
        for (int64_t r = 0; r < n; ++r) out[r] = gr[r] - fast::exp(yr[r]) * total;
      } else {
        const float total = float(row_dot(gr, yr, n));
        for (int64_t r = 0; r < n; ++r) out[r] = yr[r] * (gr[r] - total);
      }
    }
  });
}

// Column layout (inner > 1): each chunk takes a run [i0, i1) of columns inside one outer slice
// and sweeps the n rows, so the loops over columns vectorize.
template <class Body>
void for_column_runs(int64_t outer, int64_t n, int64_t inner, Body&& body) {
  parallel_for(outer * inner, std::max<int64_t>(1, kGrain / n), [&](int64_t begin, int64_t end) {
    std::vector<float> top(size_t(std::min(inner, end - begin)));
    std::vector<double> total(top.size());
    for (int64_t idx = begin; idx < end;) {
      const int64_t o = idx / inner, i0 = idx % inner;
      const int64_t i1 = std::min(inner, i0 + (end - idx));
      body(o * n * inner, i0, i1, top.data(), total.data());
      idx += i1 - i0;
    }
  });
}

void forward_columns(const float* x, float* y, int64_t outer, int64_t n, int64_t inner, bool log) {
  for_column_runs(outer, n, inner, [&](int64_t base, int64_t i0, int64_t i1, float* top, double* total) {
    const int64_t len = i1 - i0;
    const float* xb = x + base + i0;
    float* yb = y + base + i0;
    for (int64_t i = 0; i < len; ++i) top[i] = xb[i];
    for (int64_t r = 1; r < n; ++r)
      for (int64_t i = 0; i < len; ++i) top[i] = fast::max_f(top[i], xb[r * inner + i]);
    for (int64_t i = 0; i < len; ++i) total[i] = 0;
    for (int64_t r = 0; r < n; ++r) {
      const float* xr = xb + r * inner;
      float* yr = yb + r * inner;
      for (int64_t i = 0; i < len; ++i) yr[i] = fast::exp(xr[i] - top[i]);
      for (int64_t i = 0; i < len; ++i) total[i] += double(yr[i]);
    }
    if (log) {
      for (int64_t i = 0; i < len; ++i) total[i] = std::log(total[i]);  // reused as log(total)
      for (int64_t r = 0; r < n; ++r)
        for (int64_t i = 0; i < len; ++i) yb[r * inner + i] = (xb[r * inner + i] - top[i]) - float(total[i]);
    } else {
      for (int64_t i = 0; i < len; ++i) total[i] = 1.0 / total[i];
      for (int64_t r = 0; r < n; ++r)
        for (int64_t i = 0; i < len; ++i) yb[r * inner + i] *= float(total[i]);
    }
  });
}

void backward_columns(const float* y, const float* g, float* gx, int64_t outer, int64_t n, int64_t inner,
                      bool log) {
  for_column_runs(outer, n, inner, [&](int64_t base, int64_t i0, int64_t i1, float*, double* total) {
    const int64_t len = i1 - i0;
    const float* yb = y + base + i0;
    const float* gb = g + base + i0;
    float* out = gx + base + i0;
    for (int64_t i = 0; i < len; ++i) total[i] = 0;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < len; ++i)
        total[i] += log ? double(gb[r * inner + i]) : double(gb[r * inner + i] * yb[r * inner + i]);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < len; ++i) {
        const int64_t k = r * inner + i;
        out[k] = log ? gb[k] - fast::exp(yb[k]) * float(total[i]) : yb[k] * (gb[k] - float(total[i]));
      }
  });
}
}  // namespace

void softmax_forward(const float* x, float* y, int64_t outer, int64_t n, int64_t inner, bool log) {
  if (outer * n * inner == 0) return;
  if (inner == 1) forward_rows(x, y, outer, n, log);
  else forward_columns(x, y, outer, n, inner, log);
}

void softmax_backward(const float* y, const float* grad_y, float* grad_x, int64_t outer, int64_t n,
                      int64_t inner, bool log) {
  if (outer * n * inner == 0) return;
  if (inner == 1) backward_rows(y, grad_y, grad_x, outer, n, log);
  else backward_columns(y, grad_y, grad_x, outer, n, inner, log);
}

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
