// Numbers as text: every double, including subnormals, -0, infinities and the extremes, reads back
// to the same bits; integers in decimal; the reader's errors name the path, the key and the text.
#include "frugal/base/value_text.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>

#include "frugal/base/error.h"
#include "frugal/base/rng.h"

namespace frugal {
namespace {

double read_back(const std::string& text) {
  std::map<std::string, std::string> values = {{"x", text}};
  return ValueReader(values, "f").real("x");
}

TEST(ValueText, DoublesReadBackBitExact) {
  using limits = std::numeric_limits<double>;
  std::vector<double> cases = {0.0, -0.0, 0.1, 1.0 / 3.0, 0.1 + 0.2, 1e-300, 5e-324, limits::denorm_min(),
                               limits::min(), limits::max(), -limits::max(), limits::infinity(), -limits::infinity(),
                               123456.789, 1e22, 9007199254740993.0};
  Rng rng(7, 0);
  for (int i = 0; i < 10000; ++i) {  // random bit patterns: every exponent and mantissa
    uint64_t pattern = (uint64_t(rng.next_u32()) << 32) | rng.next_u32();
    double v = std::bit_cast<double>(pattern);
    if (std::isfinite(v)) cases.push_back(v);
  }
  for (double v : cases) {
    std::string text = value_text(v);
    EXPECT_EQ(std::bit_cast<uint64_t>(read_back(text)), std::bit_cast<uint64_t>(v)) << text;
  }
  EXPECT_EQ(value_text(0.1), "0.1");  // the shortest text, not 17 digits
  EXPECT_EQ(value_text(30.0), "30");
  EXPECT_EQ(value_text(int64_t(-42)), "-42");
  EXPECT_EQ(value_text(std::numeric_limits<int64_t>::max()), "9223372036854775807");
}

TEST(ValueReader, ErrorsNameThePathKeyAndText) {
  std::map<std::string, std::string> values = {{"a", "1.5"}, {"n", "12"}, {"bad", "1.5x"}, {"empty", ""}};
  ValueReader r(values, "run/checkpoint-3.fck");
  EXPECT_TRUE(r.has("a"));
  EXPECT_FALSE(r.has("b"));
  EXPECT_EQ(r.real("a"), 1.5);
  EXPECT_EQ(r.real("n"), 12.0);
  EXPECT_EQ(r.integer("n"), 12);
  EXPECT_EQ(r.text("bad"), "1.5x");
  auto message = [&](auto read) -> std::string {
    try {
      read();
    } catch (const InputError& e) {
      return e.what();
    }
    return "no error";
  };
  const std::string at = "run/checkpoint-3.fck: checkpoint ";
  EXPECT_EQ(message([&] { r.real("b"); }), at + "has no value 'b'");
  EXPECT_EQ(message([&] { r.real("bad"); }), at + "value 'bad' = '1.5x': expected a number");
  EXPECT_EQ(message([&] { r.real("empty"); }), at + "value 'empty' = '': expected a number");
  EXPECT_EQ(message([&] { r.integer("a"); }), at + "value 'a' = '1.5': expected an integer");
  values["huge"] = "1e999";  // out of range is not a number it can hold
  EXPECT_EQ(message([&] { r.real("huge"); }), at + "value 'huge' = '1e999': expected a number");
}

}  // namespace
}  // namespace frugal
