// int8 convolution through oneDNN 2.6 (VNNI where the CPU has it) and the AVX-512 quantizer of
// its input; kernels/ref/int8_conv.h is the oracle with the same signatures. Limits: one group,
// channels-last activations, f32 output; primitives cached per thread as dense.cc caches its own.
#pragma once

#include <cstdint>

#include "frugal/kernels/ref/int8_conv.h"

namespace frugal {
namespace kernels {
namespace cpu {

// q = saturate(round_half_even(x / scale)) to [-127, 127] (s8) or [0, 255] (u8, to_unsigned).
void quantize_activation(const float* x, int64_t n, float scale, bool to_unsigned, void* q);

// x (n, h, w, c) u8 when x_unsigned else s8; weight (o, c, kh, kw) s8; y (n, out_h, out_w, o) f32.
// Exact int32 sums (c * kh * kw * 255 * 127 must stay below 2^31), then the epilogue: equal to
// ref::conv2d_s8 bit for bit. One primitive per shape serves every scale.
void conv2d_s8(const void* x, bool x_unsigned, const int8_t* weight, float* y, const Conv2dDims& dims,
               const Int8ConvEpilogue& epilogue);

// conv2d_s8 with ReLU, then 2x2 max pooling (stride 2, floor) in the same pass over the int32
// sums: y (n, out_h / 2, out_w / 2, o) f32, equal to ref::conv2d_s8_relu_pool2x2 bit for bit. The
// full-size output is never written as f32 (a conv block's BatchNorm folded, its ReLU and pool fused).
void conv2d_s8_relu_pool2x2(const void* x, bool x_unsigned, const int8_t* weight, float* y, const Conv2dDims& dims,
                            const Int8ConvEpilogue& epilogue);

// Primitives created on this thread so far (tests check that a second call reuses the first's).
int64_t int8_conv_primitives_created();

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
