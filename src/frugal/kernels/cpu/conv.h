// Two convolution kernels by hand, for stride-1 convolutions on channels-last operands, where
// oneDNN 2.6 is far from this CPU's peak. dense.h's conv2d_* functions route the supported shapes
// here.
//
// ---- weight and bias gradients ----
// oneDNN 2.6 runs them well below this CPU's peak on NHWC tensors (the CNN's 32 -> 64 layer at
// about 60% of the bf16 peak, its 1 -> 32 input layer at about a fifth), and they are a quarter of
// the CNN's training step.
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
// bf16 with an odd output width pairs each row's last pixel with a zero gradient: a non-finite x
// next to it then adds NaN (0 x inf) where the reference adds nothing, but such an x already makes
// the reference's gradient non-finite through the pixels that do read it.
//
// ---- forward with few input channels ----
// An image model's first layer (1 or 3 channels): oneDNN runs the CNN's 1 -> 32 layer at about a
// fifth of the peak, each output pixel being only KH x KW x C products per channel. Each output
// pixel is a sum of terms over its patch: per kernel row kh, the KW x C values of the patch are
// contiguous in a padded copy of the image. f32 takes them one at a time (a broadcast and an FMA
// per 16 output channels); bf16 in pairs (VDPBF16PS), a row's odd last value paired with a zero
// stored as such (a zero weight times a neighbour that may be infinite would not be zero). The
// weights of all terms stay in registers, shared by a block of pixels along the row. The sum
// starts from the bias and adds the terms in patch order, in f32; bf16 output is that value
// rounded as f32_to_bf16 rounds (nearest even, denormals kept): always the f32 output rounded.
//
// ---- Winograd F(2x2, 3x3), f32 ----
// oneDNN 2.6 runs the CNN's f32 32 -> 64 layer (forward, and the data gradient as a forward) at
// about 200 GFLOP/s on NHWC; its Winograd kernel wants blocked layouts, and the reorders around it
// eat most of the gain. winograd.cc works on NHWC directly: per 2x2 output tile, 16 products per
// channel pair instead of 36, the transforms and the 16 small matrix products done block by block
// in cache. Only additions, subtractions and halvings transform, so the results differ from a
// direct convolution's by a few roundings more (tested against the reference); each output is
// computed by one thread in a fixed order. bf16 keeps oneDNN: its transforms would round in bf16.
#pragma once

#include <cstdint>

#include "frugal/kernels/ref/dense.h"
#include "frugal/tensor/dtype.h"

namespace frugal {
namespace kernels {
namespace cpu {

// A stride-1 channels-last convolution: channels-last operands, stride and dilation 1, one group,
// and the output sizes that follow. Both kernels below take only these (dense.cc's data gradient
// as a forward convolution too).
bool is_stride1_channels_last(const Conv2dDims& d);

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

// Shapes the forward kernels take: channels-last, stride and dilation 1, one group, O a multiple
// of 16, at most 16 terms per pixel (f32: KH KW C; bf16: KH ceil(KW C / 2)), a padded image of at
// most 512 KiB, and AVX-512 (AVX512-BF16 for bf16) at build time.
bool conv_direct_supported(const Conv2dDims& d, bool bf16);

// x (n, h, w, c), weight (o, c, kernel_h, kernel_w), bias (o) or null; y (n, out_h, out_w, o).
void conv_direct_forward_nhwc(const float* x, const float* weight, const float* bias, float* y, const Conv2dDims& d);
void conv_direct_forward_nhwc(const bf16_t* x, const bf16_t* weight, const float* bias, float* y,
                              const Conv2dDims& d);
void conv_direct_forward_nhwc(const bf16_t* x, const bf16_t* weight, const float* bias, bf16_t* y,
                              const Conv2dDims& d);

// Shapes the Winograd kernel takes: a stride-1 channels-last 3 x 3 convolution, C and O multiples of
// 16 in [16, 256], AVX-512 at build time.
bool conv_winograd_supported(const Conv2dDims& d);

// x (n, h, w, c), weight (o, c, 3, 3), bias (o) or null; y (n, out_h, out_w, o).
void conv_winograd_forward_nhwc(const float* x, const float* weight, const float* bias, float* y,
                                const Conv2dDims& d);

// The weight gradient by the adjoint of the same transforms, summed over tiles in the transformed
// domain (16 products per tile and channel pair instead of 36), in kernel-fixed tile ranges added
// in order. Takes what conv_winograd_supported takes with C O <= 128 x 128.
bool conv_winograd_weight_grad_supported(const Conv2dDims& d);

// x (n, h, w, c) and grad_y (n, out_h, out_w, o); grad_weight (o, c, 3, 3) and grad_bias (o, may be
// null) are overwritten.
void conv_winograd_weight_grad_nhwc(const float* x, const float* grad_y, float* grad_weight, float* grad_bias,
                                    const Conv2dDims& d);

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
