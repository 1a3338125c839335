// Fast dense kernels through oneDNN 2.6: matmul, convolution and pooling in f32, plus bf16-input
// matmul and convolution (forward, backward data, backward weights) with f32 accumulation and
// output, and the f32 -> f16-value rounding that fp16-mixed runs the f32 kernels on. Same signatures as ref/dense.h for T = float, except max pooling, which keeps oneDNN's
// argmax workspace (opaque bytes, max_pool2d_workspace_bytes long) instead of indices. Primitives
// are cached per thread, keyed by shapes and flags, so a training step creates none after the first.
#pragma once

#include <cstddef>
#include <cstdint>

#include "frugal/kernels/ref/dense.h"
#include "frugal/tensor/dtype.h"

namespace frugal {
namespace kernels {
namespace cpu {

// Operands are wrapped in place (transposes through strides); bias (n) may be null. relu: c =
// max(a b + bias, 0) as a oneDNN post-op in the same pass (a negative sum gives -0, not +0).
void matmul(const float* a, const float* b, const float* bias, float* c, const MatmulDims& dims, bool relu = false);
void matmul_bf16(const bf16_t* a, const bf16_t* b, const float* bias, float* c, const MatmulDims& dims,
                 bool relu = false);

// Convolutions run in the layout oneDNN prefers (blocked channels); NCHW operands are reordered
// into per-thread scratch buffers when that layout differs from theirs. Stride-1 channels-last
// ones take conv.h's hand kernels where they apply (the weight gradient, few-channel forwards),
// and their f32 data gradient runs as a forward convolution with the kernel turned.
void conv2d_forward(const float* x, const float* weight, const float* bias, float* y, const Conv2dDims& dims);
void conv2d_forward_bf16(const bf16_t* x, const bf16_t* weight, const float* bias, float* y, const Conv2dDims& dims);
// The same with y rounded to bf16 as the kernel writes it (oneDNN's rounding: nearest even,
// denormals flushed), for a consumer that stores its input in bf16 (bf16-mixed batch norm).
void conv2d_forward_bf16(const bf16_t* x, const bf16_t* weight, const float* bias, bf16_t* y, const Conv2dDims& dims);
void conv2d_backward_data(const float* grad_y, const float* weight, float* grad_x, const Conv2dDims& dims);
void conv2d_backward_weights(const float* x, const float* grad_y, float* grad_weight, float* grad_bias,
                             const Conv2dDims& dims);
// bf16-mixed training: bf16 operands, f32 accumulation, f32 gradients (grad_bias may be null).
void conv2d_backward_data_bf16(const bf16_t* grad_y, const bf16_t* weight, float* grad_x, const Conv2dDims& dims);
void conv2d_backward_weights_bf16(const bf16_t* x, const bf16_t* grad_y, float* grad_weight, float* grad_bias,
                                  const Conv2dDims& dims);

// fp16-mixed: y[i] = the IEEE half nearest x[i] (ties to even, overflow to inf, denormals kept, NaN
// made the quiet NaN of its sign), as f32; bit-identical to f16_to_float(float_to_f16(x[i])) of
// dtype.h. oneDNN 2.6 has no f16 matmul or convolution on CPUs (checked on avx512_fp16 hardware),
// so fp16-mixed runs the f32 primitives on operands rounded by this: fp16 numerics, f32 speed.
// Threaded (fixed static chunks) and AVX-512 vectorized; x and y may be the same buffer.
void round_to_f16(const float* x, float* y, int64_t n);

size_t max_pool2d_workspace_bytes(const Pool2dDims& dims);
void max_pool2d_forward(const float* x, float* y, uint8_t* workspace, const Pool2dDims& dims);
void max_pool2d_backward(const float* grad_y, const uint8_t* workspace, float* grad_x, const Pool2dDims& dims);
void avg_pool2d_forward(const float* x, float* y, const Pool2dDims& dims);
void avg_pool2d_backward(const float* grad_y, float* grad_x, const Pool2dDims& dims);

// Plain loops split over planes (oneDNN has no adaptive pooling).
void adaptive_avg_pool2d_forward(const float* x, float* y, int64_t planes, int64_t h, int64_t w, int64_t out_h,
                                 int64_t out_w);
void adaptive_avg_pool2d_backward(const float* grad_y, float* grad_x, int64_t planes, int64_t h, int64_t w,
                                  int64_t out_h, int64_t out_w);

// Drops this thread's cached primitives and scratch buffers (tests, memory pressure).
void clear_dense_cache();
// Primitives this thread has created so far; flat across steady-state training steps.
int64_t dense_primitives_created();

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
