// Reference f32 -> bf16 conversion: the scalar float_to_bf16 (round to nearest even, NaN stays a
// quiet NaN, denormals kept) over a buffer. The oracle for cpu/convert.h.
#pragma once

#include <cstdint>

#include "frugal/tensor/dtype.h"

namespace frugal {
namespace kernels {
namespace ref {

inline void f32_to_bf16(const float* x, bf16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = float_to_bf16(x[i]);
}

}  // namespace ref
}  // namespace kernels
}  // namespace frugal
