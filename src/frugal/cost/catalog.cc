// Catalog loading: one [instance."NAME"] table per entry, every key checked for type and range,
// unknown keys rejected with a suggestion. A user file merged later may set any subset of keys.
#include "frugal/cost/catalog.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <toml++/toml.h>

#include "frugal/base/error.h"
#include "frugal/base/format.h"
#include "frugal/base/suggest.h"

namespace frugal::cost {

namespace {

const std::vector<std::string> entry_keys = {
    "provider", "region",  "accelerator", "accelerator_count", "cpu",   "vcpus", "memory_gib",
    "usd_per_hour", "spot_usd_per_hour", "peak_tflops", "tdp_w", "idle_w", "carbon_g_per_kwh", "network_usd_per_gb",
    "source", "date", "notes"};
// Required in a new entry, with what each means (for the "missing key" message).
const std::vector<std::pair<std::string, std::string>> required_keys = {
    {"provider", "the cloud or vendor"},
    {"region", "where the instance runs"},
    {"vcpus", "number of virtual CPUs"},
    {"memory_gib", "memory in GiB"},
    {"usd_per_hour", "on-demand price in USD per hour"},
    {"spot_usd_per_hour", "spot price in USD per hour"},
    {"tdp_w", "power at full load in W"},
    {"carbon_g_per_kwh", "grid carbon intensity in gCO2e/kWh"},
    {"source", "where the prices and specs come from"},
    {"date", "when they were read, YYYY-MM or YYYY-MM-DD"}};
const std::vector<std::string> precisions = {"fp32", "bf16", "fp16", "int8"};

std::string node_text(const toml::node& node) {
  std::ostringstream out;
  if (node.is_string()) out << '"' << *node.value<std::string>() << '"';
  else if (node.is_table()) out << "{...}";
  else out << toml::node_view<const toml::node>(node);
  return out.str();
}

bool is_date(const std::string& s) {
  auto digits = [&](size_t from, size_t n) {
    for (size_t i = from; i < from + n; ++i)
      if (i >= s.size() || s[i] < '0' || s[i] > '9') return false;
    return true;
  };
  if (s.size() != 7 && s.size() != 10) return false;
  if (!digits(0, 4) || s[4] != '-' || !digits(5, 2)) return false;
  int month = std::stoi(s.substr(5, 2));
  if (month < 1 || month > 12) return false;
  if (s.size() == 10) {
    if (s[7] != '-' || !digits(8, 2)) return false;
    int day = std::stoi(s.substr(8, 2));
    if (day < 1 || day > 31) return false;
  }
  return true;
}

// Reads one entry's keys into an Instance, checking each as it goes.
class EntryReader {
 public:
  EntryReader(const std::string& file, const std::string& name, const toml::table& table)
      : file_(file), name_(name), table_(table) {}

  void apply(Instance& inst, bool user) {
    for (auto& [key, node] : table_) {
      std::string k(key.str());
      if (std::find(entry_keys.begin(), entry_keys.end(), k) == entry_keys.end())
        throw InputError(where(node) + "[instance.\"" + name_ + "\"] unknown key '" + k + "'" +
                         did_you_mean(k, entry_keys) + " (allowed: " + join(entry_keys) + ")");
      set(inst, k, node);
      if (user) inst.user_keys.insert(k);
    }
    inst.file = file_;
  }

  void require_all() const {
    for (const auto& [key, meaning] : required_keys)
      if (!table_.contains(key))
        throw InputError(where(table_) + "[instance.\"" + name_ + "\"] missing key '" + key + "' (" + meaning + ")");
  }

  [[noreturn]] void fail(const toml::node& node, const std::string& key, const std::string& expected) const {
    throw InputError(where(node) + "[instance.\"" + name_ + "\"] " + key + " = " + node_text(node) + ": " + expected);
  }

  // For a rule across keys: names `key` at its line when this table sets it, else the entry's line.
  [[noreturn]] void fail_key(const std::string& key, const std::string& message) const {
    const toml::node* node = table_.get(key);
    if (node) fail(*node, key, message);
    throw InputError(where(table_) + "[instance.\"" + name_ + "\"] " + key + ": " + message);
  }

  std::string where(const toml::node& node) const {
    return file_ + ":" + std::to_string(node.source().begin.line) + ": ";
  }

 private:
  std::string get_string(const std::string& key, const toml::node& node) const {
    if (!node.is_string()) fail(node, key, "expected a string");
    std::string v = *node.value<std::string>();
    if (v.empty()) fail(node, key, "expected a non-empty string");
    return v;
  }

  int get_int(const std::string& key, const toml::node& node, int64_t min) const {
    if (!node.is_integer()) fail(node, key, "expected an integer");
    int64_t v = *node.value<int64_t>();
    if (v < min || v > 1000000) fail(node, key, "expected an integer in [" + std::to_string(min) + ", 1000000]");
    return int(v);
  }

  // positive: > 0, else >= 0.
  double get_number(const std::string& key, const toml::node& node, bool positive) const {
    if (!node.is_number()) fail(node, key, "expected a number");
    double v = *node.value<double>();
    if (!std::isfinite(v) || v < 0) fail(node, key, positive ? "expected a number > 0" : "expected a number >= 0");
    if (positive && v == 0) fail(node, key, "expected a number > 0");
    return v;
  }

  void set(Instance& inst, const std::string& k, const toml::node& node) {
    if (k == "provider") inst.provider = get_string(k, node);
    else if (k == "region") inst.region = get_string(k, node);
    else if (k == "accelerator") inst.accelerator = get_string(k, node);
    else if (k == "accelerator_count") inst.accelerator_count = get_int(k, node, 0);
    else if (k == "cpu") inst.cpu = get_string(k, node);
    else if (k == "vcpus") inst.vcpus = get_int(k, node, 1);
    else if (k == "memory_gib") inst.memory_gib = get_number(k, node, true);
    else if (k == "usd_per_hour") inst.usd_per_hour = get_number(k, node, false);
    else if (k == "spot_usd_per_hour") inst.spot_usd_per_hour = get_number(k, node, false);
    else if (k == "tdp_w") inst.tdp_w = get_number(k, node, true);
    else if (k == "idle_w") inst.idle_w = get_number(k, node, false), idle_stated_ = true;
    else if (k == "carbon_g_per_kwh") inst.carbon_g_per_kwh = get_number(k, node, false);
    else if (k == "network_usd_per_gb") inst.network_usd_per_gb = get_number(k, node, false);
    else if (k == "source") inst.source = get_string(k, node);
    else if (k == "notes") inst.notes = get_string(k, node);
    else if (k == "date") {
      inst.date = get_string(k, node);
      if (!is_date(inst.date)) fail(node, k, "expected a date YYYY-MM or YYYY-MM-DD");
    } else if (k == "peak_tflops") {
      const toml::table* peaks = node.as_table();
      if (!peaks) fail(node, k, "expected a table such as { fp32 = 19.5, bf16 = 312 } (TFLOP/s)");
      for (auto& [pkey, pnode] : *peaks) {
        std::string p(pkey.str());
        if (std::find(precisions.begin(), precisions.end(), p) == precisions.end())
          throw InputError(where(pnode) + "[instance.\"" + name_ + "\"] peak_tflops: unknown precision '" + p + "'" +
                           did_you_mean(p, precisions) + " (allowed: " + join(precisions) + ")");
        inst.peak_flops[p] = get_number("peak_tflops." + p, pnode, true) * 1e12;
      }
    }
  }

 public:
  bool idle_stated() const { return idle_stated_; }

 private:
  std::string file_, name_;
  const toml::table& table_;
  bool idle_stated_ = false;
};

}  // namespace

std::optional<double> Instance::peak(const std::string& precision) const {
  auto it = peak_flops.find(precision);
  if (it == peak_flops.end()) return std::nullopt;
  return it->second;
}

void Catalog::read(const std::string& path, bool user, std::optional<std::string_view> text) {
  if (!text && !std::ifstream(path)) throw InputError(path + ": cannot open catalog file");
  toml::table root;
  try {
    root = text ? toml::parse(*text, path) : toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    throw InputError(path + ":" + std::to_string(e.source().begin.line) + ":" +
                     std::to_string(e.source().begin.column) + ": invalid TOML: " + std::string(e.description()));
  }
  for (auto& [key, node] : root) {
    std::string k(key.str());
    if (k != "instance")
      throw InputError(path + ":" + std::to_string(node.source().begin.line) + ": unknown top-level key '" + k +
                       "'; a catalog holds only [instance.\"NAME\"] tables");
    if (!node.is_table()) throw InputError(path + ": 'instance' must be a table of [instance.\"NAME\"] entries");
  }
  const toml::table* entries = root["instance"].as_table();
  if (!entries) return;
  for (auto& [key, node] : *entries) {
    std::string name(key.str());
    const toml::table* table = node.as_table();
    if (!table)
      throw InputError(path + ":" + std::to_string(node.source().begin.line) + ": instance \"" + name +
                       "\" must be a table ([instance.\"" + name + "\"])");
    EntryReader reader(path, name, *table);
    auto existing = instances_.find(name);
    bool is_new = existing == instances_.end();
    Instance inst = is_new ? Instance{} : existing->second;
    if (is_new) {
      reader.require_all();
      inst.name = name;
    }
    bool idle_was_default = !is_new && !idle_stated_.count(name);
    reader.apply(inst, user);
    if (reader.idle_stated()) idle_stated_.insert(name);
    else if (is_new || idle_was_default) inst.idle_w = idle_fraction_default * inst.tdp_w;

    // Cross-key rules, checked on the merged entry so an override cannot break them.
    if (inst.idle_w > inst.tdp_w)
      reader.fail_key(table->contains("idle_w") ? "idle_w" : "tdp_w",
                      "idle_w (" + number_text(inst.idle_w) + " W) must not exceed tdp_w (" +
                          number_text(inst.tdp_w) + " W)");
    bool is_cpu = inst.accelerator == "cpu";
    if (is_cpu && inst.accelerator_count != 0)
      reader.fail_key("accelerator_count", "expected 0 (or no key) when accelerator = \"cpu\"");
    if (!is_cpu && inst.accelerator_count < 1)
      reader.fail_key("accelerator_count", "expected an integer >= 1 for accelerator \"" + inst.accelerator + "\"");
    instances_[name] = std::move(inst);
  }
}

void Catalog::merge(const std::string& user_file) { read(user_file, true); }

const Instance& Catalog::at(const std::string& name) const {
  auto it = instances_.find(name);
  if (it == instances_.end())
    throw InputError("unknown instance '" + name + "'" + did_you_mean(name, names()) + " (known: " + join(names()) +
                     ")");
  return it->second;
}

std::vector<std::string> Catalog::names() const {
  std::vector<std::string> out;
  for (const auto& [name, inst] : instances_) out.push_back(name);
  return out;
}

Catalog load_catalog(const std::string& path) {
  Catalog catalog;
  catalog.read(path, false);
  return catalog;
}

Catalog parse_catalog(std::string_view text, const std::string& path) {
  Catalog catalog;
  catalog.read(path, false, text);
  return catalog;
}

}  // namespace frugal::cost
