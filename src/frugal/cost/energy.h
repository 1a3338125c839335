// Energy and carbon of a run. Energy is `measured` from the Linux powercap RAPL counters when they
// are readable, else `estimated` from a power model; carbon is energy x grid intensity. Limits:
// RAPL covers CPU packages (+ DRAM where exposed) of the whole machine, not just this process, and
// no accelerators; the counters must be sampled at least once per wraparound (minutes at full load).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "frugal/cost/figure.h"
#include "frugal/cost/meters.h"

namespace frugal::cost {

struct Instance;

// The estimate used without RAPL: power = idle_w + (tdp_w - idle_w) x utilization, where
// utilization = process CPU seconds / (wall seconds x cores), clamped to [0, 1], integrated over
// each interval between samples. At zero load the idle share still counts: never a silent zero.
struct PowerModel {
  double tdp_w = 0;
  double idle_w = 0;
  int cores = 1;  // logical CPUs the utilization is relative to (this machine's)
};

// The catalog entry's power with this machine's core count.
PowerModel power_model(const Instance& instance, int cores = online_cores());

class EnergyMeter {
 public:
  // Reads the counters under `powercap_root` (a parameter so tests can use a fake directory) and
  // the process CPU time now; later energy is counted from here.
  explicit EnergyMeter(PowerModel model, std::string powercap_root = "/sys/class/powercap");
  // Same, with the process sample that marks the start (to align with other meters).
  EnergyMeter(PowerModel model, std::string powercap_root, const ProcessSample& start);

  // Adds the energy since the previous sample. Call it regularly (every step is fine: one small
  // file read per zone) so that no counter wraps twice between samples.
  void sample();
  void sample(const ProcessSample& now);  // with a sample the caller already took

  // Energy up to the last sample; source "measured" or "estimated".
  Figure joules() const { return {joules_, source()}; }
  Figure kwh() const { return {joules_ / 3.6e6, source()}; }
  std::string source() const { return measured_ ? source_measured : source_estimated; }
  // One line saying how the figure was obtained (printed with reports).
  std::string method() const;
  // The RAPL zones read (paths), empty when estimating.
  const std::vector<std::string>& zones() const { return zone_paths_; }

 private:
  struct Zone {
    std::string energy_path;
    uint64_t max_range_uj = 0;
    uint64_t last_uj = 0;
  };
  static std::optional<uint64_t> read_counter(const std::string& path);
  void add_estimate(const ProcessSample& now);

  PowerModel model_;
  std::string root_;
  std::vector<Zone> zones_;
  std::vector<std::string> zone_paths_;
  bool measured_ = false;
  bool fell_back_ = false;  // RAPL was read, then became unreadable: the rest is estimated
  ProcessSample last_;
  double joules_ = 0;
};

// kg CO2e for `kwh` at `g_per_kwh`. The source names where the intensity came from: "user" for
// a value the user gave, else "catalog" (or "user" when a user catalog file set it).
Figure carbon_kg(double kwh, const Instance& instance, std::optional<double> user_g_per_kwh = std::nullopt);

}  // namespace frugal::cost
