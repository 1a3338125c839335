// "Did you mean" help for error messages about unknown names (job keys, sections, catalog entries).
// Limits: byte-wise (an accented letter in UTF-8 counts as two edits); O(|a|*|b|) per comparison,
// meant for short names and candidate lists of tens, not for large dictionaries.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace frugal {

// Levenshtein distance: the fewest single-byte insertions, deletions and substitutions that turn
// `a` into `b`.
size_t edit_distance(const std::string& a, const std::string& b);

// "; did you mean 'NAME'?" for the candidate nearest to `word`, if it is within
// max(2, |word| / 3) edits; "" otherwise (or when there are no candidates). Ties go to the first.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

// The items separated by ", " (for "allowed: a, b, c" lists).
std::string join(const std::vector<std::string>& items);

}  // namespace frugal
