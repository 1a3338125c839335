// The pieces of multi-head attention that run around batched oneDNN matmuls for short contexts:
// moving heads between the model's (B, T, C) rows and per-head (B*H, T, D) operands (rounding to
// bf16 on the way when asked) and the row-wise causal softmax forward and backward over
// materialized (B*H, Tq, Tk) scores. Limits: the scores are materialized, so callers use these only
// when B*H*Tq*Tk floats fit comfortably; longer contexts take the tiled kernel in nn.h.
#pragma once

#include <cstdint>

#include "frugal/tensor/dtype.h"

namespace frugal {
namespace kernels {
namespace cpu {

// y (B*H, T, D) = columns [col_offset, col_offset + H*D) of x's rows (B*T rows of row_width floats),
// head h taking columns h*D.. of that range. The bf16 form rounds to nearest even (as f32_to_bf16).
void split_heads(const float* x, int64_t row_width, int64_t col_offset, float* y, int64_t B, int64_t T, int64_t H,
                 int64_t D);
void split_heads(const float* x, int64_t row_width, int64_t col_offset, bf16_t* y, int64_t B, int64_t T, int64_t H,
                 int64_t D);

// The inverse: x (B*H, T, D) written into columns [col_offset, col_offset + H*D) of y's rows.
void merge_heads(const float* x, float* y, int64_t row_width, int64_t col_offset, int64_t B, int64_t T, int64_t H,
                 int64_t D);

// In place over rows (BH*Tq rows of Tk scores): p = softmax(scale * s) over the keys row i may
// see (all, or j <= i when causal), 0 on the others. With p16, also its bf16 rounding (same pass).
void softmax_rows(float* s, int64_t BH, int64_t Tq, int64_t Tk, float scale, bool causal, bf16_t* p16 = nullptr);

// dp (rows, Tk) becomes scale * p * (dp - sum_j p_j dp_j), the gradient of the raw scores given
// the gradient of the probabilities p; hidden keys have p = 0 and get 0. In place, or, with ds16,
// written only as its bf16 rounding there (dp is then left as scratch).
void softmax_rows_backward(const float* p, float* dp, int64_t rows, int64_t Tk, float scale, bf16_t* ds16 = nullptr);

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
