// Fast f32 elementwise and reduction kernels: vectorized (AVX-512 through the compiler) and split
// over threads in fixed chunks. Same signatures as ref/elementwise.h for T = float.
#pragma once

#include "frugal/kernels/ref/elementwise.h"

namespace frugal {
namespace kernels {
namespace cpu {

void binary(BinaryOp op, const float* a, const Strides& a_strides, const float* b, const Strides& b_strides,
            float* out, const Shape& shape);
void scale_shift(const float* x, float* out, int64_t n, double scale, double shift);
// Sums within each thread's fixed chunk in f32 lanes of 16, then combines partial sums in double;
// the result depends only on the shape and thread count.
void sum_middle(const float* x, float* out, int64_t outer, int64_t reduce, int64_t inner);
void max_middle(const float* x, float* out, int64_t* argmax, int64_t outer, int64_t reduce, int64_t inner);
void dropout(const float* x, float* out, int64_t n, double p, uint64_t seed, uint64_t stream);
// Rows are gathered with memcpy; the backward splits the V rows of grad_weight over threads, each
// thread scanning all indices in order, so sums do not depend on the thread count.
template <class I>
void embedding_forward(const I* indices, int64_t count, const float* weight, int64_t channels, float* out);
template <class I>
void embedding_backward(const I* indices, int64_t count, const float* grad_out, int64_t channels,
                        float* grad_weight, int64_t rows);

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
