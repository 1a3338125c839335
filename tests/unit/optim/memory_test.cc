// Memory accounting of a training step (weights, gradients, optimizer state, activations) checked
// against sizes computed by hand, and the steady state: after warm-up, a full step of an MLP and
// of a small GPT (forward, backward, clip, AdamW, zero_grad) never calls the system allocator.
#include <gtest/gtest.h>

#include "frugal/autograd/precision.h"
#include "frugal/nn/nn.h"
#include "frugal/optim/optim.h"
#include "test_util.h"

namespace frugal {
namespace {

int64_t live(MemoryCategory c) { return Storage::live_bytes(c); }

int64_t sum_of_categories() {
  int64_t total = 0;
  for (int c = 0; c < kMemoryCategories; ++c) total += Storage::live_bytes(MemoryCategory(c));
  return total;
}

int64_t parameter_bytes(const nn::Module& model) {
  int64_t bytes = 0;
  for (const Tensor& p : model.parameters()) bytes += int64_t(p.nbytes());
  return bytes;
}

// Live bytes by category, taken before anything of a test exists, to compare differences.
struct Baseline {
  int64_t weights = live(MemoryCategory::weights), gradients = live(MemoryCategory::gradients);
  int64_t optimizer_state = live(MemoryCategory::optimizer_state), activations = live(MemoryCategory::activations);
};

TEST(MemoryAccounting, MlpAdamWStepByCategory) {
  const Baseline before;
  auto model = nn::make_mlp({20, {16, 8}, 5, "relu"}, 3);
  const int64_t params = parameter_bytes(*model);
  EXPECT_EQ(params, 4 * (20 * 16 + 16 + 16 * 8 + 8 + 8 * 5 + 5));
  EXPECT_EQ(live(MemoryCategory::weights) - before.weights, params);
  optim::AdamW adamw(optim::default_param_groups(*model, 0.01), optim::AdamWOptions{});
  EXPECT_EQ(live(MemoryCategory::optimizer_state), before.optimizer_state) << "state is created on the first step";

  Tensor x = testing::random_tensor({6, 20}, 1), y = Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 3, 4, 0}, {6});
  {
    MemoryCategoryGuard activations(MemoryCategory::activations);  // as the trainer does
    Tensor loss = cross_entropy(model->forward(x), y);
    EXPECT_GT(live(MemoryCategory::activations), before.activations);
    autograd::backward(loss);
  }
  EXPECT_EQ(live(MemoryCategory::gradients) - before.gradients, params) << "one .grad per parameter";
  EXPECT_EQ(live(MemoryCategory::activations), before.activations) << "the graph and its temporaries are gone";
  adamw.step();
  const int64_t step_counters = 8 * int64_t(model->parameters().size());  // an i64 per parameter
  EXPECT_EQ(live(MemoryCategory::optimizer_state) - before.optimizer_state, 2 * params + step_counters);
  EXPECT_EQ(live(MemoryCategory::weights) - before.weights, params);
  EXPECT_EQ(sum_of_categories(), Storage::live_bytes());
  adamw.zero_grad();
  EXPECT_EQ(live(MemoryCategory::gradients), before.gradients);
  EXPECT_EQ(sum_of_categories(), Storage::live_bytes());
}

TEST(MemoryAccounting, SgdMomentumBufferIsOptimizerState) {
  const Baseline before;
  auto model = nn::make_mlp({7, {3}, 2, "relu"}, 1);
  const int64_t params = parameter_bytes(*model);
  optim::SGD sgd(model->parameters(), optim::SgdOptions{0.1, 0.9});
  for (Tensor& p : model->parameters()) p.set_grad(Tensor::ones(p.shape()));
  sgd.step();
  EXPECT_EQ(live(MemoryCategory::optimizer_state) - before.optimizer_state, params);
}

// Linear(3 -> 2) with bias on x (4, 3), loss = sum(y), f32. By hand, in bytes:
//   forward:  y (4, 2) 32, loss () 4                                          -> 36 live
//   backward: seed () 4; sum's grad dY (4, 2) 32; linear's dW (2, 3) 24 and db (2) 8 -> 104 live,
//             the peak; dW and db, fresh buffers nothing else holds, become weight.grad and
//             bias.grad as they are (no copy) and move to gradients.
// After backward only y and loss (36) are left; gradients hold 24 + 8.
TEST(MemoryAccounting, TinyLinearActivationsByHand) {
  const Baseline before;
  nn::Linear linear(3, 2);
  Tensor x = testing::random_tensor({4, 3}, 2);
  Tensor y, loss;
  Storage::reset_peak_bytes();
  {
    MemoryCategoryGuard activations(MemoryCategory::activations);
    y = linear.forward(x);
    loss = sum(y);
    EXPECT_EQ(live(MemoryCategory::activations) - before.activations, 36);
    autograd::backward(loss);
  }
  EXPECT_EQ(Storage::peak_bytes(MemoryCategory::activations) - before.activations, 104);
  EXPECT_EQ(live(MemoryCategory::activations) - before.activations, 36);
  EXPECT_EQ(live(MemoryCategory::gradients) - before.gradients, 24 + 8);
  EXPECT_EQ(linear.weight().grad().storage()->category(), MemoryCategory::gradients);
  y = Tensor(), loss = Tensor();
  EXPECT_EQ(live(MemoryCategory::activations), before.activations);
  EXPECT_EQ(sum_of_categories(), Storage::live_bytes());
}

// One full training step; returns the system allocations it made.
int64_t allocations_of_step(nn::Module& model, optim::Optimizer& optimizer, const Tensor& x, const Tensor& y,
                            bool tokens) {
  const int64_t before = Storage::system_allocations();
  {
    MemoryCategoryGuard activations(MemoryCategory::activations);
    Tensor logits = model.forward(x);
    Tensor loss = tokens ? cross_entropy(reshape(logits, {-1, logits.size(-1)}), reshape(y, {-1}))
                         : cross_entropy(logits, y);
    autograd::backward(loss);
  }
  optim::clip_grad_norm(model.parameters(), 0.5);
  optimizer.step();
  optimizer.zero_grad();
  return Storage::system_allocations() - before;
}

TEST(SteadyState, MlpStepMakesNoSystemAllocationAfterWarmUp) {
  auto model = nn::make_mlp({784, {256, 128}, 10, "relu", 0.1}, 5);
  model->train(true);
  optim::AdamW adamw(optim::default_param_groups(*model, 0.01), optim::AdamWOptions{});
  Tensor x = testing::random_tensor({32, 784}, 3);
  Tensor y = Tensor::from_vector(std::vector<int64_t>(32, 7), {32});
  EXPECT_GT(allocations_of_step(*model, adamw, x, y, false), 0) << "the first step fills the cache";
  for (int warm_up = 0; warm_up < 2; ++warm_up) allocations_of_step(*model, adamw, x, y, false);
  for (int step = 0; step < 5; ++step)
    EXPECT_EQ(allocations_of_step(*model, adamw, x, y, false), 0) << "MLP step " << step;
}

TEST(SteadyState, GptStepMakesNoSystemAllocationAfterWarmUp) {
  nn::GptConfig config;
  config.vocab = 30, config.context = 16, config.layers = 2, config.heads = 2, config.width = 32, config.dropout = 0.1;
  auto model = nn::make_gpt(config, 9);
  model->train(true);
  optim::AdamW adamw(optim::default_param_groups(*model, 0.01), optim::AdamWOptions{});
  std::vector<int64_t> tokens(4 * 16), targets(4 * 16);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int64_t(i * 7 % 30), targets[i] = int64_t((i * 7 + 1) % 30);
  Tensor x = Tensor::from_vector(tokens, {4, 16}), y = Tensor::from_vector(targets, {4, 16});
  EXPECT_GT(allocations_of_step(*model, adamw, x, y, true), 0) << "the first step fills the cache";
  for (int warm_up = 0; warm_up < 2; ++warm_up) allocations_of_step(*model, adamw, x, y, true);
  for (int step = 0; step < 5; ++step)
    EXPECT_EQ(allocations_of_step(*model, adamw, x, y, true), 0) << "GPT step " << step;
}

// The CNN's step in fp32 and bf16-mixed: its first block runs as one op
// (conv2d_batch_norm_relu_max_pool2x2), the second as conv2d + the fused batch norm, ReLU and pool.
TEST(SteadyState, CnnStepMakesNoSystemAllocationAfterWarmUp) {
  for (Precision precision : {Precision::fp32, Precision::bf16_mixed}) {
    PrecisionGuard guard(precision);
    nn::CnnConfig config;
    config.in_channels = 1, config.height = 12, config.width = 12, config.channels = {16, 32};
    config.hidden = {32}, config.dropout = 0.25, config.outputs = 10;
    auto model = nn::make_cnn(config, 4);
    model->train(true);
    optim::AdamW adamw(optim::default_param_groups(*model, 0.01), optim::AdamWOptions{});
    Tensor x = testing::random_tensor({8, 1, 12, 12}, 6);
    Tensor y = Tensor::from_vector(std::vector<int64_t>(8, 2), {8});
    EXPECT_GT(allocations_of_step(*model, adamw, x, y, false), 0) << "the first step fills the cache";
    for (int warm_up = 0; warm_up < 2; ++warm_up) allocations_of_step(*model, adamw, x, y, false);
    for (int step = 0; step < 5; ++step)
      EXPECT_EQ(allocations_of_step(*model, adamw, x, y, false), 0)
          << "CNN step " << step << " " << precision_name(precision);
  }
}

}  // namespace
}  // namespace frugal
