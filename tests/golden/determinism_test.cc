// Determinism: the same seed and thread count give bit-identical weights (and BatchNorm running
// stats) after a few training steps of a small CNN (conv, batch norm, pool, linear; SGD) and a GPT
// (dropout on, AdamW, clipping), run twice in one process, with 1 and with 2 threads.
// Limits: one process; bit-identity across different thread counts is not claimed.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/ops.h"
#include "frugal/base/parallel.h"
#include "frugal/base/rng.h"
#include "frugal/nn/zoo.h"
#include "frugal/optim/optimizer.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::random_tensor;

using Snapshot = std::vector<std::pair<std::string, std::vector<uint8_t>>>;

// Every state-dict tensor as raw bytes, so the comparison is bitwise (NaN-safe, -0 != +0).
Snapshot snapshot(const nn::Module& model) {
  Snapshot out;
  for (const auto& [name, tensor] : model.state_dict()) {
    Tensor packed = tensor.contiguous();
    const auto* bytes = static_cast<const uint8_t*>(packed.raw_data());
    out.emplace_back(name, std::vector<uint8_t>(bytes, bytes + packed.nbytes()));
  }
  return out;
}

// Integer labels in [0, classes) from a Philox stream.
Tensor random_labels(const Shape& shape, int64_t classes, uint64_t seed) {
  Rng rng(seed, 1, RandomPurpose::test);
  std::vector<int64_t> values(size_t(shape_numel(shape)));
  for (int64_t& v : values) v = int64_t(rng.uniform_double() * double(classes)) % classes;
  return Tensor::from_vector(values, shape);
}

Snapshot train_cnn(uint64_t seed, int steps) {
  nn::CnnConfig config;
  config.in_channels = 3, config.height = 17, config.width = 17;  // odd: pooling floors
  config.channels = {8, 16};
  config.batch_norm = true;
  config.pool = "max";
  config.hidden = {32};
  config.dropout = 0.25;
  config.outputs = 3;
  auto model = nn::make_cnn(config, seed);
  optim::SgdOptions options;
  options.lr = 0.05, options.momentum = 0.9, options.weight_decay = 1e-4;
  optim::SGD optimizer(model->parameters(), options);
  for (int step = 0; step < steps; ++step) {
    nn::set_random_context({seed, uint64_t(step)});
    Tensor x = random_tensor({16, 3, 17, 17}, 1000 + step);  // (N, C, H, W)
    Tensor y = random_labels({16}, 3, 2000 + step);
    optimizer.zero_grad();
    Tensor loss = cross_entropy((*model)(x), y);
    autograd::backward(loss);
    optimizer.step();
  }
  return snapshot(*model);
}

Snapshot train_gpt(uint64_t seed, int steps) {
  nn::GptConfig config;
  config.vocab = 37, config.context = 16, config.layers = 2, config.heads = 4, config.width = 64;
  config.dropout = 0.1;
  auto model = nn::make_gpt(config, seed);
  optim::AdamWOptions options;
  options.lr = 3e-3;
  optim::AdamW optimizer(optim::default_param_groups(*model, 0.1), options);
  for (int step = 0; step < steps; ++step) {
    nn::set_random_context({seed, uint64_t(step)});
    Tensor tokens = random_labels({4, 16}, config.vocab, 3000 + step);  // (B, T)
    Tensor targets = random_labels({4 * 16}, config.vocab, 4000 + step);
    optimizer.zero_grad();
    Tensor logits = (*model)(tokens);  // (B, T, V)
    Tensor loss = cross_entropy(reshape(logits, {-1, config.vocab}), targets);
    autograd::backward(loss);
    optim::clip_grad_norm(model->parameters(), 1.0);
    optimizer.step();
  }
  return snapshot(*model);
}

// Names the first tensor whose bytes differ ("" when all are identical).
std::string first_difference(const Snapshot& a, const Snapshot& b) {
  if (a.size() != b.size()) return "different number of tensors";
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].first != b[i].first || a[i].second != b[i].second) return a[i].first;
  return "";
}

void check_deterministic(const std::function<Snapshot(uint64_t, int)>& train) {
  const int previous = num_threads();
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    Snapshot first = train(7, 4), second = train(7, 4);
    EXPECT_EQ(first_difference(first, second), "") << "with " << threads << " thread(s)";
    // The comparison has teeth: training moved the weights, and another seed gives other weights.
    EXPECT_NE(first_difference(first, train(7, 0)), "") << "training changed nothing";
    EXPECT_NE(first_difference(first, train(8, 4)), "") << "the seed changed nothing";
  }
  set_num_threads(previous);
}

TEST(Determinism, CnnSameSeedSameThreadsBitIdentical) { check_deterministic(train_cnn); }

TEST(Determinism, GptSameSeedSameThreadsBitIdentical) { check_deterministic(train_gpt); }

}  // namespace
}  // namespace frugal
