// autograd::recompute on a residual block built from every kind of op a model block has (layer
// norm, linear, GELU, dropout, batch norm with running statistics, a residual add): parameter and
// input gradients bit-identical to the plain graph in fp32 and bf16-mixed, with gradient
// accumulation, statistics updated once, the forward's precision captured, and memory kept; a
// re-run that only records the ops feeding nothing but its output (UnreadOutputs) gives the same.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/ops.h"
#include "frugal/autograd/precision.h"
#include "frugal/autograd/recompute.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::random_tensor;
using testing::same_bits;

Tensor leaf(const Shape& shape, uint64_t seed, double low = -0.5, double high = 0.5) {
  Tensor t = random_tensor(shape, seed, DType::f32, low, high);
  t.set_requires_grad(true);
  return t;
}

// x (N, C) -> x + bn(linear(dropout(gelu(linear(ln(x)))))) (N, C); every block draws its own values.
struct Block {
  Tensor ln_w, ln_b, w1, b1, w2, b2, bn_w, bn_b, running_mean, running_var;
  uint64_t seed;
  Block(int64_t C, uint64_t s) : seed(s) {
    ln_w = leaf({C}, s + 1, 0.5, 1.5), ln_b = leaf({C}, s + 2);
    w1 = leaf({4 * C, C}, s + 3), b1 = leaf({4 * C}, s + 4);
    w2 = leaf({C, 4 * C}, s + 5), b2 = leaf({C}, s + 6);
    bn_w = leaf({C}, s + 7, 0.5, 1.5), bn_b = leaf({C}, s + 8);
    running_mean = Tensor::zeros({C});
    running_var = Tensor::ones({C});
  }
  Tensor forward(const Tensor& x) const {
    Tensor h = layer_norm(x, ln_w, ln_b);                                   // (N, C)
    h = gelu(linear(h, w1, b1), GeluApproximation::tanh);                   // (N, 4C)
    h = dropout(h, 0.25, /*training=*/true, seed, /*stream=*/7);            // (N, 4C)
    h = batch_norm(linear(h, w2, b2), bn_w, bn_b, running_mean, running_var, true);  // (N, C)
    return add(x, h);
  }
  std::vector<Tensor> parameters() const { return {ln_w, ln_b, w1, b1, w2, b2, bn_w, bn_b}; }
  std::vector<Tensor> state() const { return {running_mean, running_var}; }
};

struct Net {
  std::vector<Block> blocks;
  Tensor readout;  // (N, C) fixed weights of the loss, so each output element gets its own gradient
  Net(int64_t N, int64_t C, int64_t depth) {
    for (int64_t i = 0; i < depth; ++i) blocks.emplace_back(C, 100 * uint64_t(i + 1));
    readout = random_tensor({N, C}, 999);
  }
  // which[i]: block i recomputed.
  Tensor loss(const Tensor& x, const std::vector<bool>& which) const {
    Tensor y = x;
    for (size_t i = 0; i < blocks.size(); ++i) {
      const Block& b = blocks[i];
      y = which[i] ? autograd::recompute([&b](const Tensor& in) { return b.forward(in); }, y, b.parameters(), b.state())
                   : b.forward(y);
    }
    return sum(mul(y, readout));
  }
  std::vector<Tensor> everything() const {  // parameters and statistics, in order
    std::vector<Tensor> out;
    for (const Block& b : blocks) {
      for (const Tensor& p : b.parameters()) out.push_back(p);
      for (const Tensor& s : b.state()) out.push_back(s);
    }
    return out;
  }
};

// Runs `micro_batches` forward+backward passes (gradients accumulate) on two identical nets, one
// plain and one with `which` recomputed, and compares every gradient and statistic bit for bit.
void expect_identical(Precision precision, const std::vector<bool>& which, bool input_grad, int micro_batches) {
  const int64_t N = 24, C = 20;
  PrecisionGuard guard(precision);
  Net plain(N, C, int64_t(which.size())), recomputed(N, C, int64_t(which.size()));
  std::vector<Tensor> inputs_plain, inputs_recomputed;
  for (int m = 0; m < micro_batches; ++m) {
    Tensor x_plain = random_tensor({N, C}, 7 + uint64_t(m)), x_recomputed = random_tensor({N, C}, 7 + uint64_t(m));
    x_plain.set_requires_grad(input_grad);
    x_recomputed.set_requires_grad(input_grad);
    autograd::backward(plain.loss(x_plain, std::vector<bool>(which.size(), false)));
    autograd::backward(recomputed.loss(x_recomputed, which));
    EXPECT_TRUE(same_bits(x_recomputed.grad(), x_plain.grad())) << "input gradient, micro-batch " << m;
    if (input_grad) {
      EXPECT_TRUE(x_plain.grad().defined());
    }
  }
  std::vector<Tensor> a = recomputed.everything(), e = plain.everything();
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(a[i].requires_grad() ? same_bits(a[i].grad(), e[i].grad()) : ::testing::AssertionSuccess())
        << "gradient of tensor " << i;
    EXPECT_TRUE(a[i].requires_grad() || same_bits(a[i], e[i])) << "statistic " << i;
    if (a[i].requires_grad()) {
      EXPECT_TRUE(e[i].grad().defined()) << i;
    }
  }
}

TEST(Recompute, GradientsBitIdenticalFp32) {
  expect_identical(Precision::fp32, {true, true, true}, /*input_grad=*/true, 1);
}

TEST(Recompute, GradientsBitIdenticalBf16Mixed) {
  expect_identical(Precision::bf16_mixed, {true, true, true}, /*input_grad=*/true, 1);
}

TEST(Recompute, GradientsBitIdenticalFp16Mixed) {
  expect_identical(Precision::fp16_mixed, {true, false, true}, /*input_grad=*/true, 2);
}

TEST(Recompute, SomeBlocksAndGradientAccumulation) {
  expect_identical(Precision::fp32, {false, true, false}, true, 3);
  expect_identical(Precision::bf16_mixed, {true, false, true}, true, 2);
}

TEST(Recompute, InputWithoutGradient) {
  // The first block of a network on data: its input needs no gradient, its parameters do.
  expect_identical(Precision::fp32, {true, true}, /*input_grad=*/false, 2);
}

TEST(Recompute, ReRunUsesTheForwardsPrecision) {
  // Forward in bf16-mixed, backward started under fp32: the re-run must still round to bf16.
  const int64_t N = 16, C = 12;
  Net plain(N, C, 2), recomputed(N, C, 2);
  Tensor x_plain = leaf({N, C}, 5), x_recomputed = leaf({N, C}, 5);
  Tensor loss_plain, loss_recomputed;
  {
    PrecisionGuard bf16(Precision::bf16_mixed);
    loss_plain = plain.loss(x_plain, {false, false});
    loss_recomputed = recomputed.loss(x_recomputed, {true, true});
  }
  ASSERT_EQ(compute_precision(), Precision::fp32);
  autograd::backward(loss_plain);
  autograd::backward(loss_recomputed);
  EXPECT_TRUE(same_bits(x_recomputed.grad(), x_plain.grad()));
  EXPECT_TRUE(same_bits(recomputed.blocks[0].w1.grad(), plain.blocks[0].w1.grad()));
  // And the bf16 run really differs from an fp32 one (the check above could not pass by accident).
  Net fp32(N, C, 2);
  Tensor x_fp32 = leaf({N, C}, 5);
  autograd::backward(fp32.loss(x_fp32, {false, false}));
  EXPECT_FALSE(same_bits(x_fp32.grad(), x_plain.grad()));
}

TEST(Recompute, StatisticsUpdatedOnce) {
  const int64_t N = 16, C = 8;
  Net plain(N, C, 1), recomputed(N, C, 1);
  Tensor x = random_tensor({N, C}, 3);
  autograd::backward(plain.loss(x, {false}));
  Tensor after_forward;
  Tensor loss = recomputed.loss(x, {true});
  after_forward = recomputed.blocks[0].running_mean.clone();
  EXPECT_TRUE(same_bits(after_forward, plain.blocks[0].running_mean));
  autograd::backward(loss);
  EXPECT_TRUE(same_bits(recomputed.blocks[0].running_mean, plain.blocks[0].running_mean));
  EXPECT_TRUE(same_bits(recomputed.blocks[0].running_var, plain.blocks[0].running_var));
  // Without the state list the re-run would move them a second time: check that it would.
  Block b(C, 100);
  Tensor x2 = leaf({N, C}, 3);
  autograd::backward(sum(autograd::recompute([&b](const Tensor& in) { return b.forward(in); }, x2, b.parameters())));
  EXPECT_FALSE(same_bits(b.running_mean, plain.blocks[0].running_mean));
}

TEST(Recompute, KeepsOnlyTheBlockInputs) {
  const int64_t N = 64, C = 32, depth = 4;
  Net plain(N, C, depth), recomputed(N, C, depth);
  Tensor x = random_tensor({N, C}, 11);
  auto kept_by_forward = [&](const Net& net, const std::vector<bool>& which) {
    const int64_t before = Storage::live_bytes();
    Tensor loss = net.loss(x, which);
    const int64_t kept = Storage::live_bytes() - before;
    autograd::backward(loss);
    return kept;
  };
  const int64_t block_output = N * C * 4;
  const int64_t kept_plain = kept_by_forward(plain, std::vector<bool>(depth, false));
  const int64_t kept_recomputed = kept_by_forward(recomputed, std::vector<bool>(depth, true));
  // Recomputed: each block's output (the next one's input or the loss's), the loss's product and
  // the scalar loss. Plain: per block also ln, linear (4C), gelu (4C), dropout (4C), linear, bn.
  EXPECT_LE(kept_recomputed, (depth + 1) * block_output + 64 * 4) << kept_recomputed;
  EXPECT_GE(kept_plain, depth * 15 * block_output) << kept_plain;
}

TEST(Recompute, PassThroughWithoutGradients) {
  Block b(6, 1);
  Tensor x = random_tensor({5, 6}, 2);
  auto fn = [&b](const Tensor& in) { return b.forward(in); };
  {
    autograd::NoGradGuard no_grad;
    Tensor y = autograd::recompute(fn, x, b.parameters(), b.state());
    EXPECT_FALSE(y.requires_grad());
  }
  // Identity block: the output is a new handle, so recording never marks the input.
  Tensor input = leaf({3, 4}, 4);
  Tensor y = autograd::recompute([](const Tensor& in) { return in; }, input, {});
  EXPECT_TRUE(y.grad_fn() != nullptr);
  EXPECT_TRUE(input.grad_fn() == nullptr);
  autograd::backward(sum(y));
  EXPECT_TRUE(same_bits(input.grad(), Tensor::ones({3, 4})));
}

TEST(Recompute, ParametersMustBeLeaves) {
  Tensor w = leaf({4}, 1);
  Tensor derived = mul_scalar(w, 2.0);
  Tensor x = leaf({4}, 2);
  EXPECT_THROW(autograd::recompute([&](const Tensor& in) { return mul(in, derived); }, x, {derived}), InternalError);
}

// ---- A re-run that leaves unread outputs unwritten (autograd::UnreadOutputs) ----

// x (N, C) -> x + dropout(linear(gelu(linear(ln(x))))): the last linear, the dropout and the add
// feed only the output, so the re-run may record them without computing them.
struct TailBlock {
  Tensor ln_w, ln_b, w1, b1, w2, b2;
  uint64_t seed;
  TailBlock(int64_t C, uint64_t s) : seed(s) {
    ln_w = leaf({C}, s + 1, 0.5, 1.5), ln_b = leaf({C}, s + 2);
    w1 = leaf({4 * C, C}, s + 3), b1 = leaf({4 * C}, s + 4);
    w2 = leaf({C, 4 * C}, s + 5), b2 = leaf({C}, s + 6);
  }
  Tensor forward(const Tensor& x, bool output_unread) const {
    Tensor h = gelu(linear(layer_norm(x, ln_w, ln_b), w1, b1), GeluApproximation::tanh);  // (N, 4C)
    autograd::UnreadOutputs unread(output_unread);
    return add(x, dropout(linear(h, w2, b2), 0.25, /*training=*/true, seed, /*stream=*/3));
  }
  std::vector<Tensor> parameters() const { return {ln_w, ln_b, w1, b1, w2, b2}; }
};

void expect_unread_rerun_identical(Precision precision) {
  const int64_t N = 24, C = 20;
  PrecisionGuard guard(precision);
  const Tensor readout = random_tensor({N, C}, 999);
  auto run = [&](const std::vector<TailBlock>& blocks, bool recomputed) {
    Tensor x = random_tensor({N, C}, 7);
    x.set_requires_grad(true);
    Tensor y = x;
    for (const TailBlock& b : blocks) {
      auto fn = [&b](const Tensor& in) { return b.forward(in, false); };
      auto rerun = [&b](const Tensor& in) { return b.forward(in, true); };
      y = recomputed ? autograd::recompute(fn, y, b.parameters(), {}, rerun) : fn(y);
    }
    autograd::backward(sum(mul(y, readout)));
    return x.grad();
  };
  std::vector<TailBlock> plain{TailBlock(C, 100), TailBlock(C, 200)}, recomputed{TailBlock(C, 100), TailBlock(C, 200)};
  Tensor g_plain = run(plain, false), g_recomputed = run(recomputed, true);
  EXPECT_TRUE(same_bits(g_recomputed, g_plain)) << "input gradient";
  for (size_t b = 0; b < plain.size(); ++b) {
    std::vector<Tensor> pa = recomputed[b].parameters(), pe = plain[b].parameters();
    for (size_t i = 0; i < pa.size(); ++i) {
      ASSERT_TRUE(pe[i].grad().defined());
      EXPECT_TRUE(same_bits(pa[i].grad(), pe[i].grad())) << "block " << b << " parameter " << i;
    }
  }
}

TEST(Recompute, RerunWithUnreadOutputsBitIdentical) {
  expect_unread_rerun_identical(Precision::fp32);
  expect_unread_rerun_identical(Precision::bf16_mixed);
  expect_unread_rerun_identical(Precision::fp16_mixed);
}

// Hands the next allocation of `shape` a block full of NaN (the caching allocator's free lists are
// last in, first out) and returns its address.
const void* poison_next_block(const Shape& shape) {
  Tensor poison = Tensor::full(shape, std::numeric_limits<float>::quiet_NaN());
  return poison.raw_data();
}

bool all_nan(const Tensor& t) {
  Tensor c = t.contiguous();
  for (int64_t i = 0; i < c.numel(); ++i)
    if (!std::isnan(c.data<float>()[i])) return false;
  return true;
}

TEST(Recompute, UnreadOutputsAreNotComputed) {
  // Sizes no other tensor of this test has, so the poisoned block is the one handed out.
  Tensor x = leaf({37, 11}, 1), w = leaf({29, 11}, 2), b = leaf({29}, 3), r = leaf({37, 29}, 4);
  {
    const void* block = poison_next_block({37, 29});
    autograd::UnreadOutputs unread;
    Tensor y = linear(x, w, b);
    ASSERT_EQ(y.raw_data(), block) << "the allocator did not hand out the poisoned block";
    EXPECT_TRUE(all_nan(y)) << "linear computed an output nobody reads";
    const void* block2 = poison_next_block({37, 29});
    Tensor z = add(r, y);
    ASSERT_EQ(z.raw_data(), block2);
    EXPECT_TRUE(all_nan(z)) << "add computed an output nobody reads";
  }
  // Outside a scope, or without gradients to record, the same ops compute their values.
  for (bool in_scope : {false, true}) {
    poison_next_block({37, 29});
    autograd::UnreadOutputs unread(in_scope);
    autograd::NoGradGuard no_grad;
    EXPECT_FALSE(all_nan(linear(x, w, b))) << in_scope;
  }
}

TEST(Recompute, UnreadOutputsRejectOpsThatReadValues) {
  Tensor x = leaf({5, 4}, 1), w = leaf({3, 4}, 2), w2 = leaf({3, 3}, 3);
  {
    autograd::UnreadOutputs unread;  // gelu's backward reads its input: it cannot skip
    EXPECT_THROW(gelu(x, GeluApproximation::tanh), InternalError);
  }
  {
    autograd::UnreadOutputs unread;  // the second linear's backward would read the first's output
    Tensor y = linear(x, w, Tensor());
    EXPECT_THROW(linear(y, w2, Tensor()), InternalError);
  }
  {
    autograd::UnreadOutputs unread;  // the fused ReLU keeps its output's sign for backward
    EXPECT_THROW(linear_relu(x, w, Tensor()), InternalError);
  }
  // A scope left by an exception leaves nothing behind: the same ops record normally after it.
  Tensor y = linear(linear(x, w, Tensor()), w2, Tensor());
  autograd::backward(sum(y));
  EXPECT_TRUE(w.grad().defined());
}

}  // namespace
}  // namespace frugal
