// embedding: gathers rows, scatter-adds gradients deterministically (the fast kernel's bits the
// same on one thread as on several, close to the reference) and rejects out-of-range indices.
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
