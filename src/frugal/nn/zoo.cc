// Zoo models: config validation, module trees named as PyTorch would name them, forwards, FLOPs.
#include "frugal/nn/zoo.h"

#include <cmath>

#include "frugal/nn/init.h"

namespace frugal {
namespace nn {

namespace {
void require(bool ok, const std::string& message) {
  if (!ok) throw InputError(message);
}

void require_positive(int64_t value, const std::string& field) {
  require(value > 0, field + " must be positive, got " + std::to_string(value));
}

void require_dropout(double p, const std::string& field) {
  require(p >= 0.0 && p < 1.0, field + " must be in [0, 1), got " + std::to_string(p));
}

void require_all_positive(const std::vector<int64_t>& values, const std::string& field) {
  for (size_t i = 0; i < values.size(); ++i) require_positive(values[i], field + "[" + std::to_string(i) + "]");
}

// Spatial size after one CNN block: conv with padding k/2 and stride 1, then an optional 2x2 pool.
int64_t block_out_size(int64_t size, int64_t kernel, bool pooled) {
  int64_t conv = size + 2 * (kernel / 2) - kernel + 1;
  return pooled ? conv / 2 : conv;
}

template <class M>
std::shared_ptr<Module> finish(std::shared_ptr<M> model, uint64_t seed) {
  index_dropouts(*model);
  init_parameters(*model, seed);
  return model;
}
}  // namespace

// ---- MLP ----

Mlp::Mlp(const MlpConfig& config) {
  require_positive(config.inputs, "model.inputs");
  require_positive(config.outputs, "model.outputs");
  require_all_positive(config.hidden, "model.hidden");
  require_dropout(config.dropout, "model.dropout");
  make_activation(config.activation, "model.activation");  // validates before building anything
  layers_ = register_module("layers", std::make_shared<Sequential>());
  layers_->push_back(std::make_shared<Flatten>());
  int64_t width = config.inputs;
  for (int64_t h : config.hidden) {
    layers_->push_back(std::make_shared<Linear>(width, h));
    layers_->push_back(make_activation(config.activation, "model.activation"));
    if (config.dropout > 0) layers_->push_back(std::make_shared<Dropout>(config.dropout));
    width = h;
  }
  layers_->push_back(std::make_shared<Linear>(width, config.outputs));
}

// ---- CNN ----

Cnn::Cnn(const CnnConfig& config) : config_(config) {
  require_positive(config.in_channels, "model.in_channels");
  require_positive(config.height, "model.height");
  require_positive(config.width, "model.width");
  require_positive(config.kernel, "model.kernel");
  require_positive(config.outputs, "model.outputs");
  require(!config.channels.empty(), "model.channels must list at least one conv block");
  require_all_positive(config.channels, "model.channels");
  require_all_positive(config.hidden, "model.hidden");
  require_dropout(config.dropout, "model.dropout");
  require(config.pool == "max" || config.pool == "avg" || config.pool == "none",
          "model.pool: unknown pool '" + config.pool + "' (expected max, avg or none)");
  const bool pooled = config.pool != "none";

  features_ = register_module("features", std::make_shared<Sequential>());
  int64_t channels = config.in_channels, h = config.height, w = config.width;
  for (int64_t out : config.channels) {
    Conv2dOptions conv;
    conv.padding_h = conv.padding_w = config.kernel / 2;
    features_->push_back(std::make_shared<Conv2d>(channels, out, config.kernel, conv));
    if (config.batch_norm) features_->push_back(std::make_shared<BatchNorm2d>(out));
    features_->push_back(std::make_shared<ReLU>());
    if (config.pool == "max") features_->push_back(std::make_shared<MaxPool2d>(2));
    if (config.pool == "avg") features_->push_back(std::make_shared<AvgPool2d>(2));
    h = block_out_size(h, config.kernel, pooled);
    w = block_out_size(w, config.kernel, pooled);
    require(h > 0 && w > 0, "model: a " + std::to_string(config.height) + "x" + std::to_string(config.width) +
                                " input shrinks to nothing after " + std::to_string(features_->size()) +
                                " layers; use fewer conv blocks or pool = \"none\"");
    channels = out;
  }

  classifier_ = register_module("classifier", std::make_shared<Sequential>());
  classifier_->push_back(std::make_shared<Flatten>());
  int64_t width = channels * h * w;
  for (int64_t hidden : config.hidden) {
    classifier_->push_back(std::make_shared<Linear>(width, hidden));
    classifier_->push_back(std::make_shared<ReLU>());
    if (config.dropout > 0) classifier_->push_back(std::make_shared<Dropout>(config.dropout));
    width = hidden;
  }
  classifier_->push_back(std::make_shared<Linear>(width, config.outputs));
}

Tensor Cnn::forward(const Tensor& x) {
  if (x.rank() != 4 || x.size(1) != config_.in_channels || x.size(2) != config_.height ||
      x.size(3) != config_.width)
    throw InputError("Cnn: input " + shape_str(x.shape()) + " should be (N, " + std::to_string(config_.in_channels) +
                     ", " + std::to_string(config_.height) + ", " + std::to_string(config_.width) + ")");
  return classifier_->forward(features_->forward(x));
}

// ---- GPT ----

CausalSelfAttention::CausalSelfAttention(int64_t width, int64_t heads, double dropout, bool bias)
    : width_(width), heads_(heads) {
  qkv_ = register_module("qkv", std::make_shared<Linear>(width, 3 * width, bias));
  proj_ = register_module("proj", std::make_shared<Linear>(width, width, bias));
  drop_ = register_module("drop", std::make_shared<Dropout>(dropout));
}

Tensor CausalSelfAttention::forward(const Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1), C = width_, H = heads_, D = C / H;
  Tensor qkv = qkv_->forward(x);  // (B, T, 3C)
  auto head_view = [&](int64_t part) {  // (B, T, C) slice -> (B, H, T, D)
    return transpose(reshape(slice(qkv, 2, part * C, (part + 1) * C), {B, T, H, D}), 1, 2);
  };
  Tensor y = scaled_dot_product_attention(head_view(0), head_view(1), head_view(2), /*causal=*/true);  // (B, H, T, D)
  y = reshape(transpose(y, 1, 2), {B, T, C});
  return drop_->forward(proj_->forward(y));
}

GptMlp::GptMlp(int64_t width, double dropout, bool bias) {
  fc_ = register_module("fc", std::make_shared<Linear>(width, 4 * width, bias));
  proj_ = register_module("proj", std::make_shared<Linear>(4 * width, width, bias));
  drop_ = register_module("drop", std::make_shared<Dropout>(dropout));
}

Tensor GptMlp::forward(const Tensor& x) {
  Tensor h = gelu(fc_->forward(x), GeluApproximation::tanh);  // (B, T, 4C)
  return drop_->forward(proj_->forward(h));
}

GptBlock::GptBlock(const GptConfig& config) {
  ln1_ = register_module("ln1", std::make_shared<LayerNorm>(config.width, 1e-5, true, config.bias));
  attn_ = register_module("attn", std::make_shared<CausalSelfAttention>(config.width, config.heads, config.dropout,
                                                                         config.bias));
  ln2_ = register_module("ln2", std::make_shared<LayerNorm>(config.width, 1e-5, true, config.bias));
  mlp_ = register_module("mlp", std::make_shared<GptMlp>(config.width, config.dropout, config.bias));
}

Tensor GptBlock::forward(const Tensor& x) {
  Tensor h = add(x, attn_->forward(ln1_->forward(x)));  // (B, T, C)
  return add(h, mlp_->forward(ln2_->forward(h)));
}

Gpt::Gpt(const GptConfig& config) : config_(config) {
  require_positive(config.vocab, "model.vocab");
  require_positive(config.context, "model.context");
  require_positive(config.layers, "model.layers");
  require_positive(config.heads, "model.heads");
  require_positive(config.width, "model.width");
  require(config.width % config.heads == 0, "model.width " + std::to_string(config.width) +
                                                " must be a multiple of model.heads " + std::to_string(config.heads));
  require_dropout(config.dropout, "model.dropout");
  wte_ = register_module("wte", std::make_shared<Embedding>(config.vocab, config.width));
  wpe_ = register_module("wpe", std::make_shared<Embedding>(config.context, config.width));
  drop_ = register_module("drop", std::make_shared<Dropout>(config.dropout));
  blocks_ = register_module("blocks", std::make_shared<Sequential>());
  for (int64_t i = 0; i < config.layers; ++i) blocks_->push_back(std::make_shared<GptBlock>(config));
  ln_f_ = register_module("ln_f", std::make_shared<LayerNorm>(config.width, 1e-5, true, config.bias));
  if (!config.tied_embeddings) head_ = register_module("head", std::make_shared<Linear>(config.width, config.vocab, false));
}

void Gpt::reset_parameters(const InitStreams& streams) {
  const double std_base = 0.02, std_residual = 0.02 / std::sqrt(2.0 * double(config_.layers));
  for (auto& [name, m] : named_modules()) {
    if (auto* linear = dynamic_cast<Linear*>(m)) {
      const bool residual = name.size() >= 5 && name.compare(name.size() - 5, 5, ".proj") == 0;
      Tensor weight = linear->weight();
      Rng rng = streams.rng(weight);
      init::normal_(weight, 0.0, residual ? std_residual : std_base, rng);
      if (linear->bias().defined()) {
        Tensor bias = linear->bias();
        init::zeros_(bias);
      }
    } else if (auto* embedding = dynamic_cast<Embedding*>(m)) {
      Tensor weight = embedding->weight();
      Rng rng = streams.rng(weight);
      init::normal_(weight, 0.0, std_base, rng);
    }
  }
}

Tensor Gpt::forward(const Tensor& ids) {
  if (ids.rank() != 2 || dtype_is_float(ids.dtype()))
    throw InputError("Gpt: input should be integer token ids (B, T), got " + std::string(dtype_name(ids.dtype())) +
                     " " + shape_str(ids.shape()));
  const int64_t T = ids.size(1);
  if (T < 1 || T > config_.context)
    throw InputError("Gpt: sequence length " + std::to_string(T) + " must be in [1, context = " +
                     std::to_string(config_.context) + "]");
  Tensor positions = Tensor::arange(T, DType::i64);                       // (T)
  Tensor x = add(wte_->forward(ids), wpe_->forward(positions));          // (B, T, C)
  x = blocks_->forward(drop_->forward(x));
  x = ln_f_->forward(x);
  return head_ ? head_->forward(x) : linear(x, wte_->weight());          // (B, T, V)
}

// ---- Builders ----

std::shared_ptr<Module> make_mlp(const MlpConfig& config, uint64_t seed) {
  return finish(std::make_shared<Mlp>(config), seed);
}
std::shared_ptr<Module> make_cnn(const CnnConfig& config, uint64_t seed) {
  return finish(std::make_shared<Cnn>(config), seed);
}
std::shared_ptr<Module> make_gpt(const GptConfig& config, uint64_t seed) {
  return finish(std::make_shared<Gpt>(config), seed);
}

// ---- FLOPs ----

int64_t count_flops_per_sample(const MlpConfig& config) {
  int64_t flops = 0, width = config.inputs;
  for (int64_t h : config.hidden) {
    flops += 2 * width * h;
    width = h;
  }
  return flops + 2 * width * config.outputs;
}

int64_t count_flops_per_sample(const CnnConfig& config) {
  const bool pooled = config.pool != "none";
  int64_t flops = 0, channels = config.in_channels, h = config.height, w = config.width;
  for (int64_t out : config.channels) {
    const int64_t conv_h = h + 2 * (config.kernel / 2) - config.kernel + 1;
    const int64_t conv_w = w + 2 * (config.kernel / 2) - config.kernel + 1;
    flops += 2 * conv_h * conv_w * out * channels * config.kernel * config.kernel;
    h = block_out_size(h, config.kernel, pooled);
    w = block_out_size(w, config.kernel, pooled);
    channels = out;
  }
  int64_t width = channels * h * w;
  for (int64_t hidden : config.hidden) {
    flops += 2 * width * hidden;
    width = hidden;
  }
  return flops + 2 * width * config.outputs;
}

int64_t count_flops_per_sample(const GptConfig& config) {
  const int64_t C = config.width, T = config.context, L = config.layers;
  // Per token and layer: qkv 3C^2, proj C^2, mlp 8C^2 weights; attention scores and mixing 2*T*C
  // multiply-adds over the full (unmasked) T x T matrix, as dense kernels compute it.
  const int64_t per_token = L * (12 * C * C + 2 * T * C) + C * config.vocab;
  return 2 * per_token * T;
}

}  // namespace nn
}  // namespace frugal
