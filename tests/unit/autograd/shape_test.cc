// permute, transpose, slice, concat: values against index arithmetic, gradcheck in f64 on shapes
// with rank 1, odd and size-1 axes and negative axes, and the input errors.
#include <gtest/gtest.h>

#include "frugal/autograd/gradcheck.h"
#include "frugal/autograd/ops.h"
#include "test_util.h"

namespace frugal {
namespace {
using testing::all_close;
using testing::random_leaf;
using testing::random_tensor;

TEST(Shape, PermuteMovesValues) {
  Tensor x = random_tensor({2, 3, 5}, 1);
  Tensor y = permute(x, {2, 0, 1});  // (5, 2, 3)
  ASSERT_EQ(y.shape(), (Shape{5, 2, 3}));
  EXPECT_TRUE(y.is_contiguous());
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t c = 0; c < 5; ++c) EXPECT_EQ(y.at({c, a, b}), x.at({a, b, c}));
  Tensor t = transpose(x, -1, 0);  // (5, 3, 2)
  ASSERT_EQ(t.shape(), (Shape{5, 3, 2}));
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t c = 0; c < 5; ++c) EXPECT_EQ(t.at({c, b, a}), x.at({a, b, c}));
}

TEST(Shape, PermuteMatchesStridedCopyForEveryElementSize) {
  // permute copies transposes in tiles; the plain strided copy of the view is the reference.
  const std::vector<std::pair<Shape, std::vector<int64_t>>> cases = {
      {{1, 1}, {1, 0}},          {{37, 45}, {1, 0}},          {{3, 33, 70}, {2, 0, 1}}, {{3, 33, 70}, {1, 2, 0}},
      {{2, 3, 40, 50}, {0, 3, 1, 2}}, {{5, 1, 7}, {2, 1, 0}}, {{600, 701}, {1, 0}},     {{64, 3, 1000}, {2, 1, 0}}};
  for (auto [shape, axes] : cases)
    for (DType dtype : {DType::f32, DType::f64, DType::bf16, DType::i8, DType::i64}) {
      Tensor x = random_tensor(shape, 13, DType::f64, -100.0, 100.0).to(dtype);
      Tensor y = permute(x, axes);
      EXPECT_TRUE(y.is_contiguous());
      EXPECT_TRUE(all_close(y, x.permute_view(axes).clone(), 0, 0)) << shape_str(shape) << " " << dtype_name(dtype);
    }
  Tensor x = random_tensor({9, 8, 7}, 14);
  Tensor strided = x.slice_view(2, 1, 7, 2);  // (9, 8, 3), strides (56, 7, 2)
  EXPECT_TRUE(all_close(transpose(strided, 0, 2), strided.transpose_view(0, 2).clone(), 0, 0));
}

TEST(Shape, SliceWithStepAndNegativeBounds) {
  Tensor x = Tensor::arange(10).to(DType::f32);
  EXPECT_EQ(slice(x, 0, 1, 8, 3).to_vector<float>(), (std::vector<float>{1, 4, 7}));
  EXPECT_EQ(slice(x, 0, -3, 10).to_vector<float>(), (std::vector<float>{7, 8, 9}));
  EXPECT_EQ(slice(x, -1, 0, -8, 2).to_vector<float>(), (std::vector<float>{0}));
  EXPECT_EQ(slice(x, 0, 5, 100, 4).to_vector<float>(), (std::vector<float>{5, 9}));
  EXPECT_EQ(slice(x, 0, 6, 2).numel(), 0);
  Tensor m = random_tensor({4, 7}, 2);
  Tensor s = slice(m, 1, 1, 7, 2);  // (4, 3)
  ASSERT_EQ(s.shape(), (Shape{4, 3}));
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(s.at({i, j}), m.at({i, 1 + 2 * j}));
}

TEST(Shape, ConcatAlongEveryAxis) {
  Tensor a = random_tensor({2, 3, 4}, 3), b = random_tensor({2, 1, 4}, 4), c = random_tensor({2, 5, 4}, 5);
  Tensor y = concat({a, b, c}, -2);
  ASSERT_EQ(y.shape(), (Shape{2, 9, 4}));
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t k = 0; k < 4; ++k) {
      for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(y.at({i, j, k}), a.at({i, j, k}));
      EXPECT_EQ(y.at({i, 3, k}), b.at({i, 0, k}));
      for (int64_t j = 0; j < 5; ++j) EXPECT_EQ(y.at({i, 4 + j, k}), c.at({i, j, k}));
    }
  // Concat of pieces along each axis gives back the original, also from strided inputs.
  Tensor x = random_tensor({3, 4, 5}, 6);
  for (int64_t axis = 0; axis < 3; ++axis) {
    int64_t n = x.shape()[axis];
    Tensor back = concat({slice(x, axis, 0, 1), x.slice_view(axis, 1, n - 1), slice(x, axis, n - 1, n)}, axis);
    EXPECT_TRUE(all_close(back, x, 0, 0)) << "axis " << axis;
  }
  Tensor ints = concat({Tensor::arange(3), Tensor::arange(2)}, 0);
  EXPECT_EQ(ints.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 0, 1}));
}

TEST(Shape, Gradcheck) {
  for (Shape shape : std::vector<Shape>{{5}, {3, 1, 4}, {2, 3, 5}, {1, 7}}) {
    Tensor x = random_leaf(shape, 7);
    const int64_t rank = int64_t(shape.size());
    std::vector<int64_t> reversed;
    for (int64_t i = rank - 1; i >= 0; --i) reversed.push_back(i - rank);  // negative axes
    auto r = gradcheck([&](const std::vector<Tensor>& in) { return permute(in[0], reversed); }, {x});
    EXPECT_TRUE(r.ok) << shape_str(shape) << " permute: " << r.message;
    r = gradcheck([&](const std::vector<Tensor>& in) { return transpose(in[0], 0, -1); }, {x});
    EXPECT_TRUE(r.ok) << shape_str(shape) << " transpose: " << r.message;
    for (int64_t step : {1, 2, 3}) {
      r = gradcheck([&](const std::vector<Tensor>& in) { return slice(in[0], -1, 1, shape.back(), step); }, {x});
      EXPECT_TRUE(r.ok) << shape_str(shape) << " slice step " << step << ": " << r.message;
      r = gradcheck([&](const std::vector<Tensor>& in) { return slice(in[0], 0, -2, 100, step); }, {x});
      EXPECT_TRUE(r.ok) << shape_str(shape) << " slice axis 0: " << r.message;
    }
    for (int64_t axis = -rank; axis < rank; ++axis) {
      Shape other_shape = shape;
      other_shape[normalize_axis(axis, rank)] = 2;
      Tensor y = random_leaf(other_shape, 8);
      r = gradcheck([&](const std::vector<Tensor>& in) { return concat({in[0], in[1], in[0]}, axis); }, {x, y});
      EXPECT_TRUE(r.ok) << shape_str(shape) << " concat axis " << axis << ": " << r.message;
    }
  }
}

TEST(Shape, ConcatGradientOnlyForInputsThatNeedIt) {
  Tensor a = random_leaf({2, 3}, 9);
  Tensor b = random_tensor({2, 2}, 10, DType::f64);
  Tensor y = concat({a, b}, 1);
  autograd::backward(sum(mul(y, y)));
  EXPECT_TRUE(all_close(a.grad(), mul_scalar(a, 2.0), 1e-12, 0));
  EXPECT_FALSE(b.grad().defined());
}

TEST(Shape, InputErrors) {
  Tensor x = random_tensor({2, 3}, 11);
  EXPECT_THROW(permute(x, {0}), InputError);
  EXPECT_THROW(permute(x, {0, 0}), InputError);
  EXPECT_THROW(permute(x, {0, 2}), InputError);
  EXPECT_THROW(transpose(x, 0, 2), InputError);
  EXPECT_THROW(slice(x, 2, 0, 1), InputError);
  EXPECT_THROW(slice(x, 0, 0, 1, 0), InputError);
  EXPECT_THROW(concat({}, 0), InputError);
  EXPECT_THROW(concat({x, random_tensor({3, 3}, 12)}, 1), InputError);
  EXPECT_THROW(concat({x, random_tensor({2, 3}, 12, DType::f64)}, 0), InputError);
}

}  // namespace
}  // namespace frugal
