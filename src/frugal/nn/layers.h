// The standard layers, each a thin Module over one op of autograd/ops.h, with PyTorch's parameter
// names, shapes and default initialization. A freshly built layer is initialized from seed 0; models
// re-draw everything with init_parameters(model, seed). Linear takes a LoRA adapter. Limits: no
// padding_idx / max_norm on Embedding, no momentum=None (cumulative average) BatchNorm.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "frugal/autograd/ops.h"
#include "frugal/base/rng.h"
#include "frugal/nn/module.h"

namespace frugal {
namespace nn {

// A LoRA adapter's settings (Hu et al. 2021, laid out as PEFT's lora.Linear): rank r, alpha (the
// adapter's output is scaled by alpha / r), dropout on the adapter's input, and the index that
// keys its dropout mask as a Dropout layer's index keys its own (apply it after the model's).
struct LoraOptions {
  int64_t rank = 8;
  double alpha = 8;
  double dropout = 0;
  int64_t dropout_index = 0;
  double scale() const { return alpha / double(rank); }
};

// A replacement for a Linear's or Conv2d's forward, set by a technique that changes how the layer
// computes (nn/quantized.h: int8 inference, calibration observers, fake quantization in
// quantization-aware training; nn/sparse.h: the sparse inference path). The hook knows its layer; relu: the ReLU that follows the layer
// is the hook's to apply (forward_relu). One hook per layer; null restores the layer's own forward.
class LayerHook {
 public:
  virtual ~LayerHook() = default;
  virtual Tensor forward(const Tensor& x, bool relu) = 0;
  // 2x2 max pooling (stride 2) of forward(x, true); a hook may fuse it (int8 convolution).
  virtual Tensor forward_relu_pool2x2(const Tensor& x) { return max_pool2d(forward(x, true), Pool2dOptions{}); }
};

// y = x W^T + b; x (..., in) -> (..., out). weight (out, in), bias (out).
// With a LoRA adapter (add_lora): y = x W^T + b + (dropout(x) A^T) B^T * alpha / r, lora_a A (r, in),
// lora_b B (out, r). The adapter's parameters sit on this module beside weight and bias, so the
// base's names stay (`qkv.weight`; the adapter adds `qkv.lora_a`, `qkv.lora_b`) and a model with its
// adapters merged (merged_weight) is a plain model. Fused paths keep the adapter: forward_relu runs
// relu(forward(x)), and the adapter's rank-wide product is computed even where the layer's output
// is not read (forward_output_unread, or the end of a recomputed GPT block), since B's gradient reads it.
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) override;
  Tensor forward_relu(const Tensor& x) override;  // linear_relu: the ReLU in the matmul's epilogue
  Tensor forward_output_unread(const Tensor& x) override;  // the product skipped
  std::string type_name() const override { return "Linear"; }
  // U(-1/sqrt(in), 1/sqrt(in)); an adapter as add_lora draws it, from the stream of lora_a.
  void reset_parameters(const InitStreams& streams) override;
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }  // undefined without bias
  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }

  // Registers lora_a (r, in), drawn from `rng` as PEFT does (kaiming_uniform, a = sqrt(5): U(-1/sqrt(in),
  // 1/sqrt(in))), and lora_b (out, r), zeros, so a fresh adapter changes no output. Once per layer;
  // InputError for r < 1, alpha <= 0 or dropout outside [0, 1).
  void add_lora(const LoraOptions& options, Rng& rng);
  bool has_lora() const { return lora_a_.defined(); }
  const Tensor& lora_a() const { return lora_a_; }  // undefined without an adapter
  const Tensor& lora_b() const { return lora_b_; }
  const LoraOptions& lora_options() const { return lora_; }
  // weight + scale * B A (summed in double, rounded to f32 once): the weight of a plain Linear that
  // computes what this one does in eval mode. The weight itself without an adapter.
  Tensor merged_weight() const;

  // A hook (LayerHook) runs instead of forward, forward_relu and forward_output_unread.
  void set_hook(std::shared_ptr<LayerHook> hook) { hook_ = std::move(hook); }
  LayerHook* hook() const { return hook_.get(); }

 private:
  void check_input(const Tensor& x) const;
  int64_t in_features_, out_features_;
  Tensor weight_, bias_;
  std::shared_ptr<LayerHook> hook_;
  LoraOptions lora_;
  Tensor lora_a_, lora_b_;
};

// The adapted linear map on given tensors, what Linear::forward runs with an adapter:
// linear(x, weight, bias) + linear(linear(dropout(x), lora_a) * scale, lora_b), composed of those
// differentiable ops (any float dtype: f64 for gradcheck). The scale multiplies the (..., r)
// product rather than the (..., out) one: the same value up to rounding, r / out of the work.
// Dropout (when training and p > 0) draws its mask from (seed, stream) as the dropout op does.
struct LoraDropout {
  double p = 0;
  bool training = false;
  uint64_t seed = 0, stream = 0;
};
Tensor lora_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& lora_a,
                   const Tensor& lora_b, double scale, const LoraDropout& dropout = {});
// weight + scale * lora_b lora_a, summed in double and rounded to weight's dtype once: the weight
// of a plain Linear computing what the adapted one does in eval mode (Linear::merged_weight, and
// `frugal export --merge` on tensors read from a file). weight (out, in), lora_a (r, in), lora_b (out, r).
Tensor lora_merged_weight(const Tensor& weight, const Tensor& lora_a, const Tensor& lora_b, double scale);

// x (N, C, H, W) -> (N, O, OH, OW); weight (O, C/groups, K, K), bias (O).
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, const Conv2dOptions& options = {},
         bool bias = true);
  Tensor forward(const Tensor& x) override;
  // forward with conv2d's bf16_output: in bf16-mixed precision on channels-last input the output
  // is a bf16 tensor, for a following BatchNorm2d + ReLU + 2x2 max pooling (forward_chain).
  Tensor forward_bf16_output(const Tensor& x);
  Tensor forward_relu(const Tensor& x) override;  // relu(forward(x)), or the hook's with its ReLU
  Tensor forward_relu_pool2x2(const Tensor& x) override;  // the hook's when hooked
  std::string type_name() const override { return "Conv2d"; }
  void reset_parameters(const InitStreams& streams) override;  // U(-1/sqrt(fan_in), 1/sqrt(fan_in))
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const Conv2dOptions& options() const { return options_; }
  // A hook (LayerHook) runs instead of forward (and forward_bf16_output, forward_relu); a hooked
  // convolution is not fused with the batch norm after it (forward_chain).
  void set_hook(std::shared_ptr<LayerHook> hook) { hook_ = std::move(hook); }
  LayerHook* hook() const { return hook_.get(); }

 private:
  int64_t in_channels_, out_channels_, kernel_size_;
  Conv2dOptions options_;
  Tensor weight_, bias_;
  std::shared_ptr<LayerHook> hook_;
};

// Shared by BatchNorm1d and BatchNorm2d: weight/bias (C), buffers running_mean, running_var (C)
// and num_batches_tracked (i64 scalar), the names PyTorch uses.
class BatchNorm : public Module {
 public:
  BatchNorm(int64_t num_features, double eps, double momentum, bool affine, bool track_running_stats);
  void reset_parameters(const InitStreams& streams) override;  // weight 1, bias 0, stats reset
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const Tensor& running_mean() const { return running_mean_; }
  const Tensor& running_var() const { return running_var_; }
  int64_t num_batches_tracked() const;
  double eps() const { return eps_; }
  // Folded into the convolution before it (nn/quantized.h's make_identity set weight 1, bias 0,
  // mean 0, var 1 - eps): forward_chain then skips it after a hooked convolution.
  bool folded() const { return folded_; }
  void set_folded(bool folded) { folded_ = folded; }

 protected:
  // x (N, C) or (N, C, H, W); relu: batch_norm_relu; pool: batch_norm_relu_max_pool2x2
  Tensor normalize(const Tensor& x, bool relu = false, bool pool = false);
  // conv, then this, ReLU and 2x2 max pooling as conv2d_batch_norm_relu_max_pool2x2 where it runs
  // (an input without gradient: a network's first block); undefined otherwise.
  Tensor normalize_conv_relu_pool2x2(const Conv2d& conv, const Tensor& x);
  int64_t num_features_;

 private:
  double eps_, momentum_;
  Tensor weight_, bias_, running_mean_, running_var_, num_batches_tracked_;
  bool folded_ = false;
};

class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true,
                       bool track_running_stats = true)
      : BatchNorm(num_features, eps, momentum, affine, track_running_stats) {}
  Tensor forward(const Tensor& x) override;  // (N, C, H, W)
  Tensor forward_relu(const Tensor& x) override;  // one fused pass (batch_norm_relu)
  Tensor forward_relu_pool2x2(const Tensor& x) override;  // batch_norm_relu_max_pool2x2
  // conv, this, ReLU and 2x2 max pooling as one op (conv2d_batch_norm_relu_max_pool2x2) when it
  // runs on x; an undefined tensor otherwise, for the caller to run the layers (forward_chain).
  Tensor forward_conv_relu_pool2x2(const Conv2d& conv, const Tensor& x) { return normalize_conv_relu_pool2x2(conv, x); }
  std::string type_name() const override { return "BatchNorm2d"; }
};

class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(int64_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true,
                       bool track_running_stats = true)
      : BatchNorm(num_features, eps, momentum, affine, track_running_stats) {}
  Tensor forward(const Tensor& x) override;  // (N, C) or (N, C, L)
  std::string type_name() const override { return "BatchNorm1d"; }
};

// Normalizes over the last axis (size `normalized_size`); weight (C) = 1, bias (C) = 0.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t normalized_size, double eps = 1e-5, bool elementwise_affine = true, bool bias = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "LayerNorm"; }
  void reset_parameters(const InitStreams& streams) override;
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 private:
  int64_t normalized_size_;
  double eps_;
  Tensor weight_, bias_;
};

// Integer indices (any shape) -> (indices..., dim); weight (num, dim) ~ N(0, 1).
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim);
  Tensor forward(const Tensor& indices) override;
  std::string type_name() const override { return "Embedding"; }
  void reset_parameters(const InitStreams& streams) override;
  const Tensor& weight() const { return weight_; }

 private:
  int64_t num_embeddings_, embedding_dim_;
  Tensor weight_;
};

// Inverted dropout in training mode, identity in eval. The mask comes from the thread's
// RandomContext (seed, step) and this layer's index, so it depends only on (seed, step, layer).
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, int64_t index = 0);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Dropout"; }
  double p() const { return p_; }
  int64_t index() const { return index_; }
  void set_index(int64_t index) { index_ = index; }

 private:
  double p_;
  int64_t index_;
};
// Numbers the Dropout layers of a model 0, 1, ... in registration (= construction) order.
void index_dropouts(Module& model);

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(const Pool2dOptions& options) : options_(options) {}
  // stride 0 means stride = kernel, as PyTorch's default.
  explicit MaxPool2d(int64_t kernel, int64_t stride = 0, int64_t padding = 0);
  Tensor forward(const Tensor& x) override { return max_pool2d(x, options_); }
  std::string type_name() const override { return "MaxPool2d"; }
  const Pool2dOptions& options() const { return options_; }

 private:
  Pool2dOptions options_;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(const Pool2dOptions& options) : options_(options) {}
  explicit AvgPool2d(int64_t kernel, int64_t stride = 0, int64_t padding = 0, bool count_include_pad = true);
  Tensor forward(const Tensor& x) override { return avg_pool2d(x, options_); }
  std::string type_name() const override { return "AvgPool2d"; }

 private:
  Pool2dOptions options_;
};

class AdaptiveAvgPool2d : public Module {
 public:
  AdaptiveAvgPool2d(int64_t out_h, int64_t out_w) : out_h_(out_h), out_w_(out_w) {}
  Tensor forward(const Tensor& x) override { return adaptive_avg_pool2d(x, out_h_, out_w_); }
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }

 private:
  int64_t out_h_, out_w_;
};

// Merges axes start_axis..end_axis into one; default (N, ...) -> (N, rest), as torch.nn.Flatten.
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_axis = 1, int64_t end_axis = -1) : start_axis_(start_axis), end_axis_(end_axis) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Flatten"; }

 private:
  int64_t start_axis_, end_axis_;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return relu(x); }
  std::string type_name() const override { return "ReLU"; }
};

class GELU : public Module {
 public:
  explicit GELU(GeluApproximation approximation = GeluApproximation::none) : approximation_(approximation) {}
  Tensor forward(const Tensor& x) override { return gelu(x, approximation_); }
  std::string type_name() const override { return "GELU"; }

 private:
  GeluApproximation approximation_;
};

class SiLU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return silu(x); }
  std::string type_name() const override { return "SiLU"; }
};

class Sigmoid : public Module {
 public:
  Tensor forward(const Tensor& x) override { return sigmoid(x); }
  std::string type_name() const override { return "Sigmoid"; }
};

class Tanh : public Module {
 public:
  Tensor forward(const Tensor& x) override { return frugal::tanh(x); }
  std::string type_name() const override { return "Tanh"; }
};

// "relu", "gelu" (exact erf), "gelu_tanh", "silu", "sigmoid", "tanh"; anything else is an
// InputError naming `field` (the job-file key) and the allowed values.
std::shared_ptr<Module> make_activation(const std::string& name, const std::string& field = "activation");

}  // namespace nn
}  // namespace frugal
