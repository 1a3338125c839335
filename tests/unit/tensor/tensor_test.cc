#include "frugal/tensor/tensor.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

namespace frugal {
namespace {

TEST(DType, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 lies exactly between two bf16 values (1 and 1 + 2^-7): ties go to even (1).
  EXPECT_EQ(float_to_bf16(1.0f + 1.0f / 256).bits, float_to_bf16(1.0f).bits);
  // 1 + 3*2^-8 is a tie between 1+2^-7 (odd) and 1+2^-6 (even): goes up to even.
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.0f + 3.0f / 256)), 1.0f + 1.0f / 64);
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.0f + 1.5f / 256)), 1.0f + 1.0f / 128);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  // A NaN whose payload sits only in the low bits must not round to infinity.
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(bits_float(0x7F800001u)))));
  EXPECT_EQ(bf16_to_float(float_to_bf16(INFINITY)), INFINITY);
  EXPECT_EQ(bf16_to_float(float_to_bf16(-INFINITY)), -INFINITY);
  EXPECT_EQ(bf16_to_float(float_to_bf16(3.4e38f)), INFINITY);  // above max bf16 rounds to inf
  float denormal = bits_float(0x00010000u);
  EXPECT_EQ(bf16_to_float(float_to_bf16(denormal)), denormal);
  EXPECT_EQ(float_to_bf16(-0.0f).bits, 0x8000);
}

TEST(DType, F16RoundTripAndEdges) {
  for (float v : {0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.960464477539063e-08f})
    EXPECT_EQ(f16_to_float(float_to_f16(v)), v) << v;
  EXPECT_EQ(f16_to_float(float_to_f16(65520.0f)), INFINITY);
  EXPECT_EQ(f16_to_float(float_to_f16(1e-9f)), 0.0f);
  EXPECT_TRUE(std::isnan(f16_to_float(float_to_f16(NAN))));
  EXPECT_EQ(f16_to_float(float_to_f16(1.0f + 1.0f / 2048)), 1.0f);           // tie to even
  EXPECT_EQ(f16_to_float(float_to_f16(1.0f + 3.0f / 2048)), 1.0f + 1.0f / 512);
  // Every f16 value survives f16 -> f32 -> f16.
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    f16_t h{uint16_t(bits)};
    float f = f16_to_float(h);
    if (std::isnan(f)) continue;
    EXPECT_EQ(float_to_f16(f).bits, h.bits) << bits;
  }
}

TEST(Tensor, AlignedStorageAndFill) {
  Tensor t = Tensor::full({3, 5}, 2.5);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.storage()->data()) % 64, 0u);
  EXPECT_EQ(t.numel(), 15);
  EXPECT_TRUE(t.is_contiguous());
  for (float v : t.to_vector<float>()) EXPECT_EQ(v, 2.5f);
}

TEST(Tensor, ViewsShareStorage) {
  Tensor t = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor tt = t.transpose_view(0, 1);
  EXPECT_EQ(tt.shape(), (Shape{3, 2}));
  EXPECT_FALSE(tt.is_contiguous());
  EXPECT_EQ(tt.storage(), t.storage());
  EXPECT_EQ(tt.at({2, 1}), 5.0);
  EXPECT_EQ(tt.contiguous().to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  Tensor s = t.slice_view(1, 1, 3);
  EXPECT_EQ(s.to_vector<float>(), (std::vector<float>{1, 2, 4, 5}));
  Tensor strided = t.view({6}).slice_view(0, 0, 6, 2);
  EXPECT_EQ(strided.to_vector<float>(), (std::vector<float>{0, 2, 4}));
  Tensor e = Tensor::from_vector<float>({7, 8}, {2, 1}).expand_view({2, 3});
  EXPECT_EQ(e.to_vector<float>(), (std::vector<float>{7, 7, 7, 8, 8, 8}));
  EXPECT_EQ(t.view({3, -1}).shape(), (Shape{3, 2}));
  EXPECT_EQ(t.select_view(0, 1).to_vector<float>(), (std::vector<float>{3, 4, 5}));
  EXPECT_EQ(t.permute_view({1, 0}).shape(), (Shape{3, 2}));
}

TEST(Tensor, ConversionsBetweenDtypes) {
  Tensor t = Tensor::from_vector<float>({1.5f, -2.0f, 3.25f}, {3});
  EXPECT_EQ(t.to(DType::bf16).to(DType::f32).to_vector<float>(), t.to_vector<float>());
  EXPECT_EQ(t.to(DType::i32).to_vector<int32_t>(), (std::vector<int32_t>{1, -2, 3}));
  EXPECT_EQ(t.to(DType::f16).to(DType::f64).to_vector<double>(), (std::vector<double>{1.5, -2.0, 3.25}));
}

TEST(Tensor, BroadcastShapes) {
  EXPECT_EQ(broadcast_shapes({4, 1, 3}, {5, 1}), (Shape{4, 5, 3}));
  EXPECT_THROW(broadcast_shapes({2, 3}, {4}), InputError);
}

TEST(Tensor, ViewOfNonContiguousIsAnError) {
  Tensor t = Tensor::zeros({2, 3}).transpose_view(0, 1);
  EXPECT_THROW(t.view({6}), InternalError);
}

}  // namespace
}  // namespace frugal

namespace frugal {
namespace {

TEST(Storage, CachingAllocatorReusesBlocksInSteadyState) {
  auto step = [] {
    std::vector<Tensor> live;
    for (int64_t n : {1, 7, 1000, 4097, 100000, 3000000}) live.push_back(Tensor::empty({n}));
    return live.size();
  };
  step();  // first step: blocks come from the system
  int64_t before = Storage::system_allocations();
  for (int i = 0; i < 10; ++i) step();
  EXPECT_EQ(Storage::system_allocations(), before) << "steady-state steps must not call the system allocator";
  EXPECT_GT(Storage::cached_bytes(), 3000000 * 4);
  Storage::release_cache();
  EXPECT_EQ(Storage::cached_bytes(), 0);
}

TEST(Tensor, StridedCopiesMatchElementwise) {
  Tensor t = Tensor::arange(2 * 3 * 5, DType::f32).view({2, 3, 5});
  Tensor p = t.permute_view({1, 0, 2}).contiguous();  // rows stay unit-stride: the row-copy path
  for (int64_t a = 0; a < 3; ++a)
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t c = 0; c < 5; ++c) EXPECT_EQ(p.at({a, b, c}), t.at({b, a, c}));
  Tensor q = t.permute_view({2, 1, 0}).contiguous();  // strided rows: the element path
  EXPECT_EQ(q.at({4, 2, 1}), t.at({1, 2, 4}));
}

// Float -> integer conversion is defined for every value (UBSan found 256.0 -> u8 undefined): through
// int64, NaN -> 0, narrowed modulo 2^bits.
TEST(Tensor, FloatToIntegerOutOfRangeIsDefined) {
  Tensor x = Tensor::from_vector(std::vector<double>{256.0, 257.5, -1.0, std::nan(""), 1e300, 7.9}, {6});
  EXPECT_EQ(x.to(DType::u8).to_vector<double>(), (std::vector<double>{0, 1, 255, 0, 255, 7}));
  EXPECT_EQ(x.to(DType::i64).to_vector<double>()[3], 0.0);
  EXPECT_EQ(x.to(DType::i64).at({4}), double(INT64_MAX));
}

// Packed NCHW <-> channels-last copies, both ways: every element lands where the element-wise
// rule puts it, for each element size, odd sizes and size-1 axes.
TEST(Tensor, LayoutChangeCopiesMatchElementwise) {
  for (DType dtype : {DType::f32, DType::bf16, DType::u8, DType::i64, DType::f64})
    for (Shape shape : std::vector<Shape>{{2, 3, 4, 5}, {3, 37, 7, 9}, {1, 64, 2, 33}, {2, 1, 3, 3}, {2, 5, 1, 1}}) {
      const int64_t n = shape_numel(shape);
      Tensor packed = Tensor::arange(n, DType::f64).view(shape).to(dtype);
      Tensor cl = to_channels_last(packed);
      ASSERT_TRUE(is_channels_last(cl));
      Tensor back = cl.contiguous();
      for (int64_t i = 0; i < shape[0]; ++i)
        for (int64_t c = 0; c < shape[1]; ++c)
          for (int64_t h = 0; h < shape[2]; ++h)
            for (int64_t w = 0; w < shape[3]; ++w) {
              ASSERT_EQ(cl.at({i, c, h, w}), packed.at({i, c, h, w})) << dtype_name(dtype) << shape_str(shape);
              ASSERT_EQ(back.at({i, c, h, w}), packed.at({i, c, h, w})) << dtype_name(dtype) << shape_str(shape);
            }
      // The channels-last buffer itself is (N, H, W, C): (i, c, h, w) at ((i H + h) W + w) C + c.
      if (dtype == DType::f32 && shape == Shape{2, 3, 4, 5})
        EXPECT_EQ(double(cl.data<float>()[((1 * 4 + 2) * 5 + 3) * 3 + 1]), packed.at({1, 1, 2, 3}));
    }
}

}  // namespace
}  // namespace frugal
