// A GPT with per-block widths (block_heads, mlp_widths: what pruning's compaction writes): its
// tensors' shapes, count_parameters / count_flops_per_sample / estimate_activation_bytes against the
// built model, recomputed blocks bit-identical in fp32 and bf16-mixed, and config errors.
#include <gtest/gtest.h>

#include "frugal/autograd/precision.h"
#include "frugal/nn/nn.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::random_tensor;
using testing::same_bits;

nn::GptConfig pruned_gpt() {
  nn::GptConfig c;
  c.vocab = 13, c.context = 16, c.layers = 2, c.heads = 4, c.width = 32, c.dropout = 0.1;
  c.block_heads = {1, 3}, c.mlp_widths = {24, 72};
  return c;
}

Tensor token_ids(int64_t B, int64_t T, int64_t vocab, uint64_t seed) {
  Tensor r = random_tensor({B, T}, seed, DType::f64, 0.0, double(vocab));
  std::vector<int64_t> ids;
  for (double v : r.to_vector<double>()) ids.push_back(int64_t(v));
  return Tensor::from_vector(ids, {B, T});
}

TEST(PrunedGpt, ShapesAndCountsFollowTheBlockWidths) {
  const nn::GptConfig c = pruned_gpt();
  auto model = nn::make_gpt(c, 1);
  std::map<std::string, Shape> shapes;
  for (const auto& [name, t] : model->state_dict()) shapes[name] = t.shape();
  EXPECT_EQ(shapes["blocks.0.attn.qkv.weight"], (Shape{3 * 8, 32}));  // one head of width 8
  EXPECT_EQ(shapes["blocks.0.attn.proj.weight"], (Shape{32, 8}));
  EXPECT_EQ(shapes["blocks.1.attn.qkv.weight"], (Shape{3 * 24, 32}));
  EXPECT_EQ(shapes["blocks.0.mlp.fc.weight"], (Shape{24, 32}));
  EXPECT_EQ(shapes["blocks.1.mlp.proj.weight"], (Shape{32, 72}));
  EXPECT_EQ(model->num_parameters(), nn::count_parameters(c));
  nn::GptConfig uniform = c;
  uniform.block_heads.clear(), uniform.mlp_widths.clear();
  EXPECT_LT(nn::count_flops_per_sample(c), nn::count_flops_per_sample(uniform));
  const nn::ActivationEstimate e = nn::estimate_activation_bytes(c, 4);
  ASSERT_EQ(e.block_bytes.size(), 2u);
  EXPECT_LT(e.block_bytes[0], e.block_bytes[1]);
  EXPECT_LT(e.block_bytes[1], nn::estimate_activation_bytes(uniform, 4).block_bytes[1]);
}

void step(nn::Module& model, int64_t vocab) {
  nn::set_random_context({42, 0});
  Tensor logits = model(token_ids(3, 16, vocab, 10));
  Tensor loss = cross_entropy(reshape(logits, {-1, vocab}), reshape(token_ids(3, 16, vocab, 20), {-1}));
  nn::set_random_context({7, 1000});
  autograd::backward(loss);
}

void expect_recompute_identical(Precision precision) {
  PrecisionGuard guard(precision);
  nn::GptConfig config = pruned_gpt();
  auto plain = nn::make_gpt(config, 3);
  config.recompute_blocks = {0, 1};
  auto recomputed = nn::make_gpt(config, 3);
  step(*plain, config.vocab);
  step(*recomputed, config.vocab);
  nn::NamedTensors pa = recomputed->named_parameters(), pe = plain->named_parameters();
  ASSERT_EQ(pa.size(), pe.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    ASSERT_TRUE(pe[i].second.grad().defined()) << pe[i].first;
    EXPECT_TRUE(same_bits(pa[i].second.grad(), pe[i].second.grad())) << "gradient of " << pa[i].first;
  }
}

TEST(PrunedGpt, RecomputedBlocksBitIdenticalFp32) { expect_recompute_identical(Precision::fp32); }
TEST(PrunedGpt, RecomputedBlocksBitIdenticalBf16Mixed) { expect_recompute_identical(Precision::bf16_mixed); }

TEST(PrunedGpt, ConfigErrors) {
  nn::GptConfig c = pruned_gpt();
  c.block_heads = {2};
  EXPECT_INPUT_ERROR(nn::make_gpt(c, 0), "model.block_heads must list one head count per block (2)");
  c = pruned_gpt();
  c.mlp_widths = {0, 8};
  EXPECT_INPUT_ERROR(nn::make_gpt(c, 0), "model.mlp_widths");
}

}  // namespace
}  // namespace frugal
