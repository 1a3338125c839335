// Human units (base/units.h): the figures of issue 22's examples and the edges of each scale.
#include "frugal/base/units.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

namespace frugal {
namespace {

TEST(Units, SignificantDigits) {
  EXPECT_EQ(significant_text(0.006, 2), "0.0060");
  EXPECT_EQ(significant_text(12.345, 3), "12.3");
  EXPECT_EQ(significant_text(1234.6, 3), "1235");  // the integer part is never rounded away
  EXPECT_EQ(significant_text(0.0996, 2), "0.10");
  EXPECT_EQ(significant_text(9.96, 2), "10");      // the carry adds a digit: no "10.0"
  EXPECT_EQ(significant_text(-0.5, 2), "-0.50");
  EXPECT_EQ(significant_text(0, 2), "0");
  EXPECT_EQ(significant_text(std::numeric_limits<double>::quiet_NaN(), 2), "nan");
}

TEST(Units, Dollars) {
  EXPECT_EQ(usd_text(0.006), "$0.0060");
  EXPECT_EQ(usd_text(0.000104102), "$0.00010");
  EXPECT_EQ(usd_text(12.4), "$12.40");
  EXPECT_EQ(usd_text(1234.4), "$1234");
  EXPECT_EQ(usd_text(0), "$0");
  EXPECT_EQ(usd_text(-0.25), "-$0.25");
}

TEST(Units, EnergyAndCarbon) {
  EXPECT_EQ(energy_text(0.000104102), "0.10 Wh");  // the 0.000104102 kWh
  EXPECT_EQ(carbon_text(4.99691e-05), "0.050 g CO2e");
  EXPECT_EQ(energy_text(0.00085), "0.85 Wh");
  EXPECT_EQ(energy_text(8.5e-7), "0.85 mWh");  // not "0.00085 Wh"
  EXPECT_EQ(energy_text(0.85), "850 Wh");
  EXPECT_EQ(energy_text(0.0085), "8.5 Wh");
  EXPECT_EQ(energy_text(1.234), "1.2 kWh");
  EXPECT_EQ(energy_text(2500), "2.5 MWh");
  EXPECT_EQ(energy_text(0), "0 Wh");
  EXPECT_EQ(carbon_text(12.3), "12 kg CO2e");
  EXPECT_EQ(carbon_text(3100), "3.1 t CO2e");
  EXPECT_EQ(carbon_text(0), "0 g CO2e");
  EXPECT_EQ(carbon_text(7.7e-8), "0.077 mg CO2e");
}

TEST(Units, Durations) {
  EXPECT_EQ(duration_text(0.42), "0.42 s");
  EXPECT_EQ(duration_text(0.005), "5.0 ms");
  EXPECT_EQ(duration_text(7.1e-7), "0.71 us");
  EXPECT_EQ(duration_text(0), "0 s");
  EXPECT_EQ(duration_text(12.34), "12.3 s");
  EXPECT_EQ(duration_text(192), "3 min 12 s");
  EXPECT_EQ(duration_text(7500), "2 h 05 min");
  EXPECT_EQ(duration_text(3 * 86400 + 4 * 3600), "3 d 04 h");
}

}  // namespace
}  // namespace frugal
