// Fast f32 softmax and log_softmax along the middle axis of (outer, n, inner), forward and
// backward; same signatures as ref/softmax.h for T = float. Rows (inner == 1) vectorize along n,
// other layouts along inner; threads split rows or columns in fixed chunks.
#pragma once

#include <cstdint>

namespace frugal {
namespace kernels {
namespace cpu {

void softmax_forward(const float* x, float* y, int64_t outer, int64_t n, int64_t inner, bool log);
void softmax_backward(const float* y, const float* grad_y, float* grad_x, int64_t outer, int64_t n,
                      int64_t inner, bool log);

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
