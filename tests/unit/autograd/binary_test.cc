#include <gtest/gtest.h>

#include "frugal/autograd/gradcheck.h"
#include "frugal/autograd/ops.h"
#include "frugal/kernels/kernels.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::all_close;
using testing::random_leaf;
using testing::random_tensor;

TEST(Binary, GradcheckWithBroadcasting) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 4}, {3, 4}}, {{2, 3, 4}, {4}}, {{2, 3, 4}, {3, 1}}, {{1}, {5, 2}}, {{2, 1, 3}, {1, 4, 1}}, {{}, {3}}};
  for (auto [sa, sb] : cases) {
    Tensor a = random_leaf(sa, 1), b = random_leaf(sb, 2, 0.5, 2.0);
    for (auto op : {add, sub, mul, div}) {
      auto r = gradcheck([&](const std::vector<Tensor>& in) { return op(in[0], in[1]); }, {a, b});
      EXPECT_TRUE(r.ok) << shape_str(sa) << " " << shape_str(sb) << ": " << r.message;
    }
  }
}

TEST(Binary, ScalarOpsGradcheck) {
  Tensor a = random_leaf({4, 3}, 3);
  auto r = gradcheck([](const std::vector<Tensor>& in) { return neg(mul_scalar(add_scalar(in[0], 2.0), 3.0)); }, {a});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Binary, FastMatchesReferenceOnRandomShapes) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{1}, {1}}, {{7}, {7}}, {{33, 17}, {17}}, {{33, 17}, {33, 1}}, {{5, 1, 9}, {1, 3, 9}},
      {{2, 3, 5, 7}, {3, 1, 1}}, {{100000}, {100000}}, {{300, 257}, {300, 257}}, {{4, 6}, {}}};
  for (auto [sa, sb] : cases)
    for (auto op : {add, sub, mul, div}) {
      Tensor a = random_tensor(sa, 4), b = random_tensor(sb, 5, DType::f32, 0.5, 2.0);
      Tensor fast = op(a, b);
      Tensor reference;
      {
        kernels::ReferenceModeGuard guard;
        reference = op(a, b);
      }
      EXPECT_TRUE(all_close(fast, reference, 1e-6, 1e-6)) << shape_str(sa) << " " << shape_str(sb);
    }
}

TEST(Binary, NonContiguousInputs) {
  Tensor a = random_tensor({6, 4}, 6).transpose_view(0, 1);  // (4, 6), strided
  Tensor b = random_tensor({4, 6}, 7);
  Tensor expected = add(a.contiguous(), b);
  EXPECT_TRUE(all_close(add(a, b), expected, 0, 0));
}

TEST(Binary, DtypeMismatchIsAnError) {
  EXPECT_THROW(add(Tensor::zeros({2}), Tensor::zeros({2}, DType::f64)), InputError);
  EXPECT_THROW(add(Tensor::zeros({2}), Tensor::zeros({3})), InputError);
}

TEST(Autograd, GradientsAccumulateAcrossBackwardCalls) {
  Tensor a = random_leaf({3}, 8);
  autograd::backward(sum(mul_scalar(a, 2.0)));
  autograd::backward(sum(mul_scalar(a, 3.0)));
  for (double g : a.grad().to_vector<double>()) EXPECT_DOUBLE_EQ(g, 5.0);
}

TEST(Autograd, NoGradRecordsNothing) {
  Tensor a = random_leaf({3}, 9);
  autograd::NoGradGuard no_grad;
  Tensor b = mul(a, a);
  EXPECT_FALSE(b.requires_grad());
  EXPECT_EQ(b.grad_fn(), nullptr);
}

TEST(Autograd, SharedSubexpressionGetsBothGradients) {
  Tensor a = random_leaf({2, 2}, 10);
  Tensor b = mul(a, a);           // used twice below
  Tensor c = add(b, mul(b, a));   // c = a^2 + a^3 -> dc/da = 2a + 3a^2
  autograd::backward(sum(c));
  std::vector<double> av = a.to_vector<double>(), g = a.grad().to_vector<double>();
  for (size_t i = 0; i < av.size(); ++i) EXPECT_NEAR(g[i], 2 * av[i] + 3 * av[i] * av[i], 1e-12);
}

// A leaf's .grad owns its buffer: a backward's fresh gradient is taken as it is, one that is
// shared (add passes the same gradient to both inputs; a view shares its base's buffer) is
// copied, so changing one .grad in place (an optimizer step) changes no other.
TEST(Autograd, LeafGradientsOwnTheirBuffers) {
  Tensor a = random_leaf({2, 3}, 11), b = random_leaf({2, 3}, 12), c = random_leaf({3, 2}, 13);
  Tensor seed = random_tensor({2, 3}, 14, DType::f64);
  autograd::backward(add(add(a, b), mul(reshape(c, {2, 3}), a)), seed);
  for (const Tensor* t : {&a, &b, &c}) EXPECT_EQ(t->grad().storage().use_count(), 1);
  EXPECT_NE(a.grad().storage(), b.grad().storage());
  const std::vector<double> before = b.grad().to_vector<double>();
  EXPECT_EQ(before, seed.to_vector<double>());
  a.grad().fill(7.0), c.grad().fill(8.0);
  EXPECT_EQ(b.grad().to_vector<double>(), before);
  EXPECT_EQ(seed.to_vector<double>(), before) << "the caller's seed is not the .grad either";
  // The root itself a leaf: its .grad is a copy of the seed.
  Tensor d = random_leaf({2, 3}, 15);
  autograd::backward(d, seed);
  EXPECT_NE(d.grad().storage(), seed.storage());
}

// backward_returning hands the returned leaves' gradients back (the same values backward would
// add into .grad) and leaves their .grad alone; the other leaves accumulate as usual.
TEST(Autograd, BackwardReturningGivesGradientsWithoutTouchingGrad) {
  Tensor a = random_leaf({2, 3}, 21), b = random_leaf({2, 3}, 22), unused = random_leaf({2}, 23);
  Tensor seed = random_tensor({2, 3}, 24, DType::f64);
  auto graph = [&] { return add(mul(a, b), mul(a, a)); };  // a used twice: its gradients add
  autograd::backward(graph(), seed);
  const std::vector<double> grad_a = a.grad().to_vector<double>(), grad_b = b.grad().to_vector<double>();
  a.set_grad(Tensor()), b.set_grad(Tensor());
  std::vector<Tensor> got = autograd::backward_returning(graph(), seed, {a, unused});
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].to_vector<double>(), grad_a);
  EXPECT_FALSE(got[1].defined()) << "no gradient reaches an unused leaf";
  EXPECT_FALSE(a.grad().defined()) << "a returned leaf's .grad is not written";
  EXPECT_EQ(b.grad().to_vector<double>(), grad_b);
  EXPECT_THROW(autograd::backward_returning(graph(), seed, {mul(a, b)}), InternalError) << "not a leaf";
}

TEST(Reduce, SumMeanGradcheck) {
  Tensor x = random_leaf({2, 3, 4}, 11);
  for (std::vector<int64_t> axes : std::vector<std::vector<int64_t>>{{}, {0}, {1}, {2}, {0, 2}, {-1, 0}, {1, 2}})
    for (bool keepdim : {false, true}) {
      auto r = gradcheck([&](const std::vector<Tensor>& in) { return sum(in[0], axes, keepdim); }, {x});
      EXPECT_TRUE(r.ok) << r.message;
      r = gradcheck([&](const std::vector<Tensor>& in) { return mean(in[0], axes, keepdim); }, {x});
      EXPECT_TRUE(r.ok) << r.message;
    }
}

TEST(Reduce, FastSumMatchesReference) {
  for (Shape shape : std::vector<Shape>{{1}, {17}, {1000, 33}, {3, 5000}, {7, 9, 11}, {2, 70000}})
    for (std::vector<int64_t> axes : std::vector<std::vector<int64_t>>{{}, {0}, {-1}}) {
      Tensor x = random_tensor(shape, 12);
      Tensor fast = sum(x, axes), reference;
      {
        kernels::ReferenceModeGuard guard;
        reference = sum(x, axes);
      }
      EXPECT_TRUE(all_close(fast, reference, 1e-5, 1e-5)) << shape_str(shape);
    }
}

}  // namespace
}  // namespace frugal
