// Reading one [section] of a job file (or of the user config file) with toml++: typed getters with
// ranges and choices, unknown keys as errors with a suggestion, and every error one line naming the
// file and line (or the --set that gave the value). Internal to train/ (job.cc, job_alerts.cc).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "frugal/base/error.h"
#include "frugal/base/format.h"
#include "frugal/base/suggest.h"

namespace frugal::train::job_file {

// A value as the job file spells it, on one line ("text", [1, 2], 0.001, {...}).
std::string node_text(const toml::node& node);

// Reads the keys of one [section], remembering which were read so that unknown keys are errors.
class Section {
 public:
  Section(const std::string& file, const std::string& name, toml::table* table,
          const std::set<std::string>* overridden)
      : file_(file), name_(name), table_(table), overridden_(overridden) {}

  bool has(const std::string& key) { allowed_.push_back(key); return table_ && table_->contains(key); }

  std::string get_string(const std::string& key, const std::string& fallback,
                         const std::vector<std::string>& choices = {}) {
    const toml::node* node = find(key);
    if (!node) return fallback;
    auto v = node->value<std::string>();
    if (!v || !node->is_string()) fail(*node, key, "expected a string");
    if (!choices.empty() && std::find(choices.begin(), choices.end(), *v) == choices.end())
      fail(*node, key, "expected one of " + join(choices) + did_you_mean(*v, choices));
    return *v;
  }

  int64_t get_int(const std::string& key, int64_t fallback, int64_t min, int64_t max) {
    const toml::node* node = find(key);
    if (!node) return fallback;
    if (!node->is_integer()) fail(*node, key, "expected an integer");
    int64_t v = *node->value<int64_t>();
    if (v < min || v > max)
      fail(*node, key, "expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
    return v;
  }

  // min_open: the lower bound is exclusive.
  double get_double(const std::string& key, double fallback, double min, double max, bool min_open = false) {
    const toml::node* node = find(key);
    if (!node) return fallback;
    if (!node->is_number()) fail(*node, key, "expected a number");
    double v = *node->value<double>();
    if (!std::isfinite(v) || v < min || v > max || (min_open && v == min)) {
      std::ostringstream range;
      range << "expected a number in " << (min_open ? "(" : "[") << min << ", " << max << "]";
      fail(*node, key, range.str());
    }
    return v;
  }

  // One of `choices` (job-file spelling -> value); `fallback` when the key is absent.
  template <class E>
  E get_enum(const std::string& key, E fallback, const std::vector<std::pair<std::string, E>>& choices) {
    std::vector<std::string> names;
    for (const auto& [name, value] : choices) names.push_back(name);
    const toml::node* node = find(key);
    if (!node) return fallback;
    auto v = node->value<std::string>();
    if (!v || !node->is_string()) fail(*node, key, "expected a string");
    for (const auto& [name, value] : choices)
      if (name == *v) return value;
    fail(*node, key, "expected one of " + join(names) + did_you_mean(*v, names));
  }

  bool get_bool(const std::string& key, bool fallback) {
    const toml::node* node = find(key);
    if (!node) return fallback;
    if (!node->is_boolean()) fail(*node, key, "expected true or false");
    return *node->value<bool>();
  }

  std::vector<int64_t> get_int_list(const std::string& key, std::vector<int64_t> fallback, int64_t min, int64_t max) {
    const toml::node* node = find(key);
    if (!node) return fallback;
    const toml::array* array = node->as_array();
    if (!array) fail(*node, key, "expected an array of integers");
    std::vector<int64_t> out;
    for (const toml::node& item : *array) {
      if (!item.is_integer()) fail(*node, key, "expected an array of integers");
      int64_t v = *item.value<int64_t>();
      if (v < min || v > max)
        fail(*node, key, "expected integers in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
      out.push_back(v);
    }
    return out;
  }

  // An array of non-empty strings (glob patterns, names); `fallback` when the key is absent.
  std::vector<std::string> get_string_list(const std::string& key, std::vector<std::string> fallback = {}) {
    const toml::node* node = find(key);
    if (!node) return fallback;
    const toml::array* array = node->as_array();
    if (!array) fail(*node, key, "expected an array of strings");
    std::vector<std::string> out;
    for (const toml::node& item : *array) {
      if (!item.is_string() || item.value<std::string>()->empty())
        fail(*node, key, "expected an array of non-empty strings");
      out.push_back(*item.value<std::string>());
    }
    return out;
  }

  // A table of name -> string, e.g. { "old.prefix" = "new.prefix" }, in the table's (sorted) order.
  std::vector<std::pair<std::string, std::string>> get_string_table(const std::string& key) {
    std::vector<std::pair<std::string, std::string>> out;
    if (const toml::table* table = subtable(key))
      for (const auto& [name, value] : *table) {
        if (!value.is_string()) fail(value, key, "expected strings as values, e.g. { \"old.prefix\" = \"new.prefix\" }");
        out.emplace_back(std::string(name.str()), *value.value<std::string>());
      }
    return out;
  }

  // A table of name -> number in [min, max], e.g. { "blocks.*" = 0.1 }, in the table's (sorted) order.
  std::vector<std::pair<std::string, double>> get_number_table(const std::string& key, double min, double max) {
    std::vector<std::pair<std::string, double>> out;
    if (const toml::table* table = subtable(key))
      for (const auto& [name, value] : *table) {
        const double v = value.is_number() ? *value.value<double>() : NAN;
        if (!value.is_number() || !std::isfinite(v) || v < min || v > max) {
          std::ostringstream range;
          range << "expected numbers in [" << min << ", " << max << "] as values, e.g. { \"blocks.*\" = 0.1 }";
          fail(value, key, range.str());
        }
        out.emplace_back(std::string(name.str()), v);
      }
    return out;
  }

  // An array of tables, e.g. [{ step = 200, params = ["a.*"] }, ...], in order.
  std::vector<toml::table*> get_table_array(const std::string& key, const std::string& example) {
    const toml::node* node = find(key);
    std::vector<toml::table*> out;
    if (!node) return out;
    const toml::array* array = node->as_array();
    if (!array) fail(*node, key, "expected an array of tables, e.g. " + example);
    for (const toml::node& item : *array) {
      if (!item.is_table()) fail(*node, key, "expected an array of tables, e.g. " + example);
      out.push_back(const_cast<toml::table*>(item.as_table()));
    }
    return out;
  }

  toml::table* subtable(const std::string& key) {
    const toml::node* node = find(key);
    if (!node) return nullptr;
    if (!node->is_table()) fail(*node, key, "expected a table");
    return const_cast<toml::table*>(node->as_table());
  }

  // Unknown keys are errors, with a suggestion when a known key is close.
  void check_unknown() {
    if (!table_) return;
    // has() and a get of the same key both note it: each once in the message.
    std::vector<std::string> allowed;
    for (const std::string& k : allowed_)
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) allowed.push_back(k);
    allowed_ = allowed;
    for (auto& [key, node] : *table_) {
      std::string k(key.str());
      if (std::find(allowed_.begin(), allowed_.end(), k) == allowed_.end())
        throw InputError(where(node, k) + "unknown key '" + k + "' in [" + name_ + "]" + did_you_mean(k, allowed_) +
                         " (allowed: " + join(allowed_) + ")");
    }
  }

  [[noreturn]] void fail(const toml::node& node, const std::string& key, const std::string& expected) {
    throw InputError(where(node, key) + "[" + name_ + "] " + key + " = " + echo_text(node_text(node)) + ": " + expected);
  }

  [[noreturn]] void fail_key(const std::string& key, const std::string& message) {
    const toml::node* node = table_ ? table_->get(key) : nullptr;
    throw InputError((node ? where(*node, key) : file_ + ": ") + "[" + name_ + "] " + key + ": " + message);
  }

  std::string where(const toml::node& node, const std::string& key) const {
    if (overridden_ && overridden_->count(name_ + "." + key)) return file_ + ": --set " + name_ + "." + key + ": ";
    return file_ + ":" + std::to_string(node.source().begin.line) + ": ";
  }

 private:
  const toml::node* find(const std::string& key) {
    allowed_.push_back(key);
    if (!table_) return nullptr;
    return table_->get(key);
  }

  std::string file_, name_;
  toml::table* table_;
  const std::set<std::string>* overridden_;
  std::vector<std::string> allowed_;
};

}  // namespace frugal::train::job_file
