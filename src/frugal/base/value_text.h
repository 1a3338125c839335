// Numbers stored as text, as a checkpoint's values are: a double as the shortest decimal that reads
// back to the same bits, an integer in decimal, and a reader whose errors name the file and key.
// Limits: the C locale's format of std::to_chars / std::from_chars (no leading '+' or spaces).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

namespace frugal {

std::string value_text(double value);   // shortest round-trip text ("0.1", "1e+300", "inf")
std::string value_text(int64_t value);  // decimal

// Reads values from a checkpoint's map of text; `path` names the file in errors. The map is
// referenced, not copied: it must outlive the reader.
class ValueReader {
 public:
  ValueReader(const std::map<std::string, std::string>& values, std::string path)
      : values_(values), path_(std::move(path)) {}

  bool has(const std::string& key) const { return values_.count(key) > 0; }
  // InputError "<path>: checkpoint has no value '<key>'" when absent.
  const std::string& text(const std::string& key) const;
  // InputError "<path>: checkpoint value '<key>' = '<text>': expected a number" (an integer).
  double real(const std::string& key) const;
  int64_t integer(const std::string& key) const;

 private:
  const std::map<std::string, std::string>& values_;
  std::string path_;
};

}  // namespace frugal
