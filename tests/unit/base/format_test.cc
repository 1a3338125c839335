// number_text: the default ostream form of a double, as the error messages print numbers.
#include "frugal/base/format.h"

#include <gtest/gtest.h>

#include <limits>

namespace frugal {
namespace {

TEST(NumberText, DefaultStreamForm) {
  EXPECT_EQ(number_text(0.0), "0");
  EXPECT_EQ(number_text(2.0), "2");
  EXPECT_EQ(number_text(0.1), "0.1");
  EXPECT_EQ(number_text(-1.5), "-1.5");
  EXPECT_EQ(number_text(65536.0), "65536");
  EXPECT_EQ(number_text(1e6), "1e+06");
  EXPECT_EQ(number_text(1234567.0), "1.23457e+06");  // 6 significant digits
  EXPECT_EQ(number_text(3.4e38), "3.4e+38");
  EXPECT_EQ(number_text(1e-5), "1e-05");
  EXPECT_EQ(number_text(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(number_text(-std::numeric_limits<double>::infinity()), "-inf");
  EXPECT_EQ(number_text(std::numeric_limits<double>::quiet_NaN()), "nan");
}

}  // namespace
}  // namespace frugal
