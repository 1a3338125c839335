// Reference elementwise and reduction kernels: plain loops over strided operands, accumulating
// in double. The oracle the fast kernels in cpu/ are tested against; also what f64 runs.
#pragma once

#include <cmath>
#include <cstdint>

#include "frugal/tensor/tensor.h"

namespace frugal {
namespace kernels {

enum class BinaryOp { add, sub, mul, div };

template <class T>
inline T apply_binary(BinaryOp op, T x, T y) {
  switch (op) {
    case BinaryOp::add: return x + y;
    case BinaryOp::sub: return x - y;
    case BinaryOp::mul: return x * y;
    case BinaryOp::div: return x / y;
  }
  return T(0);
}

namespace ref {

// out[i] = a[i] op b[i] over `shape`; a and b are read through their (broadcast) strides, out is
// contiguous.
template <class T>
void binary(BinaryOp op, const T* a, const Strides& a_strides, const T* b, const Strides& b_strides,
            T* out, const Shape& shape) {
  int64_t i = 0;
  for_each_offset2(shape, a_strides, b_strides, [&](int64_t oa, int64_t ob) {
    out[i++] = T(apply_binary<double>(op, double(a[oa]), double(b[ob])));
  });
}

// out[i] = x[i] * scale + shift over n contiguous elements.
template <class T>
void scale_shift(const T* x, T* out, int64_t n, double scale, double shift) {
  for (int64_t i = 0; i < n; ++i) out[i] = T(double(x[i]) * scale + shift);
}

// Sums x, viewed as (outer, reduce, inner) contiguous, over the middle axis: out (outer, inner).
template <class T>
void sum_middle(const T* x, T* out, int64_t outer, int64_t reduce, int64_t inner) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double total = 0;
      for (int64_t r = 0; r < reduce; ++r) total += double(x[(o * reduce + r) * inner + i]);
      out[o * inner + i] = T(total);
    }
}

}  // namespace ref
}  // namespace kernels
}  // namespace frugal
