// A network's first block -- conv2d, batch norm, ReLU, 2x2 max pooling -- on an input that needs no
// gradient and has few channels (a batch of images), without ever storing the convolution's
// output. The separate ops write that full-size tensor once and read it four times (statistics,
// normalize-and-pool, the two backward passes) and write and read its gradient; here:
//
// - the batch statistics come from the input's moments: with z the input shifted by a constant
//   per channel and v = w . z + b' the convolution at one position (z its window's T = C K K
//   values), sum v = w . S + M b' and sum (v - mean)^2 = w G w - (w . S)^2 / M, where S (T) and
//   G (T, T) sum z and z z^T over the M positions. They do not depend on the weights;
// - the forward recomputes v in registers (T FMAs per 16 channels) and writes only the pooled
//   output and its winners;
// - backward's sums -- of the pooled gradient g and of g * (v - mean) for batch norm, and of
//   batch norm's input gradient dv and dv * z for the convolution's weight gradient -- all
//   follow from sum g, A = sum g z over the windows' winners and the moments, since dv is linear
//   in g and v. One pass over the windows forms A; batch norm's input gradient is never formed.
//
// The arithmetic is f32 on the given x and weight (bf16- and fp16-mixed callers pass values
// rounded to that type, whose products f32 holds exactly), the moments and the sums over images
// double: per image in f32, across images in double in image order, so results do not depend on
// the thread count. The batch norm formulas, the pooling's winners (max_pool_window16) and the
// gradient's routing are those of batch_norm_relu_pool_{forward,backward}_nhwc (nn.h); values
// differ from the separate ops by rounding only.
#pragma once

#include <cstdint>

namespace frugal {
namespace kernels {
namespace cpu {

struct StemDims {
  int64_t n = 0, c = 0, h = 0, w = 0;  // input (n, h, w, c), channels-last
  int64_t o = 0;                        // output channels
  int64_t k = 0;                        // k x k kernel, stride 1, padding k / 2 (output h x w)
};

// AVX-512 builds; a 3x3 or 5x5 kernel on one input channel or 3x3 on three; o a multiple of 16
// up to 256; h, w >= 2.
bool stem_supported(const StemDims& d);

// The input's moments, all that the statistics and gradients need of x besides the pass over it:
// the shift per input channel (image 0's mean), S (T) and G (T, T), in doubles. Without `sums`
// only the shift (all a forward with given statistics reads); S and G are then zeros.
int64_t stem_moments_size(const StemDims& d);
void stem_moments(const float* x, double* moments, const StemDims& d, bool sums = true);

// The batch statistics of the convolution's output per channel: mean and the biased variance.
// weight (o, c, k, k), bias (o) or null.
void stem_stats(const double* moments, const float* weight, const float* bias, float* mean, float* var,
                const StemDims& d);

// y and where (n, h / 2, w / 2, o): batch norm with mean and rstd, affine bn_weight / bn_bias
// (null: 1 / 0), ReLU, then 2x2 max pooling; an odd last row or column is dropped.
void stem_forward(const float* x, const double* moments, const float* weight, const float* bias, const float* mean,
                  const float* rstd, const float* bn_weight, const float* bn_bias, float* y, uint8_t* where,
                  const StemDims& d);

// From grad_y (n, h / 2, w / 2, o) and the forward's y and where: the gradients of the
// convolution's weight (o, c, k, k) and bias (o), and of batch norm's weight and bias (o); any of
// the four may be null. training: mean and rstd are the batch's (their gradient flows).
void stem_backward(const float* x, const double* moments, const float* weight, const float* bias, const float* mean,
                   const float* rstd, const float* bn_weight, const float* y, const uint8_t* where,
                   const float* grad_y, float* dweight, float* dbias, float* dbn_weight, float* dbn_bias,
                   const StemDims& d, bool training);

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
