// Fast sparse linear map y = x W^T + b for a Linear weight held in compressed rows (ref/sparse.h):
// AVX-512, threaded in fixed static chunks (base/parallel.h), f32 accumulation in the nonzeros'
// stored order, so results depend only on the data (not on the thread count). Inference only.
#pragma once

#include <cstdint>

#include "frugal/kernels/ref/sparse.h"

namespace frugal {
namespace kernels {
namespace cpu {

// y (n, w.rows) = x (n, w.cols) W^T (+ bias (w.rows) when not null); x and y rows contiguous.
// Batches of a few rows gather x's entries per nonzero; larger ones transpose x into tiles of 16 or
// 64 rows and run each weight row's nonzeros down the tile (one broadcast, Z fused multiply-adds).
void sparse_linear(const float* x, int64_t n, const SparseMatrix& w, const float* bias, float* y);

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
