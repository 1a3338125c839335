// dropout and embedding: the dropout mask is reproducible from (seed, stream), differs across
// streams, keeps ~1-p of the elements and scales the gradient by mask/(1-p); embedding gathers
// rows, scatter-adds gradients deterministically and rejects out-of-range indices.
#include <cmath>
#include <string>

#include <gtest/gtest.h>

#include "frugal/autograd/gradcheck.h"
#include "frugal/autograd/ops.h"
#include "frugal/base/parallel.h"
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

TEST(Embedding, GathersRows) {
  Tensor weight = random_tensor({5, 3}, 7);
  for (DType index_type : {DType::i32, DType::i64}) {
    Tensor indices = Tensor::from_vector<int64_t>({4, 0, 4, 2, 1, 3}, {2, 3}).to(index_type);
    Tensor out = embedding(indices, weight);
    ASSERT_EQ(out.shape(), (Shape{2, 3, 3}));
    std::vector<int64_t> flat = indices.to(DType::i64).to_vector<int64_t>();
    for (int64_t k = 0; k < 6; ++k)
      for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(out.at({k / 3, k % 3, c}), weight.at({flat[size_t(k)], c}));
  }
  Tensor scalar_index = Tensor::from_vector<int32_t>({2}, {});
  EXPECT_EQ(embedding(scalar_index, weight).shape(), (Shape{3}));
}

TEST(Embedding, GradcheckWithRepeatedIndices) {
  Tensor weight = random_leaf({6, 4}, 8);
  for (Shape shape : std::vector<Shape>{{1}, {5}, {2, 3}}) {
    std::vector<int64_t> values;
    for (int64_t k = 0; k < shape_numel(shape); ++k) values.push_back((k * 5 + 1) % 3);  // repeats rows 0..2
    Tensor indices = Tensor::from_vector(values, shape);
    auto r = gradcheck([&](const std::vector<Tensor>& in) { return embedding(indices, in[0]); }, {weight});
    EXPECT_TRUE(r.ok) << shape_str(shape) << ": " << r.message;
  }
}

TEST(Embedding, BackwardScatterAdds) {
  Tensor weight = random_tensor({4, 2}, 9);
  weight.set_requires_grad(true);
  Tensor indices = Tensor::from_vector<int32_t>({1, 3, 1, 1}, {4});
  Tensor g = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8}, {4, 2});
  autograd::backward(embedding(indices, weight), g);
  EXPECT_EQ(weight.grad().to_vector<float>(), (std::vector<float>{0, 0, 1 + 5 + 7, 2 + 6 + 8, 0, 0, 3, 4}));
}

TEST(Embedding, FastMatchesReferenceAndIsDeterministic) {
  struct Case { int64_t count, rows, channels; };
  for (Case c : {Case{1, 1, 1}, Case{7, 3, 5}, Case{5000, 50, 37}, Case{4096, 1000, 64}}) {
    std::vector<int64_t> values;
    Rng rng(10, 0, RandomPurpose::test);
    for (int64_t k = 0; k < c.count; ++k) values.push_back(int64_t(rng.below(uint64_t(c.rows))));
    Tensor indices = Tensor::from_vector(values, {c.count});
    Tensor weight = random_tensor({c.rows, c.channels}, 11);
    Tensor g = random_tensor({c.count, c.channels}, 12);
    auto run = [&](bool reference) {
      kernels::ReferenceModeGuard guard(reference);
      Tensor w = weight.clone();
      w.set_requires_grad(true);
      Tensor out = embedding(indices, w);
      autograd::backward(out, g);
      return std::make_pair(out.detach(), w.grad());
    };
    auto [fast_out, fast_grad] = run(false);
    auto [ref_out, ref_grad] = run(true);
    EXPECT_TRUE(all_close(fast_out, ref_out, 0, 0)) << c.count;
    EXPECT_TRUE(all_close(fast_grad, ref_grad, 1e-6, 1e-5)) << c.count;
    // The fast scatter-add gives the same bits on one thread as on several.
    const int threads = num_threads();
    set_num_threads(1);
    auto [one_out, one_grad] = run(false);
    set_num_threads(threads);
    EXPECT_TRUE(all_close(one_grad, fast_grad, 0, 0)) << c.count;
  }
}

TEST(Embedding, OutOfRangeIndexIsAnInputError) {
  Tensor weight = random_tensor({65, 8}, 13);
  for (int64_t bad : {int64_t(65), int64_t(-1), int64_t(1000)}) {
    Tensor indices = Tensor::from_vector<int64_t>({3, bad, 0}, {3});
    try {
      embedding(indices, weight);
      ADD_FAILURE() << "no error for index " << bad;
    } catch (const InputError& e) {
      std::string message = e.what();
      EXPECT_NE(message.find("index " + std::to_string(bad)), std::string::npos) << message;
      EXPECT_NE(message.find("65"), std::string::npos) << message;
      EXPECT_NE(message.find("position 1"), std::string::npos) << message;
    }
  }
  EXPECT_THROW(embedding(Tensor::zeros({2}, DType::f32), weight), InputError);
  EXPECT_THROW(embedding(Tensor::zeros({2}, DType::i64), Tensor::zeros({4})), InputError);
}

}  // namespace
}  // namespace frugal
