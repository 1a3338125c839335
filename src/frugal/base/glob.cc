// Glob matching (see glob.h): the classic two-pointer walk that remembers the last `*` and retries
// from one character further on a mismatch; O(|pattern| x |name|) at worst, no allocation.
#include "frugal/base/glob.h"

namespace frugal {

bool glob_match(std::string_view pattern, std::string_view name) {
  size_t p = 0, n = 0;
  size_t star = std::string_view::npos, star_name = 0;  // the last `*` seen and where its run ends now
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || (pattern[p] != '*' && pattern[p] == name[n]))) {
      ++p, ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_name = n;  // the `*` matches nothing so far
    } else if (star != std::string_view::npos) {
      p = star + 1;     // let the last `*` take one more character
      n = ++star_name;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

size_t glob_literal_count(std::string_view pattern) {
  size_t count = 0;
  for (char c : pattern) count += c != '*' && c != '?';
  return count;
}

}  // namespace frugal
