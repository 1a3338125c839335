// The fast kernels' one exp (kernels/cpu/activation.h) against std::exp: within 2 ulp on its
// range [-87.3, 88], 0 below it (exp(-inf) = 0 for the online softmax), e^88 above, NaN kept.
// Limits: sampled, not exhaustive, in the range.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "frugal/kernels/cpu/activation.h"

namespace frugal {
namespace {
using kernels::cpu::fast::exp;

TEST(FastExp, CloseToStdExpOverItsRange) {
  // A million points from -87.3 to 88 and a million within +-1e-3 of 0: the error in f32 ulps of
  // the exact value.
  double worst_ulps = 0;
  auto check = [&](float x) {
    const double exact = std::exp(double(x));
    const double ulp = std::ldexp(1.0, std::ilogb(exact) - 23);
    worst_ulps = std::max(worst_ulps, std::abs(double(exp(x)) - exact) / ulp);
  };
  const int points = 1 << 20;
  for (int i = 0; i <= points; ++i) check(-87.3f + float(i) * (175.3f / float(points)));
  for (int i = -points / 2; i <= points / 2; ++i) check(float(i) * (2e-3f / float(points)));
  EXPECT_LE(worst_ulps, 2.0);
  EXPECT_EQ(exp(0.0f), 1.0f);
}

TEST(FastExp, EdgesOfTheRange) {
  const float inf = std::numeric_limits<float>::infinity();
  // Every non-zero result is a normal float: the lowest kept input gives e^-87.3 = 1.22e-38.
  EXPECT_GE(exp(-87.3f), std::numeric_limits<float>::min());
  EXPECT_NEAR(exp(-87.3f), std::exp(double(-87.3f)), 1e-44);
  EXPECT_EQ(exp(std::nextafter(-87.3f, -inf)), 0.0f);
  EXPECT_EQ(exp(-100.0f), 0.0f);
  EXPECT_EQ(exp(-inf), 0.0f);  // the online softmax's first block: exp(-inf - max) = 0
  EXPECT_EQ(exp(88.5f), exp(88.0f));
  EXPECT_EQ(exp(inf), exp(88.0f));
  EXPECT_TRUE(std::isfinite(exp(inf)));
  EXPECT_TRUE(std::isnan(exp(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(exp(-std::numeric_limits<float>::quiet_NaN())));
}

}  // namespace
}  // namespace frugal
