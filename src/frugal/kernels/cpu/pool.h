// Max pooling over 2x2 windows with stride 2 and no padding, the CNN's pooling, by hand: oneDNN
// 2.6 runs it on plain NCHW tensors at a fraction of memory speed. The max_pool2d kernels of
// dense.h route this case here; the op calls the channels-last pair directly.
// Semantics are the reference kernel's: the first maximum in row-major window order wins, a NaN
// beats any number; an odd last row or column is dropped. The workspace is one byte per output:
// the winner's position in its window (0..3).
#pragma once

#include <cstdint>

#include "frugal/kernels/ref/dense.h"

namespace frugal {
namespace kernels {
namespace cpu {

// The pooling these kernels do: 2x2 windows, stride 2, no padding.
bool is_pool2x2(const Pool2dDims& d);

// x (planes, h, w) -> y and where (planes, h / 2, w / 2).
void max_pool2x2_forward(const float* x, float* y, uint8_t* where, int64_t planes, int64_t h, int64_t w);
// Writes all of grad_x: the gradient at each window's winner, 0 elsewhere.
void max_pool2x2_backward(const float* grad_y, const uint8_t* where, float* grad_x, int64_t planes, int64_t h,
                          int64_t w);

// n windows given as their four pixels' rows (a b / c d, n values each): y and where (n each).
void max_pool_window_row(const float* a, const float* b, const float* c, const float* d, float* y, uint8_t* where,
                         int64_t n);

// The same on channels-last tensors: x (n, h, w, c) -> y and where (n, h / 2, w / 2, c). The
// gradient may come in any layout: grad_strides are its element strides for (n, c, h / 2, w / 2).
void max_pool2x2_forward_nhwc(const float* x, float* y, uint8_t* where, int64_t n, int64_t h, int64_t w,
                              int64_t c);
void max_pool2x2_backward_nhwc(const float* grad_y, const int64_t grad_strides[4], const uint8_t* where,
                               float* grad_x, int64_t n, int64_t h, int64_t w, int64_t c);

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
