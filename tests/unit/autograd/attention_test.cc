// multi_head_attention: the materialized matmul path (fp32 and bf16-mixed) against the tiled
// reference kernels on split heads, forward and the qkv gradient, causal and not, odd shapes; and
// the fallbacks (f64, reference mode) against an explicit per-head computation.
#include <gtest/gtest.h>

#include <cmath>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/gradcheck.h"
#include "frugal/autograd/ops.h"
#include "frugal/autograd/precision.h"
#include "frugal/kernels/kernels.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::all_close;
using testing::random_tensor;

struct Result {
  Tensor out, grad;
};

// Output and d(sum(out * weights))/d(qkv) for qkv (B, T, 3C).
Result run(const Tensor& qkv_values, const Tensor& weights, int64_t heads, bool causal) {
  Tensor qkv = qkv_values.detach().contiguous();
  qkv = qkv.clone();
  qkv.set_requires_grad(true);
  Tensor out = multi_head_attention(qkv, heads, causal);
  autograd::backward(sum(mul(out, weights)));
  return {out.detach(), qkv.grad()};
}

struct Shape4 {
  int64_t B, T, H, D;
};

class MultiHeadAttention : public ::testing::TestWithParam<Shape4> {};

TEST_P(MultiHeadAttention, MatmulPathMatchesTiledReference) {
  const auto [B, T, H, D] = GetParam();
  const int64_t C = H * D;
  for (bool causal : {true, false}) {
    Tensor qkv = random_tensor({B, T, 3 * C}, 11 + T, DType::f32, -2.0, 2.0);
    Tensor w = random_tensor({B, T, C}, 12 + T);
    Result fast = run(qkv, w, H, causal);
    Result ref;
    {
      kernels::ReferenceModeGuard reference;
      ref = run(qkv, w, H, causal);
    }
    EXPECT_TRUE(all_close(fast.out, ref.out, 1e-5, 1e-4)) << "causal " << causal;
    EXPECT_TRUE(all_close(fast.grad, ref.grad, 1e-5, 1e-4)) << "causal " << causal;
  }
}

TEST_P(MultiHeadAttention, Bf16MixedIsCloseToFp32AndUsesBf16) {
  const auto [B, T, H, D] = GetParam();
  const int64_t C = H * D;
  Tensor qkv = random_tensor({B, T, 3 * C}, 21 + T, DType::f32, -2.0, 2.0);
  Tensor w = random_tensor({B, T, C}, 22 + T);
  Result fp32 = run(qkv, w, H, true);
  Result mixed;
  {
    PrecisionGuard bf16(Precision::bf16_mixed);
    mixed = run(qkv, w, H, true);
  }
  // bf16 keeps 8 significant bits: operands in [-2, 2) and probabilities in [0, 1] give errors of a
  // few 2^-8 relative to the values' scale, never more.
  EXPECT_TRUE(all_close(mixed.out, fp32.out, 3e-2, 3e-2));
  EXPECT_TRUE(all_close(mixed.grad, fp32.grad, 6e-2, 6e-2));
  if (T > 1) {
    EXPECT_FALSE(all_close(mixed.grad, fp32.grad, 0, 0)) << "bf16-mixed gave exactly the fp32 result";
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, MultiHeadAttention,
                         ::testing::Values(Shape4{1, 1, 1, 4}, Shape4{2, 5, 2, 8}, Shape4{3, 17, 3, 12},
                                           Shape4{2, 64, 4, 32}, Shape4{1, 130, 2, 16}));

// f64 runs the view path: check it against heads computed one by one with plain ops.
TEST(MultiHeadAttentionF64, EqualsPerHeadComposition) {
  const int64_t B = 2, T = 6, H = 2, D = 3, C = H * D;
  Tensor qkv = random_tensor({B, T, 3 * C}, 5, DType::f64);
  Tensor out = multi_head_attention(qkv, H, true);
  Tensor mask = Tensor::zeros({T, T}, DType::f64);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = i + 1; j < T; ++j) mask.data<double>()[i * T + j] = -1e300;
  for (int64_t h = 0; h < H; ++h) {
    Tensor q = slice(qkv, 2, h * D, (h + 1) * D);
    Tensor k = slice(qkv, 2, C + h * D, C + (h + 1) * D);
    Tensor v = slice(qkv, 2, 2 * C + h * D, 2 * C + (h + 1) * D);
    Tensor scores = add(mul_scalar(matmul(q, transpose(k, 1, 2)), 1.0 / std::sqrt(double(D))), mask);
    Tensor expected = matmul(softmax(scores, -1), v);  // (B, T, D)
    EXPECT_TRUE(all_close(slice(out, 2, h * D, (h + 1) * D).contiguous(), expected, 1e-12, 1e-12)) << "head " << h;
  }
}

TEST(MultiHeadAttentionF64, Gradcheck) {
  Tensor qkv = testing::random_leaf({2, 4, 3 * 6}, 9);
  GradcheckResult result =
      gradcheck([](const std::vector<Tensor>& in) { return multi_head_attention(in[0], 3, true); }, {qkv});
  EXPECT_TRUE(result.ok) << result.message;
}

TEST(MultiHeadAttentionErrors, BadShapes) {
  EXPECT_THROW(multi_head_attention(Tensor::zeros({2, 3, 8}), 2), InputError);   // 8 not a multiple of 3
  EXPECT_THROW(multi_head_attention(Tensor::zeros({2, 3, 9}), 2), InputError);   // C = 3 not a multiple of 2
  EXPECT_THROW(multi_head_attention(Tensor::zeros({3, 9}), 1), InputError);      // not (B, T, 3C)
  EXPECT_THROW(multi_head_attention(Tensor::zeros({2, 3, 9}, DType::i64), 1), InputError);
}

}  // namespace
}  // namespace frugal
