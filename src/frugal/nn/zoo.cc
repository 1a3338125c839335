// Zoo models: config validation, module trees named as PyTorch would name them, forwards, FLOPs.
#include "frugal/nn/zoo.h"

#include <algorithm>
#include <cmath>

#include "frugal/autograd/recompute.h"
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

// Per-block flags from a list of block indices; InputError naming the bad entry.
std::vector<bool> recompute_flags(const std::vector<int64_t>& indices, int64_t blocks, const std::string& what) {
  std::vector<bool> flags(size_t(blocks), false);
  for (size_t i = 0; i < indices.size(); ++i) {
    require(indices[i] >= 0 && indices[i] < blocks, "recompute_blocks[" + std::to_string(i) + "] = " +
                                                        std::to_string(indices[i]) + ": expected a " + what +
                                                        " index in [0, " + std::to_string(blocks) + ")");
    flags[size_t(indices[i])] = true;
  }
  return flags;
}

// Runs layers as one recomputed stage (autograd::recompute): their parameters are the stage's,
// their buffers (BatchNorm statistics) its in-place state, and the re-run in backward sees the
// RandomContext of this forward, so every Dropout draws the same mask again.
Tensor forward_recomputed(const std::vector<Module*>& layers, const Tensor& x) {
  std::vector<Tensor> parameters, state;
  for (Module* m : layers) {
    for (const Tensor& p : m->parameters()) parameters.push_back(p);
    for (const auto& [name, b] : m->named_buffers()) state.push_back(b);
  }
  const RandomContext context = random_context();
  // The re-run's output is only backpropagated through: the last layer may skip what only feeds it.
  auto stage = [layers, context](const Tensor& input, bool output_unread) {
    struct Restore {  // the caller's context comes back even if a layer throws
      RandomContext previous = random_context();
      ~Restore() { set_random_context(previous); }
    } restore;
    set_random_context(context);
    return forward_chain(layers, input, output_unread);
  };
  return autograd::recompute([stage](const Tensor& input) { return stage(input, false); }, x, parameters, state,
                             [stage](const Tensor& input) { return stage(input, true); });
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
    block_starts_.push_back(features_->size());
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
  block_starts_.push_back(features_->size());
  recompute_ = recompute_flags(config.recompute_blocks, int64_t(config.channels.size()), "conv block");

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

Tensor Cnn::forward(const Tensor& x) { return classifier_->forward(forward_features(x)); }

Tensor Cnn::forward_features(const Tensor& x) {
  if (x.rank() != 4 || x.size(1) != config_.in_channels || x.size(2) != config_.height ||
      x.size(3) != config_.width)
    throw InputError("Cnn: input " + shape_str(x.shape()) + " should be (N, " + std::to_string(config_.in_channels) +
                     ", " + std::to_string(config_.height) + ", " + std::to_string(config_.width) + ")");
  // Channels-last through the conv blocks (convolution, batch norm and pooling keep it; a copy
  // unless C = 1); the classifier's flatten packs it back into PyTorch's (C, H, W) order.
  Tensor y = x.requires_grad() ? x : to_channels_last(x);  // (N, C, H, W)
  for (size_t b = 0; b + 1 < block_starts_.size(); ++b) {
    std::vector<Module*> layers;
    for (int64_t i = block_starts_[b]; i < block_starts_[b + 1]; ++i) layers.push_back(&(*features_)[i]);
    if (recompute_[b]) {
      y = forward_recomputed(layers, y);
    } else {
      y = forward_chain(layers, y);
    }
  }
  return y;
}

// ---- GPT ----

CausalSelfAttention::CausalSelfAttention(int64_t width, int64_t heads, double dropout, bool bias, int64_t inner_width)
    : width_(width), heads_(heads) {
  const int64_t inner = inner_width > 0 ? inner_width : width;
  qkv_ = register_module("qkv", std::make_shared<Linear>(width, 3 * inner, bias));
  proj_ = register_module("proj", std::make_shared<Linear>(inner, width, bias));
  drop_ = register_module("drop", std::make_shared<Dropout>(dropout));
}

Tensor CausalSelfAttention::forward(const Tensor& x) {
  Tensor y = multi_head_attention(qkv_->forward(x), heads_, /*causal=*/true);  // (B, T, 3C) -> (B, T, C)
  return drop_->forward(proj_->forward(y));
}

GptMlp::GptMlp(int64_t width, double dropout, bool bias, int64_t hidden) {
  const int64_t inner = hidden > 0 ? hidden : 4 * width;
  fc_ = register_module("fc", std::make_shared<Linear>(width, inner, bias));
  proj_ = register_module("proj", std::make_shared<Linear>(inner, width, bias));
  drop_ = register_module("drop", std::make_shared<Dropout>(dropout));
}

Tensor GptMlp::hidden(const Tensor& x) { return gelu(fc_->forward(x), GeluApproximation::tanh); }
Tensor GptMlp::output(const Tensor& h) { return drop_->forward(proj_->forward(h)); }

GptBlock::GptBlock(const GptConfig& config, int64_t index) {
  const int64_t heads = config.heads_of(index), head_width = config.width / config.heads;
  ln1_ = register_module("ln1", std::make_shared<LayerNorm>(config.width, 1e-5, true, config.bias));
  attn_ = register_module("attn", std::make_shared<CausalSelfAttention>(config.width, heads, config.dropout,
                                                                         config.bias, heads * head_width));
  ln2_ = register_module("ln2", std::make_shared<LayerNorm>(config.width, 1e-5, true, config.bias));
  mlp_ = register_module("mlp", std::make_shared<GptMlp>(config.width, config.dropout, config.bias,
                                                         config.mlp_width_of(index)));
}

Tensor GptBlock::run(const Tensor& x, bool output_unread) {
  Tensor h = add(x, attn_->forward(ln1_->forward(x)));  // (B, T, C)
  Tensor a = mlp_->hidden(ln2_->forward(h));             // (B, T, 4C)
  autograd::UnreadOutputs unread(output_unread);
  return add(h, mlp_->output(a));
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
  require(config.block_heads.empty() || int64_t(config.block_heads.size()) == config.layers,
          "model.block_heads must list one head count per block (" + std::to_string(config.layers) + ")");
  require(config.mlp_widths.empty() || int64_t(config.mlp_widths.size()) == config.layers,
          "model.mlp_widths must list one MLP width per block (" + std::to_string(config.layers) + ")");
  require_all_positive(config.block_heads, "model.block_heads");
  require_all_positive(config.mlp_widths, "model.mlp_widths");
  wte_ = register_module("wte", std::make_shared<Embedding>(config.vocab, config.width));
  wpe_ = register_module("wpe", std::make_shared<Embedding>(config.context, config.width));
  drop_ = register_module("drop", std::make_shared<Dropout>(config.dropout));
  blocks_ = register_module("blocks", std::make_shared<Sequential>());
  for (int64_t i = 0; i < config.layers; ++i) blocks_->push_back(std::make_shared<GptBlock>(config, i));
  recompute_ = recompute_flags(config.recompute_blocks, config.layers, "transformer block");
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
  x = drop_->forward(x);
  for (int64_t i = 0; i < blocks_->size(); ++i)
    x = recompute_[size_t(i)] ? forward_recomputed({&(*blocks_)[i]}, x) : (*blocks_)[i].forward(x);
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
  const int64_t C = config.width, T = config.context, D = C / std::max<int64_t>(1, config.heads);
  // Per token and layer: qkv 3CA, proj AC, mlp 2CM weights (A = C, M = 4C unless pruned: 12C^2);
  // attention scores and mixing 2*T*A multiply-adds over the full (unmasked) T x T matrix, as dense
  // kernels compute it.
  int64_t per_token = C * config.vocab;
  for (int64_t b = 0; b < config.layers; ++b) {
    const int64_t A = config.heads_of(b) * D, M = config.mlp_width_of(b);
    per_token += 4 * C * A + 2 * C * M + 2 * T * A;
  }
  return 2 * per_token * T;
}

// ---- Parameters ----

int64_t count_parameters(const MlpConfig& config) {
  int64_t params = 0, width = config.inputs;
  for (int64_t h : config.hidden) {
    params += width * h + h;
    width = h;
  }
  return params + width * config.outputs + config.outputs;
}

int64_t count_parameters(const CnnConfig& config) {
  const bool pooled = config.pool != "none";
  int64_t params = 0, channels = config.in_channels, h = config.height, w = config.width;
  for (int64_t out : config.channels) {
    params += out * channels * config.kernel * config.kernel + out;  // conv weight, bias
    if (config.batch_norm) params += 2 * out;                        // BatchNorm weight, bias
    h = block_out_size(h, config.kernel, pooled);
    w = block_out_size(w, config.kernel, pooled);
    channels = out;
  }
  int64_t width = channels * std::max<int64_t>(h, 0) * std::max<int64_t>(w, 0);
  for (int64_t hidden : config.hidden) {
    params += width * hidden + hidden;
    width = hidden;
  }
  return params + width * config.outputs + config.outputs;
}

int64_t count_parameters(const GptConfig& config) {
  const int64_t C = config.width, b = config.bias ? 1 : 0, D = C / std::max<int64_t>(1, config.heads);
  // Per block: ln1 and ln2 (weight, bias), qkv 3CA (+3A), proj AC (+C), fc CM (+M), proj MC (+C);
  // A = C and M = 4C unless pruned.
  int64_t blocks = 0;
  for (int64_t i = 0; i < config.layers; ++i) {
    const int64_t A = config.heads_of(i) * D, M = config.mlp_width_of(i);
    blocks += 2 * (C + b * C) + 4 * C * A + 2 * C * M + b * (3 * A + M + 2 * C);
  }
  const int64_t head = config.tied_embeddings ? 0 : C * config.vocab;
  return config.vocab * C + config.context * C + blocks + (C + b * C) + head;
}

// ---- Activation memory ----
//
// Each count follows what the ops keep for backward (autograd/ops_*.cc): an op's output stays alive
// as the next op's saved input, so a chain of ops keeps every output; contiguous reshapes and
// flattens are views (no bytes); dropout redraws its mask from the counter-based RNG.

int64_t ActivationEstimate::rerun_bytes(size_t block) const {
  FRUGAL_CHECK(block < block_bytes.size(), "rerun_bytes: block " + std::to_string(block) + " out of range");
  return block_bytes[block] + (block < output_bytes.size() ? 2 * output_bytes[block] : 0);
}

int64_t ActivationEstimate::peak_bytes(const std::vector<int64_t>& recompute) const {
  std::vector<bool> chosen(block_bytes.size(), false);
  for (int64_t b : recompute) {
    FRUGAL_CHECK(b >= 0 && b < int64_t(block_bytes.size()), "peak_bytes: block " + std::to_string(b) + " out of range");
    chosen[size_t(b)] = true;
  }
  int64_t kept = other_bytes, rerun = 0;
  for (size_t i = 0; i < block_bytes.size(); ++i) {
    kept += input_bytes[i];
    if (chosen[i]) rerun = std::max(rerun, rerun_bytes(i));
    else kept += block_bytes[i];
  }
  return kept + rerun;
}

ActivationEstimate estimate_activation_bytes(const GptConfig& config, int64_t batch, bool bf16_mixed) {
  const int64_t B = batch, T = config.context, C = config.width, V = config.vocab;
  const int64_t N = B * T, f32 = 4;  // tokens, bytes per f32
  const bool drop = config.dropout > 0;
  const int64_t layer_norm = N * (C + 2) * f32;  // output, then mean and 1/std per row
  ActivationEstimate e;
  for (int64_t i = 0; i < config.layers; ++i) {
    // A block's attention is A = H * D wide and its MLP M wide (C and 4C unless pruned).
    const int64_t H = config.heads_of(i), A = H * (C / std::max<int64_t>(1, config.heads)), M = config.mlp_width_of(i);
    // Attention (multi_head_attention): up to 64 MiB of scores, the per-head q, k, v (bf16 under
    // bf16-mixed) and the (B*H, T, T) probabilities are kept; beyond, the views path keeps the sliced
    // and transposed heads (6A per token), the tiled kernel's log-sum-exp (H per token) and the heads
    // transposed back (A).
    const bool materialized = B * H * T * T * f32 <= (int64_t(64) << 20);
    const int64_t attention = materialized ? 3 * N * A * (bf16_mixed ? 2 : f32) + B * H * T * T * f32
                                           : N * (7 * A + H) * f32;
    const int64_t attention_out = N * A * f32;
    const int64_t block = layer_norm + 3 * N * A * f32 /*qkv*/ + attention + attention_out + N * C * f32 /*proj*/ +
                          (drop ? N * C * f32 : 0) + N * C * f32 /*residual add*/ + layer_norm + N * M * f32 /*fc*/ +
                          N * M * f32 /*gelu*/ + N * C * f32 /*proj*/ + (drop ? N * C * f32 : 0);
    e.block_bytes.push_back(block);
  }
  e.input_bytes.assign(size_t(config.layers), N * C * f32);
  e.output_bytes.assign(size_t(config.layers), N * C * f32);  // the residual stream
  // Token and position embeddings (+ their sum when dropout follows), the last block's output, the
  // final norm and the logits.
  e.other_bytes = N * C * f32 + T * C * f32 + (drop ? N * C * f32 : 0) + N * C * f32 + layer_norm + N * V * f32;
  return e;
}

ActivationEstimate estimate_activation_bytes(const CnnConfig& config, int64_t batch, bool bf16_mixed) {
  const bool pooled = config.pool != "none";
  const int64_t N = batch, f32 = 4;
  int64_t channels = config.in_channels, h = config.height, w = config.width;
  ActivationEstimate e;
  for (int64_t out : config.channels) {
    const int64_t in_values = N * channels * h * w, conv_values = N * out * h * w;  // padding keeps H, W
    const int64_t pool_values = N * out * (h / 2) * (w / 2);
    e.input_bytes.push_back(in_values * f32);  // block 0: the data batch itself
    if (e.block_bytes.empty() && config.batch_norm && config.pool == "max" &&
        conv2d_batch_norm_relu_max_pool2x2_runs({N, channels, h, w}, out, config.kernel)) {
      // The first block as one op (forward_chain): the argmax bytes, batch mean and rstd, the
      // input's moments (doubles) and, in bf16-mixed, the input and weight rounded (kept f32).
      const int64_t taps = channels * config.kernel * config.kernel;
      int64_t block = pool_values + 2 * out * f32 + (channels + taps + taps * taps) * 8;
      if (bf16_mixed) block += (in_values + out * taps) * f32;
      e.block_bytes.push_back(block);
      e.output_bytes.push_back(pool_values * f32);
      h = block_out_size(h, config.kernel, true), w = block_out_size(w, config.kernel, true), channels = out;
      continue;
    }
    // The convolution's output, kept by batch norm: in bf16-mixed a bf16 tensor when batch norm,
    // ReLU and max pooling follow (conv2d's bf16_output, which their fused op reads).
    const bool bf16_output = bf16_mixed && config.batch_norm && config.pool == "max";
    int64_t block = conv_values * (bf16_output ? 2 : f32);
    // bf16-mixed conv2d keeps its input and weight rounded to bf16 for backward.
    if (bf16_mixed) block += (in_values + out * channels * config.kernel * config.kernel) * 2;
    // Batch norm, ReLU and max pooling run as one op (forward_chain): it keeps the batch mean and
    // variance and the pooled output (the next block's input); batch norm and ReLU alone keep their
    // full-size output. Without batch norm, the ReLU output the pool reads.
    if (config.batch_norm) block += 2 * out * f32 + (config.pool == "max" ? 0 : conv_values * f32);
    else if (pooled) block += conv_values * f32;
    if (config.pool == "max") block += pool_values;  // the u8 argmax workspace (2x2 kernel: a byte per output)
    e.block_bytes.push_back(block);
    e.output_bytes.push_back((pooled ? pool_values : conv_values) * f32);
    h = block_out_size(h, config.kernel, pooled);
    w = block_out_size(w, config.kernel, pooled);
    channels = out;
  }
  int64_t width = channels * h * w;
  // The last block's output, and its packed copy when flattening a channels-last tensor.
  int64_t other = N * width * f32 * (channels > 1 && h * w > 1 ? 2 : 1);
  for (int64_t hidden : config.hidden) {
    other += N * hidden * f32 * (config.dropout > 0 ? 2 : 1);  // linear_relu's output, dropout's
    if (bf16_mixed) other += (N * width + hidden * width) * 2;  // linear's input and weight rounded to bf16
    width = hidden;
  }
  if (bf16_mixed) other += (N * width + config.outputs * width) * 2;
  e.other_bytes = other + N * config.outputs * f32;
  return e;
}

namespace {
// Candidates in the order the choices below take them: largest block_bytes first, then index.
std::vector<size_t> by_size(const ActivationEstimate& estimate) {
  std::vector<size_t> order(estimate.block_bytes.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return estimate.block_bytes[a] > estimate.block_bytes[b]; });
  return order;
}

std::vector<int64_t> sorted(std::vector<int64_t> blocks) {
  std::sort(blocks.begin(), blocks.end());
  return blocks;
}
}  // namespace

// The peak is kept - (the chosen blocks' bytes) + (the largest re-run among them). Fixing which
// block m has the largest re-run, every block whose re-run is no larger may join without raising
// that term, and each lowers the kept part by its bytes: so for each m the best k-block choice is
// m plus the k - 1 largest such blocks. Trying every m is exact, in O(n^2).
std::vector<int64_t> choose_recompute_blocks(const ActivationEstimate& estimate, int64_t limit, bool* fits) {
  if (estimate.peak_bytes({}) <= limit) {
    if (fits) *fits = true;
    return {};
  }
  const std::vector<size_t> order = by_size(estimate);
  std::vector<int64_t> best;
  int64_t best_peak = 0;
  for (size_t top : order) {
    std::vector<int64_t> chosen{int64_t(top)};
    for (size_t k = 0;; ++k) {
      const int64_t peak = estimate.peak_bytes(chosen);
      if (peak <= limit) {
        if (best.empty() || chosen.size() < best.size() || (chosen.size() == best.size() && peak < best_peak))
          best = chosen, best_peak = peak;
        break;
      }
      while (k < order.size() && (order[k] == top || estimate.rerun_bytes(order[k]) > estimate.rerun_bytes(top))) ++k;
      if (k == order.size()) break;
      chosen.push_back(int64_t(order[k]));
    }
  }
  if (fits) *fits = !best.empty();
  return best.empty() ? lowest_peak_blocks(estimate) : sorted(best);
}

std::vector<int64_t> lowest_peak_blocks(const ActivationEstimate& estimate) {
  const std::vector<size_t> order = by_size(estimate);
  std::vector<int64_t> best;
  int64_t best_peak = estimate.peak_bytes({});
  for (size_t top : order) {
    std::vector<int64_t> chosen;  // every block (with bytes to save) whose re-run is no larger
    for (size_t b : order)
      if (b == top || (estimate.block_bytes[b] > 0 && estimate.rerun_bytes(b) <= estimate.rerun_bytes(top)))
        chosen.push_back(int64_t(b));
    const int64_t peak = estimate.peak_bytes(chosen);
    if (peak < best_peak || (peak == best_peak && !best.empty() && chosen.size() < best.size()))
      best = chosen, best_peak = peak;
  }
  return sorted(best);
}

}  // namespace nn
}  // namespace frugal
