// The weight and bias gradients of a stride-1 convolution on channels-last operands, by hand.
// oneDNN 2.6 runs them well below this CPU's peak on NHWC tensors (the CNN's 32 -> 64 layer at
// about 60% of the bf16 peak, its 1 -> 32 input layer at a few percent), and they are a quarter of
// the CNN's training step. dense.h's conv2d_backward_weights(_bf16) route the supported shapes
// here.
//
// dW is a sum over every output pixel p of grad_y[p] (O values) times the input patch at p. The
// kernels keep 16 output channels per register and broadcast one patch value per column
// (kh, kw, ic) into a register block of up to 24 accumulators, so each loaded gradient vector
// serves a whole block of columns. bf16 takes pixels in pairs along a row, as VDPBF16PS wants:
// both operands are interleaved (pixel 2s, pixel 2s+1) once per image, into buffers that stay
// in cache, and the padding becomes zeros there.
//
// The images are split into a fixed number of blocks, each summed into its own partial result
// (in image and pixel order, f32), and the blocks are added in order: the result does not depend
// on the thread count. Accumulation is f32 throughout; VDPBF16PS adds its two products one at a
// time, rounding to nearest even, and reads bf16 denormals as zero (as oneDNN's kernels do).
#pragma once

#include <cstdint>

#include "frugal/kernels/ref/dense.h"
#include "frugal/tensor/dtype.h"

namespace frugal {
namespace kernels {
namespace cpu {

// Shapes these kernels take: channels-last, stride and dilation 1, one group, O a multiple of 16,
// a weight gradient of at most 2^20 elements (the partial sums stay small), and a CPU with
// AVX-512 (and AVX512-BF16 for the bf16 kernel) at build time.
bool conv_weight_grad_supported(const Conv2dDims& d, bool bf16);

// x (n, h, w, c) and grad_y (n, out_h, out_w, o), both packed channels-last; grad_weight
// (o, c, kernel_h, kernel_w) and grad_bias (o, may be null) are overwritten.
void conv_weight_grad_nhwc(const float* x, const float* grad_y, float* grad_weight, float* grad_bias,
                           const Conv2dDims& d);
void conv_weight_grad_nhwc(const bf16_t* x, const bf16_t* grad_y, float* grad_weight, float* grad_bias,
                           const Conv2dDims& d);

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
