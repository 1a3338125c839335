// Tests for the "did you mean" helpers: exact Levenshtein distances (including empty strings and
// the transposition that costs two edits), the suggestion threshold max(2, |word| / 3), and join.
#include "frugal/base/suggest.h"

#include <gtest/gtest.h>

namespace frugal {
namespace {

TEST(EditDistance, KnownValues) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("abc", ""), 3u);
  EXPECT_EQ(edit_distance("steps", "steps"), 0u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);  // two substitutions and one insertion
  EXPECT_EQ(edit_distance("flaw", "lawn"), 2u);       // one deletion and one insertion
  EXPECT_EQ(edit_distance("stpes", "steps"), 2u);     // a transposition is two substitutions
  EXPECT_EQ(edit_distance("lr", "lr_min"), 4u);
  EXPECT_EQ(edit_distance("Steps", "steps"), 1u);     // case matters
}

TEST(EditDistance, IsSymmetric) {
  const std::vector<std::string> words = {"", "a", "batch", "batch_size", "seq_len", "optimizer", "optim"};
  for (const auto& a : words)
    for (const auto& b : words) EXPECT_EQ(edit_distance(a, b), edit_distance(b, a)) << a << " vs " << b;
}

TEST(DidYouMean, SuggestsTheNearestWithinThreshold) {
  const std::vector<std::string> keys = {"steps", "batch_size", "lr", "seed"};
  EXPECT_EQ(did_you_mean("stpes", keys), "; did you mean 'steps'?");       // 2 edits, limit max(2, 1) = 2
  EXPECT_EQ(did_you_mean("batchsize", keys), "; did you mean 'batch_size'?");
  EXPECT_EQ(did_you_mean("lr", keys), "; did you mean 'lr'?");             // an exact match is nearest
  // Ties go to the first candidate.
  EXPECT_EQ(did_you_mean("ab", {"ax", "ay"}), "; did you mean 'ax'?");
  // A long word allows more edits: 12 letters allow 4.
  EXPECT_EQ(did_you_mean("learningrte_", {"learning_rate"}), "; did you mean 'learning_rate'?");
}

TEST(DidYouMean, NothingBeyondThreshold) {
  const std::vector<std::string> keys = {"steps", "batch_size", "lr", "seed"};
  EXPECT_EQ(did_you_mean("optimizer", keys), "");
  EXPECT_EQ(did_you_mean("xyz", keys), "");         // 3 edits from "lr", limit 2
  EXPECT_EQ(did_you_mean("stepsxyz", keys), "");    // 3 edits from "steps", limit max(2, 8 / 3) = 2
  EXPECT_EQ(did_you_mean("steps", {}), "");
  EXPECT_EQ(did_you_mean("ab", {""}), "");         // an empty candidate is never suggested
}

TEST(Join, SeparatesWithCommas) {
  EXPECT_EQ(join({}), "");
  EXPECT_EQ(join({"fp32"}), "fp32");
  EXPECT_EQ(join({"fp32", "bf16", "int8"}), "fp32, bf16, int8");
}

}  // namespace
}  // namespace frugal
