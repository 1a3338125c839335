#include "frugal/cost/peak.h"

#include <gtest/gtest.h>

namespace frugal::cost {
namespace {

TEST(Peak, MeasuresAPlausibleRate) {
  PeakFlops one = measure_peak_flops(1, 0.05);
  EXPECT_EQ(one.threads, 1);
  // Any x86-64 core of the last decade does more than 1 GFLOP/s of f32 FMAs and far less than 1 PFLOP/s.
  EXPECT_GT(one.fp32, 1e9);
  EXPECT_LT(one.fp32, 1e15);
#if defined(__AVX512BF16__)
  // Not necessarily above fp32: on Sapphire Rapids vdpbf16ps issues at a quarter of the FMA rate
  // (bf16's real peak there is in the AMX tiles, which oneDNN uses).
  EXPECT_GT(one.bf16, 1e9);
#else
  EXPECT_EQ(one.bf16, 0.0);
#endif
}

}  // namespace
}  // namespace frugal::cost
