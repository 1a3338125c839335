// Reference softmax and log_softmax along the middle axis of x viewed as (outer, n, inner)
// contiguous, forward and backward, in double. Stable: the row maximum is subtracted before exp.
// Limits: n >= 1; the oracle for cpu/softmax.h.
#pragma once

#include <cmath>
#include <cstdint>

namespace frugal {
namespace kernels {
namespace ref {

// y = softmax(x) or log_softmax(x) along n; x, y (outer, n, inner).
template <class T>
void softmax_forward(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool log) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const T* xr = x + o * n * inner + i;
      T* yr = y + o * n * inner + i;
      double top = double(xr[0]);
      for (int64_t r = 1; r < n; ++r) top = std::fmax(top, double(xr[r * inner]));
      double total = 0;
      for (int64_t r = 0; r < n; ++r) total += std::exp(double(xr[r * inner]) - top);
      const double log_total = std::log(total);
      for (int64_t r = 0; r < n; ++r) {
        double shifted = double(xr[r * inner]) - top;
        yr[r * inner] = T(log ? shifted - log_total : std::exp(shifted) / total);
      }
    }
}

// From the forward output y and grad_y: softmax grad_x = y (g - sum(g y)); log_softmax
// grad_x = g - exp(y) sum(g). All (outer, n, inner).
template <class T>
void softmax_backward(const T* y, const T* grad_y, T* grad_x, int64_t outer, int64_t n, int64_t inner, bool log) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t base = o * n * inner + i;
      double total = 0;
      for (int64_t r = 0; r < n; ++r) {
        const int64_t k = base + r * inner;
        total += log ? double(grad_y[k]) : double(grad_y[k]) * double(y[k]);
      }
      for (int64_t r = 0; r < n; ++r) {
        const int64_t k = base + r * inner;
        grad_x[k] = T(log ? double(grad_y[k]) - std::exp(double(y[k])) * total
                          : double(y[k]) * (double(grad_y[k]) - total));
      }
    }
}

}  // namespace ref
}  // namespace kernels
}  // namespace frugal
