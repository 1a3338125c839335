// number_text: the default ostream form of a double, as the error messages print numbers.
// echo_text / one_line: echoed input and whole messages kept to one readable line.
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

TEST(EchoText, EscapesControlCharacters) {
  EXPECT_EQ(echo_text("a,b"), "a,b");
  EXPECT_EQ(echo_text("1\r2\n3\t4"), "1\\r2\\n3\\t4");
  EXPECT_EQ(echo_text(std::string("x\0y", 3)), "x\\x00y");
  EXPECT_EQ(echo_text("\x1b[31m"), "\\x1b[31m");
  EXPECT_EQ(echo_text("caf\xC3\xA9"), "caf\xC3\xA9");  // UTF-8 kept
}

TEST(EchoText, CutsLongText) {
  EXPECT_EQ(echo_text(std::string(80, 'a')), std::string(80, 'a'));
  EXPECT_EQ(echo_text(std::string(81, 'a')), std::string(80, 'a') + "...");
  EXPECT_EQ(echo_text("abcdef", 3), "abc...");
}

TEST(OneLine, EscapesButKeepsLength) {
  EXPECT_EQ(one_line("a\nb\n"), "a\\nb");
  EXPECT_EQ(one_line(std::string(200, 'z')), std::string(200, 'z'));
}

}  // namespace
}  // namespace frugal

namespace frugal {
namespace {

TEST(UtcTime, FormatsSecondsSinceTheEpochInUtc) {
  EXPECT_EQ(utc_time(0, "%Y-%m-%dT%H:%M:%SZ"), "1970-01-01T00:00:00Z");
  EXPECT_EQ(utc_time(1796659502.9, "%Y%m%d-%H%M%S"), "20261207-160502");  // fractions dropped
}

}  // namespace
}  // namespace frugal
