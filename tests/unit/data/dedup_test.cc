// Text deduplication: exact copies of lines and paragraphs removed (first kept), MinHash + LSH finds
// planted near-duplicates and leaves distinct lines, and the LSH layout follows the threshold.
#include "frugal/data/dedup.h"

#include <string>

#include <gtest/gtest.h>

namespace frugal::data {
namespace {

TEST(Dedup, ExactLinesRemovedFirstKept) {
  DedupReport r;
  const std::string text = "alpha beta\ngamma\nalpha beta\n\n\ndelta\ngamma\n";
  EXPECT_EQ(deduplicate_text(text, {}, r), "alpha beta\ngamma\n\n\ndelta\n");
  EXPECT_EQ(r.units, 7);
  EXPECT_EQ(r.removed, 2);
  EXPECT_EQ(r.bytes_removed, int64_t(std::string("alpha beta\ngamma\n").size()));
  EXPECT_EQ(r.bytes, int64_t(text.size()));
}

TEST(Dedup, ExactParagraphs) {
  DedupOptions o;
  o.paragraphs = true;
  DedupReport r;
  EXPECT_EQ(deduplicate_text("one\ntwo\n\nthree\n\none\ntwo\n\nfour", o, r), "one\ntwo\n\nthree\n\nfour");
  EXPECT_EQ(r.removed, 1);
}

// A deterministic pseudo-random sentence of `words` words.
std::string sentence(uint64_t seed, int words) {
  static const char* vocabulary[] = {"and", "the", "lord", "said", "unto", "moses", "land", "of", "egypt", "went",
                                     "forth", "into", "wilderness", "water", "bread", "king", "house", "israel"};
  std::string out;
  for (int i = 0; i < words; ++i) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    out += std::string(i ? " " : "") + vocabulary[(seed >> 33) % 18];
  }
  return out;
}

TEST(Dedup, NearFindsPlantedNearDuplicatesAndKeepsDistinctLines) {
  std::string text;
  const int distinct = 200;
  for (int i = 0; i < distinct; ++i) text += sentence(uint64_t(i) + 1, 20) + "\n";
  // 20 planted near-copies: one character changed at the end of an earlier line.
  for (int i = 0; i < 20; ++i) {
    std::string copy = sentence(uint64_t(i * 7) + 1, 20);
    copy.back() = copy.back() == 'x' ? 'y' : 'x';
    text += copy + "\n";
  }
  DedupOptions o;
  o.near = true;
  o.threshold = 0.8;
  DedupReport r;
  deduplicate_text(text, o, r);
  EXPECT_EQ(r.units, distinct + 20);
  EXPECT_EQ(r.removed, 20) << "the planted copies, and no distinct line";
  DedupReport exact;
  deduplicate_text(text, {}, exact);
  EXPECT_EQ(exact.removed, 0) << "near-copies are not exact copies";
  EXPECT_GT(shingle_jaccard(sentence(1, 20), sentence(1, 20) + "x", 5), 0.8);
  EXPECT_LT(shingle_jaccard(sentence(1, 20), sentence(2, 20), 5), 0.5);
}

TEST(Dedup, LshLayoutFollowsTheThreshold) {
  const auto [b_low, r_low] = lsh_layout(0.5, 128);
  const auto [b_high, r_high] = lsh_layout(0.9, 128);
  EXPECT_EQ(b_low * r_low, 128);
  EXPECT_EQ(b_high * r_high, 128);
  EXPECT_GT(r_high, r_low) << "a higher threshold: longer bands";
}

}  // namespace
}  // namespace frugal::data
