// Differentiable operations: the public math of frugal. Each op has one forward, one backward
// rule (in the same ops_*.cc file), a scalar reference kernel and a fast CPU kernel (kernels/).
// f64 tensors always run the reference kernels (that is how gradcheck runs); f32 runs the fast
// kernels unless kernels::set_reference_mode(true). Inputs may be non-contiguous; outputs are
// contiguous. Dimension letters: N batch, C channels, H/W height/width, T time, D head width.
#pragma once

#include <functional>
#include <cstdint>
#include <vector>

#include "frugal/autograd/autograd.h"
#include "frugal/tensor/tensor.h"

namespace frugal {

// ---- arithmetic (ops_binary.cc); binary ops broadcast NumPy-style ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add_scalar(const Tensor& a, double value);
Tensor mul_scalar(const Tensor& a, double value);
Tensor neg(const Tensor& a);
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }

// ---- activations (ops_activation.cc) ----
enum class GeluApproximation { none, tanh };  // none = exact erf form
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x, GeluApproximation approximation = GeluApproximation::none);
Tensor silu(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);  // note: inside namespace frugal write std::tanh for scalars

// ---- reductions and softmax (ops_reduce.cc) ----
// Empty `axes` = all axes. max() passes the gradient to the first maximal element.
Tensor sum(const Tensor& x, const std::vector<int64_t>& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& axes = {}, bool keepdim = false);
Tensor max(const Tensor& x, int64_t axis, bool keepdim = false);
Tensor softmax(const Tensor& x, int64_t axis = -1);
Tensor log_softmax(const Tensor& x, int64_t axis = -1);

// ---- shape: views, or packed copies where a view is impossible (ops_shape.cc) ----
Tensor reshape(const Tensor& x, const Shape& shape);  // one -1 allowed
Tensor permute(const Tensor& x, const std::vector<int64_t>& axes);
Tensor transpose(const Tensor& x, int64_t a, int64_t b);
Tensor slice(const Tensor& x, int64_t axis, int64_t start, int64_t stop, int64_t step = 1);
Tensor concat(const std::vector<Tensor>& xs, int64_t axis);
Tensor broadcast_to(const Tensor& x, const Shape& shape);

// ---- dropout (ops_dropout.cc) ----
// Zeroes each element with probability p and scales the rest by 1/(1-p). The mask depends only
// on (seed, stream) and the element index: counter-based, so reruns and resumes repeat it.
Tensor dropout(const Tensor& x, double p, bool training, uint64_t seed, uint64_t stream);

// ---- embedding (ops_embedding.cc) ----
// indices: integer tensor (any shape) of rows into weight (V, C); output (indices..., C).
Tensor embedding(const Tensor& indices, const Tensor& weight);

// ---- dense math through oneDNN (ops_dense.cc) ----
// a (..., M, K) x b (..., K, N) -> (..., M, N); batch axes broadcast; b may be 2-D.
Tensor matmul(const Tensor& a, const Tensor& b);
// x (..., in), weight (out, in), bias (out) or undefined -> (..., out)
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
// relu(linear(x, weight, bias)) with the bias and the ReLU in the matmul's epilogue (a oneDNN
// post-op) on the fast kernels; gradients as the two ops give them. Where the sum is negative the
// output is -0 rather than relu's +0.
Tensor linear_relu(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

struct Conv2dOptions {
  int64_t stride_h = 1, stride_w = 1;
  int64_t padding_h = 0, padding_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  // In bf16-mixed precision on channels-last input, return y as a bf16 tensor (rounded as the
  // kernel writes it, half the bytes to store and read back) for a consumer that reads bf16:
  // batch_norm_relu_max_pool2x2. Its gradient then arrives in bf16, as the backward reads it.
  // Ignored otherwise (fp32, fp16-mixed, packed NCHW input, the reference kernels).
  bool bf16_output = false;
};
// x (N, C, H, W), weight (O, C/groups, KH, KW), bias (O) or undefined -> (N, O, OH, OW)
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              const Conv2dOptions& options = {});

struct Pool2dOptions {
  int64_t kernel_h = 2, kernel_w = 2;
  int64_t stride_h = 2, stride_w = 2;
  int64_t padding_h = 0, padding_w = 0;
  bool count_include_pad = true;  // avg pool only, as PyTorch's default
};
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& options);
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& options);
// PyTorch's adaptive bins: start = floor(i*H/OH), end = ceil((i+1)*H/OH).
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);

// ---- losses, norms, attention (ops_nn.cc) ----
enum class Reduction { mean, sum, none };
struct CrossEntropyOptions {
  Reduction reduction = Reduction::mean;
  double label_smoothing = 0.0;
  int64_t ignore_index = -100;  // targets equal to it add nothing; mean divides by the others
};
// logits (N, C) f32/f64, targets (N) i64 class indices -> scalar (or (N) with Reduction::none)
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, const CrossEntropyOptions& options = {});
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);

// Normalizes over the last axis; weight/bias (C) or undefined.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
// BatchNorm's running-statistics update, as every batch-norm op makes it in training: running =
// (1 - momentum) running + momentum batch (unbiased variance for running_var, `count` values per
// channel). While a RunningStatsCapture is alive on this thread, the ops hand each update to it
// instead of applying it, so data-parallel ranks can apply every micro-batch's update in the order
// one process would (apply_running_stats).
struct RunningStatsUpdate {
  Tensor running_mean, running_var;  // the buffers to update
  Tensor mean, var;                  // the batch's (var biased), (C)
  int64_t count = 0;
  double momentum = 0;
};
void apply_running_stats(const RunningStatsUpdate& update);
class RunningStatsCapture {
 public:
  explicit RunningStatsCapture(std::function<void(RunningStatsUpdate)> capture);
  ~RunningStatsCapture();
  RunningStatsCapture(const RunningStatsCapture&) = delete;
  RunningStatsCapture& operator=(const RunningStatsCapture&) = delete;

 private:
  std::function<void(RunningStatsUpdate)> previous_;
};
// x (N, C) or (N, C, H, W). Training: batch statistics, and running stats (if defined) are
// updated in place with momentum (unbiased variance, as PyTorch). Eval: running stats are used.
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                  Tensor running_var, bool training, double momentum = 0.1, double eps = 1e-5);
// relu(batch_norm(...)) as one op: one pass forward, the relu mask applied inside batch norm's
// backward passes; values and gradients bit-identical to the two ops.
Tensor batch_norm_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                       Tensor running_var, bool training, double momentum = 0.1, double eps = 1e-5);
// max_pool2d(batch_norm_relu(...)) over 2x2 windows with stride 2: on channels-last f32 input one
// pass writes only the pooled output and keeps it and the winners for backward (no full-size
// tensor); values and gradients bit-identical to the ops in sequence, which it runs otherwise.
// Channels-last bf16 input (conv2d's bf16_output) is read in f32 arithmetic, every value the same
// as for its f32 widening; the output and the parameters' gradients are f32, the input's gradient
// is bf16 (the f32 one rounded).
Tensor batch_norm_relu_max_pool2x2(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                                   Tensor running_var, bool training, double momentum = 0.1, double eps = 1e-5);
// batch_norm_relu_max_pool2x2(conv2d(x, conv_weight, conv_bias, conv), ...) as one op for a
// network's first block, where the convolution's output is recomputed in each pass instead of
// stored (kernels/cpu/stem.h): the full-size tensor is never written, the convolution's weight
// gradient is summed with batch norm's input gradient. Runs when ..._supported: f32 x that needs no
// gradient, channels-last (any layout with one channel), a 3x3 or 5x5 kernel on one channel or
// 3x3 on three, stride 1, padding k / 2, no dilation or groups, O a multiple of 16 up to 256,
// H, W >= 2, the fast kernels of an AVX-512 build; otherwise InputError. In bf16- and fp16-mixed
// precision x and conv_weight are rounded to that type as conv2d rounds them and their products
// summed in f32; the convolution's output and gradient stay f32 (conv2d's are rounded), so values
// differ from the separate ops by rounding, not in kind. Output (N, O, H / 2, W / 2) channels-last;
// gradients for conv_weight, conv_bias, weight and bias.
bool conv2d_batch_norm_relu_max_pool2x2_supported(const Tensor& x, const Tensor& conv_weight,
                                                  const Conv2dOptions& conv);
// The same by shape, for an f32 x (N, C, H, W) without gradient, channels-last, and an O x C x k x k
// kernel with stride 1 and padding k / 2 (a model's memory estimate).
bool conv2d_batch_norm_relu_max_pool2x2_runs(const Shape& x, int64_t out_channels, int64_t kernel);
Tensor conv2d_batch_norm_relu_max_pool2x2(const Tensor& x, const Tensor& conv_weight, const Tensor& conv_bias,
                                          const Conv2dOptions& conv, const Tensor& weight, const Tensor& bias,
                                          Tensor running_mean, Tensor running_var, bool training,
                                          double momentum = 0.1, double eps = 1e-5);
// q, k, v (B, H, T, D) -> (B, H, T, D); softmax(q k^T / sqrt(D)) v with an optional causal mask.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal = true);

// ---- multi-head attention (ops_attention.cc) ----
// qkv (B, T, 3C), the fused q|k|v projection, with `heads` heads of width D = C / heads ->
// (B, T, C), the heads' outputs side by side: what scaled_dot_product_attention gives on the split
// and transposed heads, without the copies. Short contexts (B*H*T*T scores up to 64 MiB) run as
// batched oneDNN matmuls on materialized scores, in bf16 under bf16-mixed precision (softmax and
// its backward in f32); longer ones, f64 and reference mode take the tiled kernel.
Tensor multi_head_attention(const Tensor& qkv, int64_t heads, bool causal = true);

}  // namespace frugal
