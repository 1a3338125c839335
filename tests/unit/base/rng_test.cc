#include "frugal/base/rng.h"

#include <gtest/gtest.h>

namespace frugal {
namespace {

TEST(Philox, MatchesPublishedVector) {
  // Known-answer test from the Random123 distribution (philox4x32_10, zero counter and key).
  auto out = philox4x32({0, 0, 0, 0}, 0);
  EXPECT_EQ(out[0], 0x6627e8d5u);
  EXPECT_EQ(out[1], 0xe169c58du);
  EXPECT_EQ(out[2], 0xbc57ac4cu);
  EXPECT_EQ(out[3], 0x9b00dbd8u);
}

TEST(Rng, SameKeySameStream) {
  Rng a(42, 7, RandomPurpose::shuffle), b(42, 7, RandomPurpose::shuffle), c(42, 8, RandomPurpose::shuffle);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    uint32_t x = a.next_u32();
    EXPECT_EQ(x, b.next_u32());
    differs |= x != c.next_u32();
  }
  EXPECT_TRUE(differs);
}

TEST(Rng, UniformAndNormalMoments) {
  Rng rng(1, 0);
  double sum = 0, sum_sq = 0, nsum = 0, nsum_sq = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    double u = rng.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    sum_sq += u * u;
    double z = rng.normal();
    nsum += z;
    nsum_sq += z * z;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);
  EXPECT_NEAR(sum_sq / n - 0.25, 1.0 / 12, 0.005);
  EXPECT_NEAR(nsum / n, 0.0, 0.01);
  EXPECT_NEAR(nsum_sq / n, 1.0, 0.01);
}

TEST(Rng, BelowIsInRangeAndCoversIt) {
  Rng rng(3, 0);
  int counts[7] = {};
  for (int i = 0; i < 7000; ++i) {
    uint64_t v = rng.below(7);
    ASSERT_LT(v, 7u);
    ++counts[v];
  }
  for (int c : counts) EXPECT_GT(c, 800);
}

}  // namespace
}  // namespace frugal
