// Recomputed blocks in the zoo models: GPT (dropout on) and CNN (batch norm, dropout) give
// bit-identical gradients, input gradients and BatchNorm statistics with and without
// recomputation, in fp32 and bf16-mixed; the peak memory of a kjv-gpt-sized step; the activation
// estimate against measured bytes; the choice of blocks for a limit; config errors.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "frugal/autograd/precision.h"
#include "frugal/nn/nn.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::random_tensor;
using testing::same_bits;

// Every parameter's gradient and every buffer of `actual` equals `expected`'s, bit for bit.
void expect_same_state(const nn::Module& actual, const nn::Module& expected) {
  nn::NamedTensors pa = actual.named_parameters(), pe = expected.named_parameters();
  ASSERT_EQ(pa.size(), pe.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(pe[i].second.grad().defined()) << pe[i].first;
    EXPECT_TRUE(same_bits(pa[i].second.grad(), pe[i].second.grad())) << "gradient of " << pa[i].first;
  }
  nn::NamedTensors ba = actual.named_buffers(), be = expected.named_buffers();
  ASSERT_EQ(ba.size(), be.size());
  for (size_t i = 0; i < ba.size(); ++i) EXPECT_TRUE(same_bits(ba[i].second, be[i].second)) << ba[i].first;
}

Tensor token_ids(int64_t B, int64_t T, int64_t vocab, uint64_t seed) {
  Tensor r = random_tensor({B, T}, seed, DType::f64, 0.0, double(vocab));
  std::vector<int64_t> ids;
  for (double v : r.to_vector<double>()) ids.push_back(int64_t(v));
  return Tensor::from_vector(ids, {B, T});
}

nn::GptConfig small_gpt() {
  nn::GptConfig c;
  c.vocab = 13, c.context = 16, c.layers = 2, c.heads = 4, c.width = 32, c.dropout = 0.1;
  return c;
}

// Two micro-batches (gradients accumulate). Between each forward and its backward the random
// context moves on, as it would if anything ran in between: the re-run must use the forward's.
void gpt_step(nn::Module& model, int64_t vocab) {
  for (uint64_t micro = 0; micro < 2; ++micro) {
    nn::set_random_context({42, micro});
    Tensor ids = token_ids(3, 16, vocab, 10 + micro), targets = token_ids(3, 16, vocab, 20 + micro);
    Tensor logits = model(ids);  // (B, T, V)
    Tensor loss = cross_entropy(reshape(logits, {-1, vocab}), reshape(targets, {-1}));
    nn::set_random_context({7, 1000 + micro});
    autograd::backward(loss);
  }
}

void expect_gpt_identical(Precision precision) {
  PrecisionGuard guard(precision);
  nn::GptConfig config = small_gpt();
  auto plain = nn::make_gpt(config, 3);
  config.recompute_blocks = {0, 1};
  auto recomputed = nn::make_gpt(config, 3);
  gpt_step(*plain, config.vocab);
  gpt_step(*recomputed, config.vocab);
  expect_same_state(*recomputed, *plain);
}

TEST(RecomputeModels, GptBitIdenticalFp32) { expect_gpt_identical(Precision::fp32); }
TEST(RecomputeModels, GptBitIdenticalBf16Mixed) { expect_gpt_identical(Precision::bf16_mixed); }

TEST(RecomputeModels, GptOneBlockOnly) {
  nn::GptConfig config = small_gpt();
  auto plain = nn::make_gpt(config, 4);
  config.recompute_blocks = {1};
  auto recomputed = nn::make_gpt(config, 4);
  gpt_step(*plain, config.vocab);
  gpt_step(*recomputed, config.vocab);
  expect_same_state(*recomputed, *plain);
}

nn::CnnConfig small_cnn() {
  nn::CnnConfig c;
  c.in_channels = 2, c.height = 12, c.width = 10;
  c.channels = {4, 6};
  c.hidden = {16};
  c.dropout = 0.3;
  c.outputs = 5;
  return c;
}

// Returns the input gradient; two micro-batches, so BatchNorm statistics move twice.
Tensor cnn_step(nn::Module& model) {
  Tensor input_grad;
  for (uint64_t micro = 0; micro < 2; ++micro) {
    nn::set_random_context({9, micro});
    Tensor x = random_tensor({5, 2, 12, 10}, 30 + micro);
    x.set_requires_grad(true);
    std::vector<int64_t> labels = {0, 4, 2, 1, 3};
    Tensor loss = cross_entropy(model(x), Tensor::from_vector(labels, {5}));
    autograd::backward(loss);
    input_grad = x.grad();
  }
  return input_grad;
}

void expect_cnn_identical(Precision precision, const std::string& pool) {
  PrecisionGuard guard(precision);
  nn::CnnConfig config = small_cnn();
  config.pool = pool;
  auto plain = nn::make_cnn(config, 5);
  config.recompute_blocks = {0, 1};
  auto recomputed = nn::make_cnn(config, 5);
  Tensor grad_plain = cnn_step(*plain), grad_recomputed = cnn_step(*recomputed);
  EXPECT_TRUE(grad_plain.defined());
  EXPECT_TRUE(same_bits(grad_recomputed, grad_plain)) << "input gradient";
  expect_same_state(*recomputed, *plain);
  // The statistics really moved (twice), so the comparison above is not of untouched buffers.
  const auto* bn = dynamic_cast<const nn::BatchNorm*>(recomputed->named_modules()[3].second);
  ASSERT_NE(bn, nullptr) << recomputed->named_modules()[3].first;
  EXPECT_EQ(bn->num_batches_tracked(), 2);
  EXPECT_NE(bn->running_mean().to_vector<float>()[0], 0.0f);
}

TEST(RecomputeModels, CnnBitIdenticalFp32) { expect_cnn_identical(Precision::fp32, "max"); }
TEST(RecomputeModels, CnnBitIdenticalBf16Mixed) { expect_cnn_identical(Precision::bf16_mixed, "max"); }
TEST(RecomputeModels, CnnAvgPoolAndNoPool) {
  expect_cnn_identical(Precision::fp32, "avg");
  expect_cnn_identical(Precision::fp32, "none");
}

// ---- memory ----

// examples/kjv-gpt.toml's model; the KJV text has 75 distinct characters... close enough: the
// vocabulary only sizes the logits.
nn::GptConfig kjv_gpt() {
  nn::GptConfig c;
  c.vocab = 75, c.context = 128, c.layers = 4, c.heads = 4, c.width = 128, c.dropout = 0.0;
  return c;
}

struct Measured {
  int64_t kept_after_forward = 0;  // live bytes the forward added (the graph's activations + loss)
  int64_t peak = 0;                // peak live bytes above the start, forward + backward
};

// The steady state of training: one step first, since the kernels keep scratch buffers of the
// first call of each shape for the next ones (oneDNN's fp32 conv, for one). Then gradients are
// dropped and a second step measured.
Measured measure_step(nn::Module& model, const Tensor& x, const Tensor& targets, int64_t vocab, bool tokens) {
  auto loss_of = [&] {
    Tensor logits = model(x);
    return tokens ? cross_entropy(reshape(logits, {-1, vocab}), reshape(targets, {-1})) : cross_entropy(logits, targets);
  };
  autograd::backward(loss_of());
  for (Tensor p : model.parameters()) p.set_grad(Tensor());
  Storage::release_cache();
  const int64_t start = Storage::live_bytes();
  Storage::reset_peak_bytes();
  Measured m;
  {
    Tensor loss = loss_of();
    m.kept_after_forward = Storage::live_bytes() - start;
    autograd::backward(loss);
  }
  m.peak = Storage::peak_bytes() - start;
  return m;
}

TEST(RecomputeModels, KjvGptPeakMemoryAtLeastHalves) {
  nn::GptConfig config = kjv_gpt();
  const int64_t B = 32;
  Tensor ids = token_ids(B, config.context, config.vocab, 1), targets = token_ids(B, config.context, config.vocab, 2);
  nn::set_random_context({1, 0});
  auto plain = nn::make_gpt(config, 1);
  Measured none = measure_step(*plain, ids, targets, config.vocab, true);
  config.recompute_blocks = {0, 1, 2, 3};
  auto recomputed = nn::make_gpt(config, 1);
  Measured blocks = measure_step(*recomputed, ids, targets, config.vocab, true);
  std::printf("kjv-gpt step (B=32, T=128, C=128, 4 layers): peak above weights none %.1f MiB, blocks %.1f MiB "
              "(%.2fx); kept after forward %.1f vs %.1f MiB\n",
              double(none.peak) / 1048576, double(blocks.peak) / 1048576, double(none.peak) / double(blocks.peak),
              double(none.kept_after_forward) / 1048576, double(blocks.kept_after_forward) / 1048576);
  EXPECT_LE(2 * blocks.peak, none.peak);
  expect_same_state(*recomputed, *plain);  // and nothing changed on the way

  // The estimate against the measurement: the graph kept after the forward (estimate: the peak
  // with no block recomputed) and the peak with every block recomputed. Measured figures include
  // the loss's buffers and, for the peak, gradients and backward temporaries, which the estimate
  // leaves out, so they may only be larger, and by at most that much.
  nn::ActivationEstimate e = nn::estimate_activation_bytes(config, B);
  const int64_t kept_estimate = e.peak_bytes({});
  std::printf("estimate: kept %.1f MiB (measured %.1f), peak recomputing all %.1f MiB (measured %.1f)\n",
              double(kept_estimate) / 1048576, double(none.kept_after_forward) / 1048576,
              double(e.peak_bytes({0, 1, 2, 3})) / 1048576, double(blocks.peak) / 1048576);
  EXPECT_GE(none.kept_after_forward, kept_estimate);
  EXPECT_LE(none.kept_after_forward, kept_estimate + kept_estimate / 20);
  EXPECT_GE(blocks.peak, e.peak_bytes({0, 1, 2, 3}));
}

TEST(RecomputeModels, GptEstimateOnBothAttentionPaths) {
  // Scores over 64 MiB (B*H*T*T*4 = 75 MiB here) take the views path, with other saved tensors;
  // dropout on adds its outputs. Tiny widths keep it fast.
  struct Shape3 { int64_t B, T, heads; double dropout; };
  for (Shape3 c : {Shape3{8, 384, 16, 0.0}, Shape3{4, 64, 2, 0.2}}) {
    nn::GptConfig config;
    config.vocab = 11, config.context = c.T, config.layers = 2, config.heads = c.heads, config.width = 16;
    config.dropout = c.dropout;
    auto model = nn::make_gpt(config, 1);
    nn::set_random_context({1, 0});
    Tensor ids = token_ids(c.B, c.T, config.vocab, 1), targets = token_ids(c.B, c.T, config.vocab, 2);
    Measured m = measure_step(*model, ids, targets, config.vocab, true);
    const int64_t estimate = nn::estimate_activation_bytes(config, c.B).peak_bytes({});
    std::printf("gpt B=%lld T=%lld H=%lld: kept after forward %lld bytes, estimate %lld\n", (long long)c.B,
                (long long)c.T, (long long)c.heads, (long long)m.kept_after_forward, (long long)estimate);
    EXPECT_GE(m.kept_after_forward, estimate);
    EXPECT_LE(m.kept_after_forward, estimate + estimate / 20);
  }
}

// Channels {8, 16}: every block runs as its ops; {16, 32}: the first runs as one op (its
// convolution's output never stored, conv2d_batch_norm_relu_max_pool2x2).
TEST(RecomputeModels, CnnEstimateMatchesKeptBytes) {
  for (std::vector<int64_t> channels : {std::vector<int64_t>{8, 16}, std::vector<int64_t>{16, 32}})
  for (bool bf16 : {false, true}) {
    PrecisionGuard guard(bf16 ? Precision::bf16_mixed : Precision::fp32);
    nn::CnnConfig config;
    config.in_channels = 1, config.height = 28, config.width = 28;
    config.channels = channels;
    config.hidden = {32};
    config.dropout = 0.25;
    config.outputs = 10;
    auto model = nn::make_cnn(config, 2);
    const int64_t N = 16;
    Tensor x = random_tensor({N, 1, 28, 28}, 3);
    std::vector<int64_t> labels(N, 3);
    Measured m = measure_step(*model, x, Tensor::from_vector(labels, {N}), config.outputs, false);
    nn::ActivationEstimate e = nn::estimate_activation_bytes(config, N, bf16);
    // The data batch was alive before the forward: the measurement leaves it out.
    const int64_t kept_estimate = e.peak_bytes({}) - e.input_bytes[0];
    std::printf("cnn %s channels %lld, %lld: kept after forward %lld bytes, estimate %lld\n",
                bf16 ? "bf16-mixed" : "fp32", (long long)channels[0], (long long)channels[1],
                (long long)m.kept_after_forward, (long long)kept_estimate);
    EXPECT_GE(m.kept_after_forward, kept_estimate);
    EXPECT_LE(m.kept_after_forward, kept_estimate + kept_estimate / 20);
  }
}

// ---- choosing blocks ----

TEST(RecomputeModels, ChooseBlocksFewestLargestFirst) {
  // Hand-made: other 100, inputs 10 each, blocks 50, 300, 200, 300 (kept total 1000 + 40 + 100).
  nn::ActivationEstimate e;
  e.other_bytes = 100;
  e.input_bytes = {10, 10, 10, 10};
  e.block_bytes = {50, 300, 200, 300};
  EXPECT_EQ(e.peak_bytes({}), 990);
  EXPECT_EQ(e.peak_bytes({1}), 990);          // re-running the only recomputed block costs it again
  EXPECT_EQ(e.peak_bytes({1, 3}), 690);       // 140 + 50 + 200 + 300
  EXPECT_EQ(e.peak_bytes({0, 1, 2, 3}), 440);
  bool fits = false;
  EXPECT_EQ(nn::choose_recompute_blocks(e, 990, &fits), std::vector<int64_t>{});
  EXPECT_TRUE(fits);
  EXPECT_EQ(nn::choose_recompute_blocks(e, 989, &fits), (std::vector<int64_t>{1, 3}));  // 1 alone saves nothing
  EXPECT_EQ(nn::choose_recompute_blocks(e, 690, &fits), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(nn::choose_recompute_blocks(e, 689, &fits), (std::vector<int64_t>{1, 2, 3}));  // 490
  EXPECT_TRUE(fits);
  EXPECT_EQ(nn::choose_recompute_blocks(e, 440, &fits), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_TRUE(fits);
  EXPECT_EQ(nn::choose_recompute_blocks(e, 439, &fits), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_FALSE(fits);
}

TEST(RecomputeModels, ChooseBlocksOnModels) {
  // GPT blocks are all alike: with a limit between "all kept" and "all recomputed" the count is
  // the smallest that fits, and the lowest indices are taken among equals.
  nn::GptConfig gpt = kjv_gpt();
  nn::ActivationEstimate e = nn::estimate_activation_bytes(gpt, 32);
  ASSERT_EQ(e.block_bytes.size(), 4u);
  bool fits = false;
  EXPECT_EQ(nn::choose_recompute_blocks(e, e.peak_bytes({0, 1}), &fits), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(nn::choose_recompute_blocks(e, e.peak_bytes({0, 1}) - 1, &fits), (std::vector<int64_t>{0, 1, 2}));
  // CNN: the first block (28x28 maps) is far larger than the second (14x14), so it goes first.
  // (8 channels: each block runs as its ops; with 16 the first runs as one op and keeps little.)
  nn::CnnConfig cnn;
  cnn.in_channels = 1, cnn.height = 28, cnn.width = 28, cnn.channels = {16, 16, 16}, cnn.outputs = 10;
  e = nn::estimate_activation_bytes(cnn, 64);
  EXPECT_LT(e.block_bytes[0], e.block_bytes[1]);
  cnn.channels = {8, 8, 8};
  e = nn::estimate_activation_bytes(cnn, 64);
  EXPECT_GT(e.block_bytes[0], e.block_bytes[1]);
  EXPECT_GT(e.block_bytes[1], e.block_bytes[2]);
  // Re-running block 0 holds its activations and twice its output: more than the 0.4 MB that
  // recomputing the two others saves, so no choice lowers the peak on this model.
  EXPECT_GT(e.peak_bytes({0}), e.peak_bytes({}));
  EXPECT_GT(e.peak_bytes({0, 1, 2}), e.peak_bytes({}));
  EXPECT_EQ(nn::lowest_peak_blocks(e), std::vector<int64_t>{});
  EXPECT_EQ(nn::choose_recompute_blocks(e, e.peak_bytes({}), &fits), std::vector<int64_t>{});
  EXPECT_TRUE(fits);
  EXPECT_EQ(nn::choose_recompute_blocks(e, e.peak_bytes({}) - 1, &fits), std::vector<int64_t>{});
  EXPECT_FALSE(fits);
}

TEST(RecomputeModels, ConfigErrors) {
  nn::GptConfig gpt = small_gpt();
  gpt.recompute_blocks = {0, 2};
  EXPECT_INPUT_ERROR(nn::make_gpt(gpt), "recompute_blocks[1] = 2", "[0, 2)");
  nn::CnnConfig cnn = small_cnn();
  cnn.recompute_blocks = {-1};
  EXPECT_INPUT_ERROR(nn::make_cnn(cnn), "recompute_blocks[0] = -1", "conv block");
}

}  // namespace
}  // namespace frugal

namespace frugal {
namespace {
// Recomputation never raises the measured peak it exists to lower: on models where the plan
// recomputes (a CNN of equal blocks, the kjv GPT) the measured peak falls; on the example CNN,
// whose largest block is the last, the plan recomputes nothing, and recomputing anyway would
// have raised the measured peak, as the estimate says.
TEST(RecomputeModels, PlanNeverRaisesTheMeasuredPeak) {
  struct Case {
    const char* name;
    std::vector<int64_t> channels;
    std::string pool;
    bool recomputes;  // the plan recomputes some block
  };
  const int64_t N = 128;
  Tensor x = random_tensor({N, 1, 28, 28}, 3);
  std::vector<int64_t> labels(N, 3);
  for (const Case& c : {Case{"example cnn", {32, 64}, "max", false}, Case{"equal blocks", {8, 8, 8, 8}, "none", true}}) {
    nn::CnnConfig config;
    config.in_channels = 1, config.height = 28, config.width = 28;
    config.channels = c.channels;
    config.pool = c.pool;
    config.hidden = {128};
    config.dropout = 0.25;
    config.outputs = 10;
    const nn::ActivationEstimate e = nn::estimate_activation_bytes(config, N);
    std::vector<int64_t> all;
    for (size_t b = 0; b < c.channels.size(); ++b) all.push_back(int64_t(b));
    auto measure = [&](const std::vector<int64_t>& blocks) {
      config.recompute_blocks = blocks;
      auto model = nn::make_cnn(config, 2);
      return measure_step(*model, x, Tensor::from_vector(labels, {N}), config.outputs, false).peak;
    };
    const std::vector<int64_t> planned = nn::lowest_peak_blocks(e);
    const int64_t none = measure({}), chosen = measure(planned), every = measure(all);
    std::printf("%s: measured peak none %.2f MiB, planned (%zu blocks) %.2f MiB, all %.2f MiB; estimates %.2f, %.2f, "
                "%.2f MiB\n", c.name, double(none) / 1048576, planned.size(), double(chosen) / 1048576,
                double(every) / 1048576, double(e.peak_bytes({})) / 1048576, double(e.peak_bytes(planned)) / 1048576,
                double(e.peak_bytes(all)) / 1048576);
    EXPECT_EQ(!planned.empty(), c.recomputes) << c.name;
    EXPECT_LE(chosen, none) << c.name;
    if (c.recomputes) EXPECT_LT(chosen, none) << c.name;
    // Where the estimate says recomputing every block raises the peak, it does.
    if (e.peak_bytes(all) > e.peak_bytes({})) EXPECT_GT(every, none) << c.name;
  }
}
}  // namespace
}  // namespace frugal
