// Internal to autograd: linear in int8-mixed precision (precision.h), called by linear() when the
// mode is int8-mixed and the weight is not excluded, and the bf16 helpers it shares with ops_dense.cc.
// Not a public op: callers use linear() / linear_relu() under a PrecisionGuard.
#pragma once

#include <cstdint>

#include "frugal/tensor/tensor.h"

namespace frugal {
namespace dense_internal {

// The bf16 rounding of the `count` f32 values at `src`, as a flat (count) bf16 tensor.
Tensor round_to_bf16(const float* src, int64_t count);
// c (m, n) = op(a) op(b) (+ bias, then relu) on bf16 operands; c f32 (kernels::cpu::matmul_bf16).
Tensor bf16_product(const Tensor& a, bool transpose_a, int64_t lda, const Tensor& b, bool transpose_b, int64_t ldb,
                    int64_t m, int64_t n, int64_t k, const float* bias = nullptr, bool relu = false);
// The gradient through a relu from its output y: g where y > 0, else 0.
Tensor relu_grad_from_output(const Tensor& y, const Tensor& g);
// lead with `last` appended.
Shape with_last(Shape lead, int64_t last);

// y (lead..., out) = x W^T + b (then relu) as SwitchBack computes it: x per row and W per tensor to
// int8, an int32 product scaled to f32, the bias added; backward dX = dY W in int8 (dY per row, the
// same W codes and scale) and dW = dY^T x in bf16 (x rounded once in forward). x_rows (M, in)
// contiguous f32; x the caller's input (for the graph). The reference kernels in reference mode.
Tensor linear_int8(const Tensor& x, const Tensor& x_rows, const Tensor& weight, const Tensor& bias, bool relu);

}  // namespace dense_internal
}  // namespace frugal
