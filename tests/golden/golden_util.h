// Helpers shared by the golden tests: the "key=value key=value" option strings that the golden
// data scripts (make_golden.py, make_train_golden.py) store in safetensors metadata.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "frugal/base/error.h"

namespace frugal::golden {

// A case's options, "op=conv2d stride=2,2 groups=2". Remembers which keys the op read, so an
// option the script writes but the test ignores is a failure rather than a silent pass.
class Options {
 public:
  explicit Options(const std::string& text) {
    std::istringstream in(text);
    std::string item;
    while (in >> item) {
      size_t eq = item.find('=');
      FRUGAL_CHECK(eq != std::string::npos, "option without '=': " + item);
      values_[item.substr(0, eq)] = item.substr(eq + 1);
    }
  }
  const std::string& s(const std::string& key) const {
    auto it = values_.find(key);
    FRUGAL_CHECK(it != values_.end(), "missing option '" + key + "'");
    used_.insert(key);
    return it->second;
  }
  int64_t i(const std::string& key) const { return std::stoll(s(key)); }
  double f(const std::string& key) const { return std::stod(s(key)); }
  bool b(const std::string& key) const { return i(key) != 0; }
  std::vector<int64_t> ints(const std::string& key) const {
    std::vector<int64_t> out;
    std::istringstream in(s(key));
    std::string part;
    while (std::getline(in, part, ',')) out.push_back(std::stoll(part));
    return out;
  }
  std::vector<std::string> unused() const {
    std::vector<std::string> out;
    for (const auto& [key, value] : values_)
      if (!used_.count(key)) out.push_back(key);
    return out;
  }

 private:
  std::map<std::string, std::string> values_;
  mutable std::set<std::string> used_;
};

}  // namespace frugal::golden
