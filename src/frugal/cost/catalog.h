// The hardware and price catalog: instance types with prices, peak FLOP/s, power and grid carbon
// intensity, loaded from catalog/instances.toml and optionally merged with a user file that adds
// entries or overrides single keys. Limits: one region per entry; prices are list prices, spot
// prices are typical values that move hourly (each entry names its source and date).
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace frugal::cost {

struct Instance {
  std::string name;        // the catalog key, e.g. "c7i.2xlarge"
  std::string provider;    // "aws", "gcp", "azure", "runpod", "local", ...
  std::string region;
  std::string accelerator = "cpu";  // "cpu" or the accelerator kind ("A100-SXM4-40GB", ...)
  int accelerator_count = 0;        // 0 for "cpu"
  std::string cpu;                  // processor description (optional)
  int vcpus = 0;
  double memory_gib = 0.0;
  double usd_per_hour = 0.0;       // on-demand
  double spot_usd_per_hour = 0.0;
  std::map<std::string, double> peak_flops;  // FLOP/s (int8: op/s) by precision: fp32, bf16, fp16, int8
  double tdp_w = 0.0;              // power of the modelled share at full load
  double idle_w = 0.0;             // power at zero load (default idle_fraction_default x tdp_w)
  double carbon_g_per_kwh = 0.0;   // grid intensity, gCO2e per kWh
  double network_usd_per_gb = 0.0; // traffic between instances of one job, USD per GB sent
  std::string source, date, notes;
  std::string file;                // last file that defined or changed this entry
  std::set<std::string> user_keys; // keys set by a user file through Catalog::merge

  bool from_user(const std::string& key) const { return user_keys.count(key) > 0; }
  // Peak FLOP/s at `precision` ("fp32", "bf16", "fp16", "int8"), if the catalog states one.
  std::optional<double> peak(const std::string& precision) const;
};

// When an entry has no idle_w, idle power is this fraction of tdp_w (a typical server CPU idles at
// 20-30% of TDP; stated here so the estimate is reproducible).
inline constexpr double idle_fraction_default = 0.25;

class Catalog {
 public:
  // Adds entries from a user file; an existing name keeps the keys the file does not set.
  // Keys set by the file are remembered (Instance::user_keys) so figures can say "user".
  void merge(const std::string& user_file);

  bool contains(const std::string& name) const { return instances_.count(name) > 0; }
  // Throws InputError for an unknown name, with a suggestion and the known names.
  const Instance& at(const std::string& name) const;
  std::vector<std::string> names() const;
  const std::map<std::string, Instance>& instances() const { return instances_; }

 private:
  friend Catalog load_catalog(const std::string& path);
  friend Catalog parse_catalog(std::string_view text, const std::string& path);
  // Reads `path`, or with `text` that content (`path` then only names it in messages).
  void read(const std::string& path, bool user, std::optional<std::string_view> text = std::nullopt);
  std::map<std::string, Instance> instances_;
  std::set<std::string> idle_stated_;  // entries whose idle_w was given (not the default fraction)
};

// Loads and validates a catalog file: a missing key, a negative number, an unknown key or a value
// of the wrong type is an InputError naming the file, line, entry and key.
Catalog load_catalog(const std::string& path);

// The same for a catalog's text already in memory; `path` names it in messages.
Catalog parse_catalog(std::string_view text, const std::string& path);

}  // namespace frugal::cost
