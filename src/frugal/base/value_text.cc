// Text of numbers with std::to_chars / std::from_chars (see value_text.h).
#include "frugal/base/value_text.h"

#include <charconv>
#include <system_error>

#include "frugal/base/error.h"

namespace frugal {

std::string value_text(double value) {
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof buffer, value);  // shortest text that reads back the same bits
  return std::string(buffer, result.ptr);
}

std::string value_text(int64_t value) { return std::to_string(value); }

const std::string& ValueReader::text(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) throw InputError(path_ + ": checkpoint has no value '" + key + "'");
  return it->second;
}

double ValueReader::real(const std::string& key) const {
  const std::string& s = text(key);
  double v = 0;
  auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (error != std::errc() || end != s.data() + s.size())
    throw InputError(path_ + ": checkpoint value '" + key + "' = '" + s + "': expected a number");
  return v;
}

int64_t ValueReader::integer(const std::string& key) const {
  const std::string& s = text(key);
  int64_t v = 0;
  auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (error != std::errc() || end != s.data() + s.size())
    throw InputError(path_ + ": checkpoint value '" + key + "' = '" + s + "': expected an integer");
  return v;
}

}  // namespace frugal
