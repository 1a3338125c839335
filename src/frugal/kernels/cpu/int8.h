// Fast int8 kernels: symmetric quantization (AVX-512) and the s8 x s8 -> f32 matmul through oneDNN
// 2.6 (VNNI where the CPU has it), with the scales, bias and ReLU of ref/int8.h's Int8Epilogue.
// Shared by int8 inference (quantized models) and int8-mixed training. Limits: batch 1 only; the
// int32 sums must not overflow (k * 127 * 127 < 2^31, i.e. k < 133,000); non-finite inputs
// quantize to unspecified codes.
#pragma once

#include <cstdint>

#include "frugal/kernels/ref/int8.h"

namespace frugal {
namespace kernels {
namespace cpu {

// c (m, n) f32 from a and b int8 laid out as MatmulDims says (transposes through the flags and
// leading dimensions; dims.batch must be 1), then the epilogue. Results equal ref::matmul_s8's
// bit for bit. Primitives are cached per thread, keyed by shapes and flags (scales are run-time
// arguments, so one primitive serves every call of a shape).
void matmul_s8(const int8_t* a, const int8_t* b, float* c, const MatmulDims& dims, const Int8Epilogue& epilogue);

// q = saturate(round_half_even(x * (1 / scale)), -127, 127), as ref::quantize_s8.
void quantize_s8(const float* x, int64_t n, float scale, int8_t* q);
// Row i of x (row stride ldx) to row i of q (row stride cols) with scales[i] = int8_scale(max |row|).
void quantize_rows_s8(const float* x, int64_t rows, int64_t cols, int64_t ldx, int8_t* q, float* scales);

// Int8 matmul primitives this thread has created so far (flat across steady-state steps).
int64_t int8_primitives_created();

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
