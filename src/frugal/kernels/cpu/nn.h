// Fast f32 kernels for losses, normalization and attention, fused and split over threads in fixed
// partitions (results do not depend on thread timing). Same signatures and meaning as ref/nn.h for
// T = float. Attention is tiled (online softmax over key blocks) and never holds a (Tq, Tk) matrix.
#pragma once

#include <cstdint>

#include "frugal/tensor/dtype.h"

namespace frugal {
namespace kernels {
namespace cpu {

void cross_entropy_forward(const float* logits, const int64_t* targets, float* loss_rows, float* lse, int64_t N,
                           int64_t C, double label_smoothing, int64_t ignore_index);
void cross_entropy_backward(const float* logits, const int64_t* targets, const float* lse, const float* grad,
                            int64_t grad_stride, double scale, float* grad_logits, int64_t N, int64_t C,
                            double label_smoothing, int64_t ignore_index);

void mse_elements(const float* x, const float* y, float* out, int64_t n);
// Partial sums over fixed blocks of the input (independent of the thread count), combined in double.
double mse_sum(const float* x, const float* y, int64_t n);
void mse_backward(const float* x, const float* y, const float* grad, int64_t grad_stride, double scale, float* dx,
                  float* dy, int64_t n);

void layer_norm_forward(const float* x, const float* weight, const float* bias, float* y, float* mean, float* rstd,
                        int64_t M, int64_t C, double eps);
// One pass over rows in fixed blocks: dx per row, and per-block partial dweight/dbias combined in
// block order afterwards.
void layer_norm_backward(const float* x, const float* weight, const float* mean, const float* rstd,
                         const float* grad, float* dx, float* dweight, float* dbias, int64_t M, int64_t C);

void batch_norm_stats(const float* x, float* mean, float* var, int64_t N, int64_t C, int64_t S);
// relu: y = max(batch norm, 0) in the same pass (the op batch_norm_relu).
void batch_norm_forward(const float* x, const float* mean, const float* rstd, const float* weight, const float* bias,
                        float* y, int64_t N, int64_t C, int64_t S, bool relu = false);
// relu_out: the fused op's output; grad then passes only where it is positive (relu's rule).
void batch_norm_backward(const float* x, const float* mean, const float* rstd, const float* weight,
                         const float* grad, float* dx, float* dweight, float* dbias, int64_t N, int64_t C, int64_t S,
                         bool training, const float* relu_out = nullptr);

// The same three on channels-last input, x viewed as (M, C) with M = N * H * W. Per-channel sums
// run in fixed blocks of rows (f32 within a block, double across), independent of thread count.
void batch_norm_stats_nhwc(const float* x, float* mean, float* var, int64_t M, int64_t C);
void batch_norm_forward_nhwc(const float* x, const float* mean, const float* rstd, const float* weight,
                             const float* bias, float* y, int64_t M, int64_t C, bool relu = false);
void batch_norm_backward_nhwc(const float* x, const float* mean, const float* rstd, const float* weight,
                              const float* grad, float* dx, float* dweight, float* dbias, int64_t M, int64_t C,
                              bool training, const float* relu_out = nullptr);

// batch_norm_relu then 2x2 stride-2 max pooling as one pass, channels-last: x (N, H, W, C) ->
// y and where (N, H / 2, W / 2, C), the same values and winners as the two kernels; the full-size
// rectified tensor is never written. Backward takes the pooled output and winners (no full-size
// saved tensor) and the gradient of y packed channels-last; dx is (N, H, W, C).
void batch_norm_relu_pool_forward_nhwc(const float* x, const float* mean, const float* rstd, const float* weight,
                                       const float* bias, float* y, uint8_t* where, int64_t N, int64_t H, int64_t W,
                                       int64_t C);
void batch_norm_relu_pool_backward_nhwc(const float* x, const float* mean, const float* rstd, const float* weight,
                                        const float* y, const uint8_t* where, const float* grad_y, float* dx,
                                        float* dweight, float* dbias, int64_t N, int64_t H, int64_t W, int64_t C,
                                        bool training);

// bf16-mixed: x stored in bf16 (a convolution's output rounded as it was written), every sum and
// value computed in f32 exactly as the f32 kernels do on the widened x, and dx rounded to bf16
// (f32_to_bf16's rule) for the convolution's backward, which reads its gradient in bf16 anyway.
void batch_norm_stats_nhwc(const bf16_t* x, float* mean, float* var, int64_t M, int64_t C);
void batch_norm_relu_pool_forward_nhwc(const bf16_t* x, const float* mean, const float* rstd, const float* weight,
                                       const float* bias, float* y, uint8_t* where, int64_t N, int64_t H, int64_t W,
                                       int64_t C);
void batch_norm_relu_pool_backward_nhwc(const bf16_t* x, const float* mean, const float* rstd, const float* weight,
                                        const float* y, const uint8_t* where, const float* grad_y, bf16_t* dx,
                                        float* dweight, float* dbias, int64_t N, int64_t H, int64_t W, int64_t C,
                                        bool training);

// Flash-attention style: each task owns a block of query rows and streams key blocks through an
// online softmax, saving only lse (BH, Tq). Backward recomputes the blocks in two passes (one per
// key block for dk, dv; one per query block for dq) so every output has a single writer.
void attention_forward(const float* q, const float* k, const float* v, float* out, float* lse, int64_t BH,
                       int64_t Tq, int64_t Tk, int64_t D, bool causal);
void attention_backward(const float* q, const float* k, const float* v, const float* out, const float* lse,
                        const float* grad, float* dq, float* dk, float* dv, int64_t BH, int64_t Tq, int64_t Tk,
                        int64_t D, bool causal);

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
