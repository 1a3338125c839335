// Edit distance and "did you mean" suggestions (see suggest.h).
// Limits: one row of the dynamic-programming table is kept, so memory is O(|b|).
#include "frugal/base/suggest.h"

#include <algorithm>
#include <cstdint>

namespace frugal {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);  // row[j]: distance from a[0, i) to b[0, j)
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_distance) best_distance = d, best = c;
  }
  // A third of the word, but at least 2, so short typos ("stpes" for "steps", two edits) are still caught while a
  // long unrelated name is not "corrected" into something else.
  if (!best.empty() && best_distance <= std::max<size_t>(2, word.size() / 3)) return "; did you mean '" + best + "'?";
  return "";
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out;
}

}  // namespace frugal
