// The FLOPs a training step of a zoo model counts (autograd/flops.h) against the model's formula
// (nn::count_flops_per_sample): the forward of an MLP, a CNN (with and without the fused first
// block, fp32 and bf16-mixed) and a GPT (per sequence of `context` tokens, materialized and tiled
// attention) equals the formula x batch; backward is 2x forward minus the first layer's input
// gradient, which is never computed; frozen layers (requires_grad false) drop their weight
// gradients and the input gradients below the lowest trainable layer; recomputed blocks add their
// re-run to backward.
#include <gtest/gtest.h>

#include <string>

#include "frugal/autograd/flops.h"
#include "frugal/autograd/precision.h"
#include "frugal/kernels/kernels.h"
#include "frugal/nn/nn.h"
#include "test_util.h"

namespace frugal {
namespace {
using autograd::FlopCounter;
using testing::random_tensor;

struct Counted {
  double forward = 0, backward = 0;
};

// One training micro-batch as the loop runs it: forward, cross entropy, backward.
Counted train_step(nn::Module& model, const Tensor& inputs, const Tensor& targets) {
  FlopCounter counter;
  Tensor logits = model(inputs);
  Tensor loss = logits.rank() == 3 ? cross_entropy(reshape(logits, {-1, logits.size(-1)}), reshape(targets, {-1}))
                                   : cross_entropy(logits, targets);
  const double forward = counter.forward();
  autograd::backward(loss);
  EXPECT_EQ(counter.forward(), forward);
  return {forward, counter.backward()};
}

Tensor labels(int64_t n, int64_t classes, uint64_t seed) {
  std::vector<int64_t> v;
  for (double x : random_tensor({n}, seed, DType::f64, 0.0, double(classes)).to_vector<double>()) v.push_back(int64_t(x));
  return Tensor::from_vector(v, {n});
}

void freeze(nn::Module& model, const std::string& prefix) {
  int frozen = 0;
  for (auto& [name, p] : model.named_parameters())
    if (name.rfind(prefix, 0) == 0) {
      Tensor handle = p;
      handle.set_requires_grad(false);
      ++frozen;
    }
  ASSERT_EQ(frozen, 2) << prefix;  // weight and bias
}

// ---- MLP ----

const nn::MlpConfig kMlp{20, {16, 12}, 5};  // Linears 20 -> 16 -> 12 -> 5 at layers.1, 3, 5
constexpr int64_t kBatch = 8;

double dense(int64_t in, int64_t out) { return 2.0 * double(kBatch * in * out); }  // one product over the batch

TEST(TrainingFlops, MlpForwardIsTheFormulaAndBackwardSkipsTheFirstInputGradient) {
  for (const char* activation : {"relu", "gelu"}) {
    for (bool reference : {false, true}) {
      kernels::ReferenceModeGuard guard(reference);
      nn::MlpConfig config = kMlp;
      config.activation = activation;
      auto model = nn::make_mlp(config, 1);
      const Counted c = train_step(*model, random_tensor({kBatch, 20}, 2), labels(kBatch, 5, 3));
      const double forward = double(nn::count_flops_per_sample(config)) * kBatch;
      EXPECT_EQ(c.forward, forward) << activation;
      // Every weight gradient and every input gradient but the first Linear's (the data needs none).
      EXPECT_EQ(c.backward, 2 * forward - dense(20, 16)) << activation;
    }
  }
}

TEST(TrainingFlops, FrozenLayersSkipTheirWeightGradientsAndTheInputGradientsBelowThem) {
  const Tensor x = random_tensor({kBatch, 20}, 2), y = labels(kBatch, 5, 3);
  const double forward = double(nn::count_flops_per_sample(kMlp)) * kBatch;
  {  // the first Linear's weight frozen, its bias trained: exactly that weight's gradient less
    auto model = nn::make_mlp(kMlp, 1);
    for (auto& [name, p] : model->named_parameters())
      if (name == "layers.1.weight") {
        Tensor handle = p;
        handle.set_requires_grad(false);
      }
    const Counted trained = train_step(*nn::make_mlp(kMlp, 1), x, y);
    const Counted c = train_step(*model, x, y);
    EXPECT_EQ(c.forward, forward);
    EXPECT_EQ(c.backward, trained.backward - dense(20, 16));
    EXPECT_EQ(c.backward, dense(16, 12) + dense(12, 5) + dense(16, 12) + dense(12, 5));  // dW2, dW3; dX2, dX3
  }
  {  // the first Linear frozen: the lowest trainable one is the second, whose input needs nothing
    auto model = nn::make_mlp(kMlp, 1);
    freeze(*model, "layers.1.");
    const Counted c = train_step(*model, x, y);
    EXPECT_EQ(c.forward, forward);
    EXPECT_EQ(c.backward, dense(16, 12) + 2 * dense(12, 5));  // dW2; dW3, dX3
  }
  {  // the first two frozen: only the last weight gradient
    auto model = nn::make_mlp(kMlp, 1);
    freeze(*model, "layers.1.");
    freeze(*model, "layers.3.");
    const Counted c = train_step(*model, x, y);
    EXPECT_EQ(c.forward, forward);
    EXPECT_EQ(c.backward, dense(12, 5));
  }
  {  // the middle one frozen: its weight gradient goes, its input gradient stays (the first trains)
    auto model = nn::make_mlp(kMlp, 1);
    freeze(*model, "layers.3.");
    const Counted c = train_step(*model, x, y);
    EXPECT_EQ(c.backward, dense(20, 16) + dense(16, 12) + 2 * dense(12, 5));  // dW1; dX2; dW3, dX3
  }
  {  // everything frozen: a forward and no backward at all (the loss needs no gradient)
    auto model = nn::make_mlp(kMlp, 1);
    for (const char* prefix : {"layers.1.", "layers.3.", "layers.5."}) freeze(*model, prefix);
    FlopCounter counter;
    Tensor loss = cross_entropy((*model)(x), y);
    EXPECT_FALSE(loss.requires_grad());
    EXPECT_EQ(counter.forward(), forward);
    EXPECT_EQ(counter.backward(), 0.0);
  }
}

// ---- CNN ----

nn::CnnConfig small_cnn() {
  nn::CnnConfig c;
  c.in_channels = 1, c.height = 12, c.width = 10;
  c.channels = {16, 32};
  c.kernel = 3;
  c.hidden = {24};
  c.outputs = 5;
  return c;
}

TEST(TrainingFlops, CnnForwardIsTheFormulaAndBackwardSkipsTheFirstInputGradient) {
  const nn::CnnConfig config = small_cnn();
  const int64_t N = 4;
  const double first_conv = 2.0 * double(N * 16 * 12 * 10 * 1 * 3 * 3);  // the first block's direct convolution
  const double forward = double(nn::count_flops_per_sample(config)) * N;
  // Fast kernels (the fused first block where the build has it, Winograd for the second block's
  // 16 -> 32 3x3), reference kernels (plain convolutions), and bf16-mixed (bf16 conv outputs).
  struct Path {
    const char* name;
    bool reference;
    Precision precision;
  };
  for (const Path& path : {Path{"fast", false, Precision::fp32}, Path{"reference", true, Precision::fp32},
                           Path{"bf16-mixed", false, Precision::bf16_mixed}}) {
    kernels::ReferenceModeGuard guard(path.reference);
    PrecisionGuard precision(path.precision);
    for (bool recompute : {false, true}) {
      nn::CnnConfig c = config;
      if (recompute) c.recompute_blocks = {0, 1};
      auto model = nn::make_cnn(c, 1);
      const Counted got = train_step(*model, random_tensor({N, 1, 12, 10}, 5), labels(N, 5, 6));
      const std::string what = std::string(path.name) + (recompute ? " recomputed" : "");
      EXPECT_EQ(got.forward, forward) << what;
      // Recomputed blocks re-run their convolutions in backward (the first one's input needs no
      // gradient there either).
      const double convolutions = first_conv + 2.0 * double(N * 32 * 6 * 5 * 16 * 3 * 3);
      EXPECT_EQ(got.backward, 2 * forward - first_conv + (recompute ? convolutions : 0.0)) << what;
    }
  }
}

// ---- GPT ----

nn::GptConfig small_gpt(bool tied) {
  nn::GptConfig c;
  c.vocab = 11, c.context = 8, c.layers = 2, c.heads = 2, c.width = 16;
  c.tied_embeddings = tied;
  return c;
}

Tensor token_ids(int64_t B, int64_t T, int64_t vocab, uint64_t seed) {
  std::vector<int64_t> ids;
  for (double v : random_tensor({B, T}, seed, DType::f64, 0.0, double(vocab)).to_vector<double>()) ids.push_back(int64_t(v));
  return Tensor::from_vector(ids, {B, T});
}

// count_flops_per_sample counts a sequence of `context` tokens: the weights' products per token and
// attention's scores and value product over the full T x T matrix (causal or not), which is what
// every attention path counts.
TEST(TrainingFlops, GptForwardIsTheFormulaPerSequenceAndBackwardTwiceIt) {
  const int64_t B = 3;
  for (bool tied : {true, false}) {
    const nn::GptConfig config = small_gpt(tied);
    const int64_t T = config.context, C = config.width;
    const double forward = double(nn::count_flops_per_sample(config)) * B;
    for (bool reference : {false, true}) {  // materialized attention, then the tiled kernel
      kernels::ReferenceModeGuard guard(reference);
      for (bool recompute : {false, true}) {
        nn::GptConfig c = config;
        if (recompute) c.recompute_blocks = {0, 1};
        auto model = nn::make_gpt(c, 1);
        const Counted got = train_step(*model, token_ids(B, T, c.vocab, 7), token_ids(B, T, c.vocab, 8));
        const std::string what = std::string(tied ? "tied" : "untied") + (reference ? " reference" : " fast") +
                                 (recompute ? " recomputed" : "");
        EXPECT_EQ(got.forward, forward) << what;
        // The embeddings are trained, so every product's input needs its gradient: 2x forward. A
        // recomputed block re-runs all but its MLP projection (whose output nobody reads): qkv, the
        // attention projection and fc (8 C^2 per token) and attention's two products.
        const double rerun = 2.0 * double(B * T * 8 * C * C) + 4.0 * double(B * T * T * C);
        EXPECT_EQ(got.backward, 2 * forward + (recompute ? 2 * rerun : 0.0)) << what;
      }
    }
  }
}

TEST(TrainingFlops, GptOnShorterSequencesCountsWhatRuns) {
  // Fewer tokens than the context: the weights' products scale with T, attention with T^2; the
  // formula per sequence of `context` tokens does not apply, the count follows what ran.
  const nn::GptConfig config = small_gpt(true);
  const int64_t B = 2, T = 5, C = config.width, L = config.layers, V = config.vocab;
  auto model = nn::make_gpt(config, 1);
  const Counted got = train_step(*model, token_ids(B, T, V, 9), token_ids(B, T, V, 10));
  EXPECT_EQ(got.forward, 2.0 * double(B * T * (L * (12 * C * C + 2 * T * C) + C * V)));
}

}  // namespace
}  // namespace frugal
