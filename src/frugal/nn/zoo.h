// The model zoo: MLP, CNN and GPT built from plain config structs (the job file's [model] table),
// named as the equivalent PyTorch modules so state dicts and golden data line up. Limits: GPT
// attention has no dropout on the attention probabilities (dropout on embeddings and residuals).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "frugal/nn/layers.h"
#include "frugal/nn/module.h"
#include "frugal/nn/sequential.h"

namespace frugal {
namespace nn {

struct MlpConfig {
  int64_t inputs = 0;
  std::vector<int64_t> hidden;
  int64_t outputs = 0;
  std::string activation = "relu";  // see make_activation
  double dropout = 0;
};

struct CnnConfig {
  int64_t in_channels = 1, height = 28, width = 28;
  std::vector<int64_t> channels;  // one conv block per entry
  int64_t kernel = 3;
  bool batch_norm = true;
  std::string pool = "max";  // "max", "avg" or "none" (2x2, stride 2, after each block)
  double dropout = 0;
  std::vector<int64_t> hidden;  // classifier hidden widths
  int64_t outputs = 0;
  // Conv blocks (0-based) whose activations are recomputed in backward instead of kept
  // (autograd/recompute.h); gradients are bit-identical either way.
  std::vector<int64_t> recompute_blocks = {};
};

struct GptConfig {
  int64_t vocab = 0, context = 0, layers = 0, heads = 0, width = 0;
  double dropout = 0;
  bool tied_embeddings = true;  // head shares wte.weight (stored once, as wte.weight)
  bool bias = true;             // biases in Linear and LayerNorm layers
  // Transformer blocks (0-based) whose activations are recomputed in backward instead of kept
  // (autograd/recompute.h); gradients are bit-identical either way.
  std::vector<int64_t> recompute_blocks = {};
  // Per-block widths of a pruned (compacted) GPT; empty = every block uniform as above. A block's
  // heads keep the head width D = width / heads, so its attention is heads_b * D wide; its MLP is
  // mlp_widths[b] wide (default 4 * width).
  std::vector<int64_t> block_heads = {}, mlp_widths = {};
  int64_t heads_of(int64_t block) const { return block_heads.empty() ? heads : block_heads[size_t(block)]; }
  int64_t mlp_width_of(int64_t block) const { return mlp_widths.empty() ? 4 * width : mlp_widths[size_t(block)]; }
};

// x (N, ...) -> logits (N, outputs); all layers in `layers`: Flatten, (Linear, act, [Dropout])..., Linear.
class Mlp : public Module {
 public:
  explicit Mlp(const MlpConfig& config);
  Tensor forward(const Tensor& x) override { return layers_->forward(x); }
  std::string type_name() const override { return "Mlp"; }

 private:
  std::shared_ptr<Sequential> layers_;
};

// x (N, C, H, W) -> logits (N, outputs). `features`: per block Conv2d(k, padding k/2), [BatchNorm2d],
// ReLU, [2x2 pool]; `classifier`: Flatten, (Linear, ReLU, [Dropout])..., Linear. A block listed in
// recompute_blocks runs as one recomputed stage (its BatchNorm statistics are updated once).
class Cnn : public Module {
 public:
  explicit Cnn(const CnnConfig& config);
  Tensor forward(const Tensor& x) override;
  // The conv blocks alone (channels-last inside), what forward hands the classifier.
  Tensor forward_features(const Tensor& x);
  std::string type_name() const override { return "Cnn"; }

 private:
  CnnConfig config_;
  std::shared_ptr<Sequential> features_, classifier_;
  std::vector<int64_t> block_starts_;  // index in features_ of each block's conv, then features_->size()
  std::vector<bool> recompute_;        // per conv block
};

// Causal self-attention: `qkv` Linear(C, 3A), `heads` heads of width D = A / heads, `proj` Linear(A, C);
// A = C unless a pruned model gives its inner width (inner_width > 0).
class CausalSelfAttention : public Module {
 public:
  CausalSelfAttention(int64_t width, int64_t heads, double dropout, bool bias, int64_t inner_width = 0);
  Tensor forward(const Tensor& x) override;  // (B, T, C) -> (B, T, C)
  std::string type_name() const override { return "CausalSelfAttention"; }
  const Linear& qkv() const { return *qkv_; }
  const Linear& proj() const { return *proj_; }

 private:
  int64_t width_, heads_;
  std::shared_ptr<Linear> qkv_, proj_;
  std::shared_ptr<Dropout> drop_;
};

// fc Linear(C, M), GELU (tanh form, as GPT-2), proj Linear(M, C); M = 4C unless given (hidden > 0).
class GptMlp : public Module {
 public:
  GptMlp(int64_t width, double dropout, bool bias, int64_t hidden = 0);
  Tensor forward(const Tensor& x) override { return output(hidden(x)); }  // (B, T, C) -> (B, T, C)
  Tensor hidden(const Tensor& x);  // gelu(fc(x)): (B, T, C) -> (B, T, 4C)
  Tensor output(const Tensor& h);  // drop(proj(h)): (B, T, 4C) -> (B, T, C)
  std::string type_name() const override { return "GptMlp"; }
  const Linear& proj() const { return *proj_; }

 private:
  std::shared_ptr<Linear> fc_, proj_;
  std::shared_ptr<Dropout> drop_;
};

// Pre-norm transformer block: x + attn(ln1(x)), then x + mlp(ln2(x)).
class GptBlock : public Module {
 public:
  explicit GptBlock(const GptConfig& config, int64_t index = 0);  // index: its per-block widths
  Tensor forward(const Tensor& x) override { return run(x, false); }  // (B, T, C) -> (B, T, C)
  // The MLP's projection, its dropout and the residual add only recorded (their values feed
  // nothing but the output): a quarter of the block's matmul FLOPs left out of a re-run.
  Tensor forward_output_unread(const Tensor& x) override { return run(x, true); }
  std::string type_name() const override { return "GptBlock"; }

 private:
  Tensor run(const Tensor& x, bool output_unread);
  std::shared_ptr<LayerNorm> ln1_, ln2_;
  std::shared_ptr<CausalSelfAttention> attn_;
  std::shared_ptr<GptMlp> mlp_;
};

// Token ids (B, T) integer, T <= context -> logits (B, T, vocab).
class Gpt : public Module {
 public:
  explicit Gpt(const GptConfig& config);
  Tensor forward(const Tensor& ids) override;
  std::string type_name() const override { return "Gpt"; }
  // GPT-2's scheme: Linear/Embedding weights N(0, 0.02), biases 0, residual projections
  // (attn.proj, mlp.proj) N(0, 0.02 / sqrt(2 * layers)), LayerNorms 1 / 0.
  void reset_parameters(const InitStreams& streams) override;
  const GptConfig& config() const { return config_; }

 private:
  GptConfig config_;
  std::shared_ptr<Embedding> wte_, wpe_;
  std::shared_ptr<Dropout> drop_;
  std::shared_ptr<Sequential> blocks_;
  std::shared_ptr<LayerNorm> ln_f_;
  std::shared_ptr<Linear> head_;  // null when tied to wte
  std::vector<bool> recompute_;   // per block
};

// Built, Dropouts numbered, and initialized from `seed`. Bad configs throw InputError naming the field.
std::shared_ptr<Module> make_mlp(const MlpConfig& config, uint64_t seed = 0);
std::shared_ptr<Module> make_cnn(const CnnConfig& config, uint64_t seed = 0);
std::shared_ptr<Module> make_gpt(const GptConfig& config, uint64_t seed = 0);

// Forward FLOPs for one sample (one sequence of `context` tokens for GPT), counting a multiply-add
// as 2 FLOPs over matmuls, convolutions and attention; elementwise work is left out. A training
// step costs about 3x this (backward = 2x forward).
int64_t count_flops_per_sample(const MlpConfig& config);
int64_t count_flops_per_sample(const CnnConfig& config);
int64_t count_flops_per_sample(const GptConfig& config);

// Parameters (elements) of the model a config builds, counted from the config alone, so that the
// memory a model needs can be checked before anything is allocated. Equals num_parameters() of the
// built model.
int64_t count_parameters(const MlpConfig& config);
int64_t count_parameters(const CnnConfig& config);
int64_t count_parameters(const GptConfig& config);

// Activation memory of one training micro-batch of `batch` samples, estimated from shapes: the
// bytes the autograd graph keeps alive from the forward until backward ends (f32 values, 4 bytes;
// views that share storage count once; dropout masks are redrawn, not stored). Per block (GPT:
// transformer block, CNN: conv block) what it saves apart from its input, plus each block's input;
// `other_bytes` is the rest of the model (embeddings, final norm, logits; CNN classifier) and the last
// block's output. Gradients and the short-lived buffers of each backward rule are left out. The
// loss's own buffers are left out too (a few bytes per sample).
struct ActivationEstimate {
  std::vector<int64_t> block_bytes;   // saved inside block i, its input excluded
  std::vector<int64_t> input_bytes;   // block i's input (kept by a recomputed block too)
  std::vector<int64_t> output_bytes;  // block i's output (empty: none counted)
  int64_t other_bytes = 0;
  // What re-running block i in backward holds at once: its activations, and twice its output
  // (the re-run's own output, and the gradient of the output, which the plain graph frees after
  // the block's last op but the re-run holds through the block's whole backward).
  int64_t rerun_bytes(size_t block) const;
  // Peak with the blocks in `recompute` re-run in backward: everything kept, plus the largest
  // re-run (rerun_bytes). An upper bound in time: it assumes nothing kept is freed before the
  // re-run, which is true for the first block backward reaches.
  int64_t peak_bytes(const std::vector<int64_t>& recompute = {}) const;
};
// bf16_mixed: what bf16-mixed precision keeps in bf16 instead (attention's per-head q, k, v) or in
// addition (conv2d's rounded input and weight); linear rounds again in backward and keeps nothing.
ActivationEstimate estimate_activation_bytes(const GptConfig& config, int64_t batch, bool bf16_mixed = false);
ActivationEstimate estimate_activation_bytes(const CnnConfig& config, int64_t batch, bool bf16_mixed = false);

// The fewest blocks whose recomputation brings estimate.peak_bytes within `limit` (ties: the lower
// peak, then lower indices), exact for this cost model. Returned in increasing index order. When
// no choice fits, returns lowest_peak_blocks and sets *fits = false.
std::vector<int64_t> choose_recompute_blocks(const ActivationEstimate& estimate, int64_t limit, bool* fits);

// The blocks whose recomputation gives the lowest estimated peak (ties: fewer blocks), empty when
// recomputing any would raise it: recomputation never costs the memory it exists to save.
std::vector<int64_t> lowest_peak_blocks(const ActivationEstimate& estimate);

}  // namespace nn
}  // namespace frugal
