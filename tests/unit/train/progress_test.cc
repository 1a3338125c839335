// The progress line with the run's cost: it ends with the cost text, stays within 100 columns in
// both modes (a redrawn bar on a terminal, plain lines otherwise) with large counts, and due() says
// when update() would print, so callers can skip building the cost text.
#include "frugal/train/progress.h"

#include <cstdio>
#include <string>

#include <gtest/gtest.h>

namespace frugal::train {
namespace {

// What update() printed, the bar's "\r\033[K" prefix removed.
std::string printed(bool bar, const std::string& cost) {
  char* buffer = nullptr;
  size_t size = 0;
  FILE* out = open_memstream(&buffer, &size);
  Progress progress(out, bar, /*quiet=*/false);
  EXPECT_TRUE(progress.due(999999, 1000000, 0.0));
  progress.update(99, 100, 999999, 1000000, 12.3456, "samples/s", 123456.0, 86000.0, cost);
  std::fclose(out);
  std::string text(buffer, size);
  std::free(buffer);
  if (text.rfind("\r\033[K", 0) == 0) text = text.substr(4);
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

TEST(Progress, TheCostTextEndsTheLineWithin100Columns) {
  const std::string cost = "$1234->$2468 1.2 MWh";  // dollars so far -> at the end, energy so far
  for (bool bar : {true, false}) {
    SCOPED_TRACE(bar ? "bar" : "lines");
    const std::string line = printed(bar, cost);
    EXPECT_EQ(line.size() - cost.size(), line.rfind(cost)) << line;
    EXPECT_LE(line.size(), 100u) << line;
  }
  EXPECT_EQ(printed(true, "").find("$"), std::string::npos);
}

TEST(Progress, DueOnlyWhenALineWouldPrint) {
  char* buffer = nullptr;
  size_t size = 0;
  FILE* out = open_memstream(&buffer, &size);
  Progress lines(out, /*bar=*/false, /*quiet=*/false);
  lines.update(0, 0, 1, 100, 1.0, "samples/s", 1.0, 10.0, "$0.01");
  EXPECT_FALSE(lines.due(2, 100, 12.0)) << "plain lines every 5 s";
  EXPECT_TRUE(lines.due(3, 100, 15.0));
  EXPECT_TRUE(lines.due(100, 100, 12.0)) << "always the last step";
  Progress quiet(out, false, /*quiet=*/true);
  EXPECT_FALSE(quiet.due(100, 100, 100.0));
  std::fclose(out);
  std::free(buffer);
}

}  // namespace
}  // namespace frugal::train
