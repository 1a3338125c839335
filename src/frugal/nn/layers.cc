// Layer constructors, PyTorch default initializations and forwards (shape checks with clear errors);
// Linear's LoRA adapter.
#include "frugal/nn/layers.h"

#include <cmath>

#include "frugal/autograd/autograd.h"
#include "frugal/nn/init.h"

namespace frugal {
namespace nn {

namespace {
void require_positive(int64_t value, const char* layer, const char* what) {
  if (value <= 0)
    throw InputError(std::string(layer) + ": " + what + " must be positive, got " + std::to_string(value));
}
}  // namespace

// ---- Linear ----

Linear::Linear(int64_t in_features, int64_t out_features, bool bias)
    : in_features_(in_features), out_features_(out_features) {
  require_positive(in_features, "Linear", "in_features");
  require_positive(out_features, "Linear", "out_features");
  weight_ = register_parameter("weight", Tensor::empty({out_features, in_features}));
  if (bias) bias_ = register_parameter("bias", Tensor::empty({out_features}));
  init_parameters(*this, 0);
}

void Linear::reset_parameters(const InitStreams& streams) {
  // kaiming_uniform(a = sqrt(5)) reduces to U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as the bias uses.
  const double bound = 1.0 / std::sqrt(double(in_features_));
  Rng weight_rng = streams.rng(weight_);
  init::uniform_(weight_, -bound, bound, weight_rng);
  if (bias_.defined()) {
    Rng bias_rng = streams.rng(bias_);
    init::uniform_(bias_, -bound, bound, bias_rng);
  }
  if (has_lora()) {  // PEFT's reset_lora_parameters
    Rng lora_rng = streams.rng(lora_a_);
    init::kaiming_uniform_(lora_a_, lora_rng, std::sqrt(5.0));
    init::zeros_(lora_b_);
  }
}

void Linear::add_lora(const LoraOptions& options, Rng& rng) {
  FRUGAL_CHECK(!has_lora(), "Linear: a second LoRA adapter on the same layer");
  if (options.rank < 1)
    throw InputError("Linear: LoRA rank must be positive, got " + std::to_string(options.rank));
  if (!(options.alpha > 0) || !std::isfinite(options.alpha))
    throw InputError("Linear: LoRA alpha must be a finite number > 0, got " + std::to_string(options.alpha));
  if (!(options.dropout >= 0.0 && options.dropout < 1.0))
    throw InputError("Linear: LoRA dropout must be in [0, 1), got " + std::to_string(options.dropout));
  lora_ = options;
  lora_a_ = register_parameter("lora_a", Tensor::empty({options.rank, in_features_}, weight_.dtype()));
  lora_b_ = register_parameter("lora_b", Tensor::zeros({out_features_, options.rank}, weight_.dtype()));
  init::kaiming_uniform_(lora_a_, rng, std::sqrt(5.0));  // gain sqrt(1/3): U(-1/sqrt(in), 1/sqrt(in))
}

Tensor Linear::merged_weight() const {
  if (!has_lora()) return weight_.detach().clone();
  return lora_merged_weight(weight_, lora_a_, lora_b_, lora_.scale());
}

Tensor lora_merged_weight(const Tensor& weight, const Tensor& lora_a, const Tensor& lora_b, double scale) {
  autograd::NoGradGuard no_grad;
  // f64 operands run the reference kernels (double accumulation); one rounding at the end.
  Tensor product = matmul(lora_b.to(DType::f64), lora_a.to(DType::f64));  // (out, in)
  return add(weight.to(DType::f64), mul_scalar(product, scale)).to(weight.dtype());
}

Tensor lora_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& lora_a,
                   const Tensor& lora_b, double scale, const LoraDropout& dropout_options) {
  Tensor base = linear(x, weight, bias);  // (..., out)
  Tensor hidden;                          // (..., r)
  {
    autograd::ReadOutputs read;  // lora_b's gradient reads it, even where the layer's output is unread
    const LoraDropout& d = dropout_options;
    hidden = linear(d.training && d.p > 0 ? dropout(x, d.p, true, d.seed, d.stream) : x, lora_a);
    if (scale != 1.0) hidden = mul_scalar(hidden, scale);
  }
  return add(base, linear(hidden, lora_b));
}

void Linear::check_input(const Tensor& x) const {
  if (x.rank() < 1 || x.size(-1) != in_features_)
    throw InputError("Linear(" + std::to_string(in_features_) + " -> " + std::to_string(out_features_) +
                     "): input " + shape_str(x.shape()) + " should end in " + std::to_string(in_features_));
}

Tensor Linear::forward(const Tensor& x) {
  check_input(x);
  if (hook_) return hook_->forward(x, false);
  if (!has_lora()) return linear(x, weight_, bias_);
  const RandomContext context = random_context();
  return lora_linear(x, weight_, bias_, lora_a_, lora_b_, lora_.scale(),
                     {lora_.dropout, is_training(), context.seed, mix_key(context.step, uint64_t(lora_.dropout_index))});
}

Tensor Linear::forward_output_unread(const Tensor& x) {
  autograd::UnreadOutputs unread;
  return forward(x);
}

Tensor Linear::forward_relu(const Tensor& x) {
  check_input(x);
  if (hook_) return hook_->forward(x, true);
  if (has_lora()) return relu(forward(x));  // the ReLU reads the adapter's sum: not in the base's epilogue
  return linear_relu(x, weight_, bias_);
}

// ---- Conv2d ----

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, const Conv2dOptions& options,
               bool bias)
    : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size), options_(options) {
  require_positive(in_channels, "Conv2d", "in_channels");
  require_positive(out_channels, "Conv2d", "out_channels");
  require_positive(kernel_size, "Conv2d", "kernel_size");
  require_positive(options.groups, "Conv2d", "groups");
  if (in_channels % options.groups != 0 || out_channels % options.groups != 0)
    throw InputError("Conv2d: groups " + std::to_string(options.groups) + " must divide in_channels " +
                     std::to_string(in_channels) + " and out_channels " + std::to_string(out_channels));
  weight_ = register_parameter("weight",
                               Tensor::empty({out_channels, in_channels / options.groups, kernel_size, kernel_size}));
  if (bias) bias_ = register_parameter("bias", Tensor::empty({out_channels}));
  init_parameters(*this, 0);
}

void Conv2d::reset_parameters(const InitStreams& streams) {
  const double bound = 1.0 / std::sqrt(double(init::fan_in_and_fan_out(weight_).first));
  Rng weight_rng = streams.rng(weight_);
  init::uniform_(weight_, -bound, bound, weight_rng);
  if (bias_.defined()) {
    Rng bias_rng = streams.rng(bias_);
    init::uniform_(bias_, -bound, bound, bias_rng);
  }
}

Tensor Conv2d::forward(const Tensor& x) {
  if (x.rank() != 4 || x.size(1) != in_channels_)
    throw InputError("Conv2d(" + std::to_string(in_channels_) + " -> " + std::to_string(out_channels_) +
                     "): input " + shape_str(x.shape()) + " should be (N, " + std::to_string(in_channels_) +
                     ", H, W)");
  if (hook_) return hook_->forward(x, false);
  return conv2d(x, weight_, bias_, options_);
}

Tensor Conv2d::forward_relu_pool2x2(const Tensor& x) {
  if (hook_ && x.rank() == 4 && x.size(1) == in_channels_) return hook_->forward_relu_pool2x2(x);
  return Module::forward_relu_pool2x2(x);
}

Tensor Conv2d::forward_relu(const Tensor& x) {
  if (hook_ && x.rank() == 4 && x.size(1) == in_channels_) return hook_->forward(x, true);
  return relu(forward(x));
}

Tensor Conv2d::forward_bf16_output(const Tensor& x) {
  if (hook_ || x.rank() != 4 || x.size(1) != in_channels_) return forward(x);  // forward's message
  // The fused op that reads bf16 needs at least a 2 x 2 output to pool; otherwise stay f32.
  const Conv2dOptions& o = options_;
  const int64_t out_h = (x.size(2) + 2 * o.padding_h - o.dilation_h * (kernel_size_ - 1) - 1) / o.stride_h + 1;
  const int64_t out_w = (x.size(3) + 2 * o.padding_w - o.dilation_w * (kernel_size_ - 1) - 1) / o.stride_w + 1;
  if (out_h < 2 || out_w < 2) return forward(x);
  Conv2dOptions options = options_;
  options.bf16_output = true;
  return conv2d(x, weight_, bias_, options);
}

// ---- BatchNorm ----

BatchNorm::BatchNorm(int64_t num_features, double eps, double momentum, bool affine, bool track_running_stats)
    : num_features_(num_features), eps_(eps), momentum_(momentum) {
  require_positive(num_features, "BatchNorm", "num_features");
  if (affine) {
    weight_ = register_parameter("weight", Tensor::ones({num_features}));
    bias_ = register_parameter("bias", Tensor::zeros({num_features}));
  }
  if (track_running_stats) {
    running_mean_ = register_buffer("running_mean", Tensor::zeros({num_features}));
    running_var_ = register_buffer("running_var", Tensor::ones({num_features}));
    num_batches_tracked_ = register_buffer("num_batches_tracked", Tensor::zeros({}, DType::i64));
  }
}

void BatchNorm::reset_parameters(const InitStreams& streams) {
  if (weight_.defined()) init::ones_(weight_);
  if (bias_.defined()) init::zeros_(bias_);
  if (running_mean_.defined()) {
    running_mean_.fill(0.0);
    running_var_.fill(1.0);
    num_batches_tracked_.fill(0.0);
  }
}

int64_t BatchNorm::num_batches_tracked() const {
  return num_batches_tracked_.defined() ? num_batches_tracked_.data<int64_t>()[0] : 0;
}

Tensor BatchNorm::normalize(const Tensor& x, bool relu, bool pool) {
  if (x.size(1) != num_features_)
    throw InputError(type_name() + "(" + std::to_string(num_features_) + "): input " + shape_str(x.shape()) +
                     " has " + std::to_string(x.size(1)) + " channels");
  // Without running statistics PyTorch normalizes with batch statistics in eval mode too.
  const bool use_batch_stats = is_training() || !running_mean_.defined();
  Tensor y = pool   ? batch_norm_relu_max_pool2x2(x, weight_, bias_, running_mean_, running_var_, use_batch_stats,
                                                   momentum_, eps_)
             : relu ? batch_norm_relu(x, weight_, bias_, running_mean_, running_var_, use_batch_stats, momentum_, eps_)
                    : batch_norm(x, weight_, bias_, running_mean_, running_var_, use_batch_stats, momentum_, eps_);
  if (is_training() && num_batches_tracked_.defined()) num_batches_tracked_.data<int64_t>()[0] += 1;
  return y;
}

Tensor BatchNorm::normalize_conv_relu_pool2x2(const Conv2d& conv, const Tensor& x) {
  if (conv.weight().size(0) != num_features_ || !conv2d_batch_norm_relu_max_pool2x2_supported(x, conv.weight(), conv.options()))
    return Tensor();
  const bool use_batch_stats = is_training() || !running_mean_.defined();
  Tensor y = conv2d_batch_norm_relu_max_pool2x2(x, conv.weight(), conv.bias(), conv.options(), weight_, bias_,
                                                running_mean_, running_var_, use_batch_stats, momentum_, eps_);
  if (is_training() && num_batches_tracked_.defined()) num_batches_tracked_.data<int64_t>()[0] += 1;
  return y;
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  if (x.rank() != 4) throw InputError("BatchNorm2d: input " + shape_str(x.shape()) + " should be (N, C, H, W)");
  return normalize(x);
}

Tensor BatchNorm2d::forward_relu(const Tensor& x) {
  if (x.rank() != 4) throw InputError("BatchNorm2d: input " + shape_str(x.shape()) + " should be (N, C, H, W)");
  return normalize(x, true);
}

Tensor BatchNorm2d::forward_relu_pool2x2(const Tensor& x) {
  if (x.rank() != 4) throw InputError("BatchNorm2d: input " + shape_str(x.shape()) + " should be (N, C, H, W)");
  return normalize(x, true, true);
}

Tensor BatchNorm1d::forward(const Tensor& x) {
  if (x.rank() == 2) return normalize(x);
  if (x.rank() == 3) {  // (N, C, L) is (N, C, L, 1) to the 2-D kernel
    Tensor y = normalize(reshape(x, {x.size(0), x.size(1), x.size(2), 1}));
    return reshape(y, x.shape());
  }
  throw InputError("BatchNorm1d: input " + shape_str(x.shape()) + " should be (N, C) or (N, C, L)");
}

// ---- LayerNorm ----

LayerNorm::LayerNorm(int64_t normalized_size, double eps, bool elementwise_affine, bool bias)
    : normalized_size_(normalized_size), eps_(eps) {
  require_positive(normalized_size, "LayerNorm", "normalized_shape");
  if (elementwise_affine) {
    weight_ = register_parameter("weight", Tensor::ones({normalized_size}));
    if (bias) bias_ = register_parameter("bias", Tensor::zeros({normalized_size}));
  }
}

void LayerNorm::reset_parameters(const InitStreams& streams) {
  if (weight_.defined()) init::ones_(weight_);
  if (bias_.defined()) init::zeros_(bias_);
}

Tensor LayerNorm::forward(const Tensor& x) {
  if (x.rank() < 1 || x.size(-1) != normalized_size_)
    throw InputError("LayerNorm(" + std::to_string(normalized_size_) + "): input " + shape_str(x.shape()) +
                     " should end in " + std::to_string(normalized_size_));
  return layer_norm(x, weight_, bias_, eps_);
}

// ---- Embedding ----

Embedding::Embedding(int64_t num_embeddings, int64_t embedding_dim)
    : num_embeddings_(num_embeddings), embedding_dim_(embedding_dim) {
  require_positive(num_embeddings, "Embedding", "num_embeddings");
  require_positive(embedding_dim, "Embedding", "embedding_dim");
  weight_ = register_parameter("weight", Tensor::empty({num_embeddings, embedding_dim}));
  init_parameters(*this, 0);
}

void Embedding::reset_parameters(const InitStreams& streams) {
  Rng rng = streams.rng(weight_);
  init::normal_(weight_, 0.0, 1.0, rng);
}

Tensor Embedding::forward(const Tensor& indices) { return embedding(indices, weight_); }

// ---- Dropout ----

Dropout::Dropout(double p, int64_t index) : p_(p), index_(index) {
  if (!(p >= 0.0 && p < 1.0)) throw InputError("Dropout: p must be in [0, 1), got " + std::to_string(p));
}

Tensor Dropout::forward(const Tensor& x) {
  if (!is_training() || p_ == 0.0) return x;
  const RandomContext context = random_context();
  return dropout(x, p_, true, context.seed, mix_key(context.step, uint64_t(index_)));
}

void index_dropouts(Module& model) {
  int64_t next = 0;
  for (auto& [name, m] : model.named_modules())
    if (auto* d = dynamic_cast<Dropout*>(m)) d->set_index(next++);
}

// ---- Pools, Flatten ----

namespace {
Pool2dOptions pool_options(int64_t kernel, int64_t stride, int64_t padding, bool count_include_pad) {
  require_positive(kernel, "Pool2d", "kernel_size");
  Pool2dOptions o;
  o.kernel_h = o.kernel_w = kernel;
  o.stride_h = o.stride_w = stride > 0 ? stride : kernel;
  o.padding_h = o.padding_w = padding;
  o.count_include_pad = count_include_pad;
  return o;
}
}  // namespace

MaxPool2d::MaxPool2d(int64_t kernel, int64_t stride, int64_t padding)
    : options_(pool_options(kernel, stride, padding, true)) {}

AvgPool2d::AvgPool2d(int64_t kernel, int64_t stride, int64_t padding, bool count_include_pad)
    : options_(pool_options(kernel, stride, padding, count_include_pad)) {}

Tensor Flatten::forward(const Tensor& x) {
  if (x.rank() == 0) return reshape(x, {1});
  const int64_t start = normalize_axis(start_axis_, x.rank()), end = normalize_axis(end_axis_, x.rank());
  if (start > end)
    throw InputError("Flatten: start axis " + std::to_string(start_axis_) + " after end axis " +
                     std::to_string(end_axis_) + " for input " + shape_str(x.shape()));
  Shape shape(x.shape().begin(), x.shape().begin() + start);
  int64_t merged = 1;
  for (int64_t i = start; i <= end; ++i) merged *= x.shape()[i];
  shape.push_back(merged);
  shape.insert(shape.end(), x.shape().begin() + end + 1, x.shape().end());
  return reshape(x, shape);
}

std::shared_ptr<Module> make_activation(const std::string& name, const std::string& field) {
  if (name == "relu") return std::make_shared<ReLU>();
  if (name == "gelu") return std::make_shared<GELU>(GeluApproximation::none);
  if (name == "gelu_tanh") return std::make_shared<GELU>(GeluApproximation::tanh);
  if (name == "silu") return std::make_shared<SiLU>();
  if (name == "sigmoid") return std::make_shared<Sigmoid>();
  if (name == "tanh") return std::make_shared<Tanh>();
  throw InputError(field + ": unknown activation '" + name +
                   "' (expected one of relu, gelu, gelu_tanh, silu, sigmoid, tanh)");
}

}  // namespace nn
}  // namespace frugal
