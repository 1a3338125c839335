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
// Batches of up to 3 rows read x's entry for each nonzero (indexed scalar loads); larger ones
// transpose x into tiles of 16 or 64 rows (16x16 register transposes) and run each weight row's
// nonzeros down the tile: one broadcast and 1 or 4 fused multiply-adds of 16 lanes per nonzero, so
// the vector runs along the batch, not the weight row. That is why the format is plain CSR, not
// blocks: unstructured (magnitude) pruning leaves no block structure, and at 10% density a 1x16
// block is nonempty with probability 1 - 0.9^16 = 81%, so 1x16 blocks would multiply ~8x as many
// values as CSR for the same vector width (bench/sparse/run.sh measures CSR against dense).
void sparse_linear(const float* x, int64_t n, const SparseMatrix& w, const float* bias, float* y);

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
