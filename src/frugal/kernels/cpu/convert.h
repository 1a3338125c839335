// Fast f32 -> bf16 conversion for the bf16-mixed dense ops: threaded (fixed static chunks) and
// AVX-512 vectorized, bit-identical to ref/convert.h (nearest even, quiet NaN, denormals kept,
// which the AVX512-BF16 instruction would flush, hence integer arithmetic instead).
#pragma once

#include <cstdint>

#include "frugal/tensor/dtype.h"

namespace frugal {
namespace kernels {
namespace cpu {

void f32_to_bf16(const float* x, bf16_t* y, int64_t n);
// The same on the calling thread only: for short rows inside a caller's own parallel loop.
void f32_to_bf16_serial(const float* x, bf16_t* y, int64_t n);

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
