// Tests for the glob matcher every name-choosing job key uses: `*` spans dots, `?` is exactly one
// character, the whole name must match, backtracking over several stars, and specificity.
#include "frugal/base/glob.h"

#include <gtest/gtest.h>

namespace frugal {
namespace {

TEST(GlobMatch, LiteralPatternsMatchOnlyThemselves) {
  EXPECT_TRUE(glob_match("head.weight", "head.weight"));
  EXPECT_FALSE(glob_match("head.weight", "head.weights"));
  EXPECT_FALSE(glob_match("head.weight", "head.weigh"));
  EXPECT_FALSE(glob_match("head.weight", "lm_head.weight"));  // the whole name, not a part of it
  EXPECT_TRUE(glob_match("", ""));
  EXPECT_FALSE(glob_match("", "a"));
  EXPECT_FALSE(glob_match("a", ""));
}

TEST(GlobMatch, StarSpansAnyRunIncludingDots) {
  EXPECT_TRUE(glob_match("blocks.*", "blocks.0.attn.qkv.weight"));
  EXPECT_TRUE(glob_match("blocks.*", "blocks."));  // a star may match nothing
  EXPECT_FALSE(glob_match("blocks.*", "blocks"));
  EXPECT_FALSE(glob_match("blocks.*", "wte.weight"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("*", "anything.at.all"));
  EXPECT_TRUE(glob_match("*.bias", "features.0.bias"));
  EXPECT_FALSE(glob_match("*.bias", "features.0.bias.x"));
  EXPECT_TRUE(glob_match("blocks.*.attn.*", "blocks.11.attn.proj.weight"));
  EXPECT_FALSE(glob_match("blocks.*.attn.*", "blocks.11.mlp.fc.weight"));
  EXPECT_TRUE(glob_match("**", "a.b"));
}

TEST(GlobMatch, BacktracksOverSeveralStars) {
  // The first star must give back what the later literal needs.
  EXPECT_TRUE(glob_match("*a*b", "xaxaxb"));
  EXPECT_FALSE(glob_match("*a*b", "xaxaxbx"));
  EXPECT_TRUE(glob_match("*.weight", "a.weight.b.weight"));
  EXPECT_TRUE(glob_match("a*a*a", "aaa"));
  EXPECT_FALSE(glob_match("a*a*a", "aa"));
}

TEST(GlobMatch, QuestionMarkIsExactlyOneCharacter) {
  EXPECT_TRUE(glob_match("layers.?.weight", "layers.1.weight"));
  EXPECT_FALSE(glob_match("layers.?.weight", "layers.11.weight"));
  EXPECT_FALSE(glob_match("layers.?.weight", "layers..weight"));
  EXPECT_TRUE(glob_match("layers.??.weight", "layers.11.weight"));
  EXPECT_TRUE(glob_match("a?c", "a.c"));  // a dot is a character like any other
  EXPECT_TRUE(glob_match("?*", "x"));
  EXPECT_FALSE(glob_match("?*", ""));
}

TEST(GlobLiteralCount, CountsWhatIsNotAWildcard) {
  EXPECT_EQ(glob_literal_count("*"), 0u);
  EXPECT_EQ(glob_literal_count("head.*"), 5u);
  EXPECT_EQ(glob_literal_count("layers.?.weight"), 14u);
  EXPECT_EQ(glob_literal_count(""), 0u);
}

}  // namespace
}  // namespace frugal
