// dropout: the mask is reproducible from (seed, stream) and differs across streams, keeps ~1-p of
// the elements, scales the gradient by mask/(1-p), and the fast kernel draws the reference's mask.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "frugal/autograd/gradcheck.h"
#include "frugal/autograd/ops.h"
#include "frugal/base/rng.h"
#include "frugal/kernels/kernels.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::all_close;
using testing::random_leaf;
using testing::random_tensor;

std::vector<bool> kept(const Tensor& y) {
  std::vector<bool> mask;
  for (double v : y.to_vector<double>()) mask.push_back(v != 0.0);
  return mask;
}

TEST(Dropout, MaskIsReproducibleAndDependsOnStream) {
  Tensor x = random_tensor({1000}, 1, DType::f32, 0.5, 1.5);  // no zeros, so zeros mark drops
  std::vector<bool> a = kept(dropout(x, 0.3, true, 42, 7));
  EXPECT_EQ(a, kept(dropout(x, 0.3, true, 42, 7)));
  EXPECT_NE(a, kept(dropout(x, 0.3, true, 42, 8)));
  EXPECT_NE(a, kept(dropout(x, 0.3, true, 43, 7)));
  // The mask is the counter-based stream itself: element i kept iff the i-th uniform draw of
  // Rng(seed, stream, dropout) is >= p. Reruns and resumes need nothing but (seed, stream).
  Rng rng(42, 7, RandomPurpose::dropout);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], double(rng.uniform()) >= 0.3) << i;
}

TEST(Dropout, KeptFractionAndScale) {
  const int64_t n = 200001;
  Tensor x = Tensor::ones({n});
  for (double p : {0.1, 0.5, 0.9}) {
    std::vector<float> y = dropout(x, p, true, 5, 0).to_vector<float>();
    int64_t count = 0;
    for (float v : y) {
      if (v != 0.0f) {
        ++count;
        EXPECT_NEAR(v, 1.0 / (1.0 - p), 1e-6);
      }
    }
    const double sd = std::sqrt(p * (1 - p) / double(n));  // binomial standard deviation of the fraction
    EXPECT_NEAR(double(count) / double(n), 1.0 - p, 5 * sd) << "p = " << p;
  }
}

TEST(Dropout, GradientIsMaskOverKeepProbability) {
  for (DType dtype : {DType::f32, DType::f64}) {
    Tensor x = random_tensor({37, 29}, 2, dtype, 0.5, 1.5);
    x.set_requires_grad(true);
    const double p = 0.25;
    Tensor y = dropout(x, p, true, 9, 3);
    autograd::backward(y, Tensor::ones(y.shape(), dtype));
    std::vector<bool> mask = kept(y);
    std::vector<double> g = x.grad().to_vector<double>();
    for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], mask[i] ? 1.0 / (1.0 - p) : 0.0, 1e-6) << i;
  }
  Tensor leaf = random_leaf({3, 5}, 3);
  auto r = gradcheck([](const std::vector<Tensor>& in) { return dropout(in[0], 0.4, true, 1, 2); }, {leaf});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Dropout, EvalZeroAndOne) {
  Tensor x = random_tensor({4, 6}, 4);
  EXPECT_TRUE(all_close(dropout(x, 0.5, false, 1, 1), x, 0, 0));
  EXPECT_TRUE(all_close(dropout(x, 0.0, true, 1, 1), x, 0, 0));
  Tensor strided = random_tensor({4, 3}, 4, DType::f64).transpose_view(0, 1);  // (3, 4), not packed
  strided.set_requires_grad(true);
  Tensor y_eval = dropout(strided, 0.5, false, 1, 1);
  EXPECT_TRUE(y_eval.is_contiguous());
  autograd::backward(sum(y_eval));
  EXPECT_TRUE(all_close(strided.grad(), Tensor::ones({3, 4}, DType::f64), 0, 0));
  Tensor leaf = random_tensor({4, 6}, 4);
  leaf.set_requires_grad(true);
  Tensor y = dropout(leaf, 1.0, true, 1, 1);
  EXPECT_TRUE(all_close(y, Tensor::zeros({4, 6}), 0, 0));
  autograd::backward(sum(y));
  EXPECT_TRUE(all_close(leaf.grad(), Tensor::zeros({4, 6}), 0, 0));
  EXPECT_THROW(dropout(x, -0.1, true, 1, 1), InputError);
  EXPECT_THROW(dropout(x, 1.5, true, 1, 1), InputError);
  EXPECT_THROW(dropout(x, NAN, true, 1, 1), InputError);
}

TEST(Dropout, FastMatchesReference) {
  for (Shape shape : std::vector<Shape>{{1}, {7}, {33, 17}, {300, 257}, {200001}}) {
    Tensor x = random_tensor(shape, 5);
    Tensor fast = dropout(x, 0.35, true, 11, 12), reference;
    {
      kernels::ReferenceModeGuard guard;
      reference = dropout(x, 0.35, true, 11, 12);
    }
    EXPECT_EQ(kept(fast), kept(reference)) << shape_str(shape);
    EXPECT_TRUE(all_close(fast, reference, 1e-6, 1e-6)) << shape_str(shape);
  }
  // A strided input gets the mask of its row-major element order.
  Tensor t = random_tensor({6, 5}, 6).transpose_view(0, 1);
  EXPECT_TRUE(all_close(dropout(t, 0.5, true, 1, 1), dropout(t.contiguous(), 0.5, true, 1, 1), 0, 0));
}

}  // namespace
}  // namespace frugal
