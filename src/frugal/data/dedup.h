// Deduplication of a training text: units (lines, or blank-line separated paragraphs) removed when an
// earlier unit is an exact copy (hash, then compared) or a near-duplicate (Jaccard similarity of
// their character-shingle sets >= threshold, candidates found by MinHash with LSH bands, then
// verified on the exact sets). The first occurrence is kept. Limits: whole text in memory; blank
// units are never removed; near mode compares each unit only with its LSH candidates.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

namespace frugal::data {

struct DedupOptions {
  bool near = false;          // false: exact copies only
  bool paragraphs = false;    // units: paragraphs (separated by blank lines) instead of lines
  double threshold = 0.8;     // near: Jaccard similarity at or above which a unit is a duplicate
  int64_t shingle = 5;        // near: characters per shingle
  int64_t permutations = 128; // near: MinHash signature length (bands * rows)
};

struct DedupReport {
  std::string mode;            // "exact" | "near"
  std::string unit;            // "line" | "paragraph"
  int64_t units = 0, removed = 0;
  int64_t bytes = 0, bytes_removed = 0;
  int64_t bands = 0, rows = 0;  // near: the LSH layout chosen for the threshold
  double threshold = 0;
};

// The LSH layout (bands, rows per band) with bands * rows = permutations whose S-curve midpoint
// (1 / bands)^(1 / rows) is closest to `threshold`.
std::pair<int64_t, int64_t> lsh_layout(double threshold, int64_t permutations);

// Jaccard similarity of the shingle sets of two strings (a string shorter than `shingle` is one shingle).
double shingle_jaccard(const std::string& a, const std::string& b, int64_t shingle);

// The text without its duplicate units (the separators of kept units kept), and what was removed.
std::string deduplicate_text(const std::string& text, const DedupOptions& options, DedupReport& report);

}  // namespace frugal::data
