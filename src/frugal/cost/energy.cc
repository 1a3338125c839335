// RAPL discovery and sampling with wraparound, and the utilization-based power estimate.
#include "frugal/cost/energy.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "frugal/base/error.h"
#include "frugal/base/format.h"
#include "frugal/cost/catalog.h"

namespace frugal::cost {

namespace {

std::string read_line(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string line;
  if (in) std::getline(in, line);
  return line;
}

// Zones to add up: each package (top level "intel-rapl:N", named "package-N") and its "dram"
// subzone. Core/uncore subzones are part of the package, and "psys" covers the packages too, so
// adding either would count energy twice.
std::vector<std::filesystem::path> rapl_zone_dirs(const std::filesystem::path& root) {
  std::vector<std::filesystem::path> out;
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec)) return out;
  for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("intel-rapl:", 0) != 0) continue;
    size_t colons = std::count(name.begin(), name.end(), ':');
    std::string zone_name = read_line(entry.path() / "name");
    bool package = colons == 1 && zone_name.rfind("package", 0) == 0;
    bool dram = colons == 2 && zone_name == "dram";
    if (package || dram) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

PowerModel power_model(const Instance& instance, int cores) {
  return PowerModel{instance.tdp_w, instance.idle_w, cores};
}

std::optional<uint64_t> EnergyMeter::read_counter(const std::string& path) {
  std::ifstream in(path);
  uint64_t value = 0;
  if (!(in >> value)) return std::nullopt;
  return value;
}

EnergyMeter::EnergyMeter(PowerModel model, std::string powercap_root)
    : EnergyMeter(model, std::move(powercap_root), read_process_sample()) {}

EnergyMeter::EnergyMeter(PowerModel model, std::string powercap_root, const ProcessSample& start)
    : model_(model), root_(std::move(powercap_root)), last_(start) {
  FRUGAL_CHECK(model_.tdp_w > 0 && model_.idle_w >= 0 && model_.idle_w <= model_.tdp_w && model_.cores >= 1,
               "EnergyMeter needs tdp_w > 0, 0 <= idle_w <= tdp_w and cores >= 1");
  // Measured only when every zone is readable (energy_uj is root-only since Linux 5.10): a partial
  // sum would under-count without saying so.
  std::vector<Zone> zones;
  bool all_readable = true;
  for (const auto& dir : rapl_zone_dirs(root_)) {
    Zone z;
    z.energy_path = (dir / "energy_uj").string();
    auto energy = read_counter(z.energy_path);
    auto range = read_counter((dir / "max_energy_range_uj").string());
    if (!energy || !range || *range == 0) {
      all_readable = false;
      break;
    }
    z.last_uj = *energy;
    z.max_range_uj = *range;
    zones.push_back(z);
  }
  if (all_readable && !zones.empty()) {
    zones_ = std::move(zones);
    for (const auto& z : zones_) zone_paths_.push_back(z.energy_path);
    measured_ = true;
  }
}

void EnergyMeter::sample() { sample(read_process_sample()); }

void EnergyMeter::sample(const ProcessSample& now) {
  if (measured_) {
    std::vector<uint64_t> values;
    for (const auto& z : zones_) {
      auto v = read_counter(z.energy_path);
      if (!v) break;
      values.push_back(*v);
    }
    if (values.size() == zones_.size()) {
      for (size_t i = 0; i < zones_.size(); ++i) {
        Zone& z = zones_[i];
        // The counter runs from 0 to max_energy_range_uj and then starts again at 0.
        uint64_t delta = values[i] >= z.last_uj ? values[i] - z.last_uj : (z.max_range_uj - z.last_uj) + values[i];
        joules_ += double(delta) * 1e-6;
        z.last_uj = values[i];
      }
      last_ = now;
      return;
    }
    // A counter stopped being readable: estimate from here on and label the total as estimated.
    measured_ = false;
    fell_back_ = true;
  }
  add_estimate(now);
}

void EnergyMeter::add_estimate(const ProcessSample& now) {
  double wall = now.wall_seconds - last_.wall_seconds;
  if (wall > 0) {
    double utilization = cpu_utilization(last_, now, model_.cores);
    double watts = model_.idle_w + (model_.tdp_w - model_.idle_w) * utilization;
    joules_ += watts * wall;
  }
  last_ = now;
}

std::string EnergyMeter::method() const {
  std::ostringstream out;
  if (measured_) {
    out << "measured: Linux powercap RAPL counters (" << zones_.size()
        << " zone(s): CPU packages and DRAM of the whole machine)";
  } else {
    out << "estimated: power = idle " << model_.idle_w << " W + (TDP " << model_.tdp_w << " W - idle) x CPU utilization"
        << " (process CPU seconds / (wall seconds x " << model_.cores << " cores))";
    out << (fell_back_ ? "; RAPL counters became unreadable during the run" : "; RAPL counters not readable here");
  }
  return out.str();
}

Figure carbon_kg(double kwh, const Instance& instance, std::optional<double> user_g_per_kwh) {
  if (user_g_per_kwh) {
    if (!std::isfinite(*user_g_per_kwh) || *user_g_per_kwh < 0)
      throw InputError("carbon intensity " + number_text(*user_g_per_kwh) + ": expected a number >= 0 gCO2e/kWh");
    return {kwh * *user_g_per_kwh / 1000.0, source_user};
  }
  return {kwh * instance.carbon_g_per_kwh / 1000.0,
          instance.from_user("carbon_g_per_kwh") ? source_user : source_catalog};
}

}  // namespace frugal::cost
