// Human units for printed figures (units.h): scale to a unit, then a fixed count of significant
// digits, so 4.99691e-05 kg reads "0.050 g CO2e".
#include "frugal/base/units.h"

#include <cmath>
#include <cstdio>

namespace frugal {
namespace {

struct Unit {
  double scale;  // base units per this unit
  const char* name;
};

// v in the largest of `units` (ascending scale factors relative to the base unit) where it is at
// least 1, but not below units[1] (Wh, g) while it is at least 0.01 of that: "0.10 Wh" (not
// "104 mWh"), "12 kg" (not "0.012 t"), "0.079 mWh" (not "0.000079 Wh").
template <size_t N>
std::string scaled(double v, const Unit (&units)[N], int digits, const char* suffix) {
  static_assert(N >= 2);
  if (!std::isfinite(v) || v == 0) return significant_text(v, digits) + " " + units[1].name + suffix;
  const double a = std::fabs(v);
  const Unit* pick = a >= 0.01 * units[1].scale ? &units[1] : &units[0];
  for (size_t i = 2; i < N; ++i)
    if (a >= units[i].scale) pick = &units[i];
  return significant_text(v / pick->scale, digits) + " " + pick->name + suffix;
}

}  // namespace

std::string significant_text(double v, int digits) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0) return "0";
  // Decimals after the point for `digits` significant digits; none once the integer part has them.
  const int magnitude = int(std::floor(std::log10(std::fabs(v))));  // 0.006 -> -3, 12.3 -> 1
  int decimals = digits - 1 - magnitude;
  if (decimals < 0) decimals = 0;
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, v);
  // Rounding may carry into a new digit (0.0996 at 2 digits -> "0.10", fine; 9.96 -> "10.0": one
  // decimal too many): redo with one decimal less when the carry added a significant digit.
  double rounded = std::atof(text);
  if (decimals > 0 && rounded != 0 && int(std::floor(std::log10(std::fabs(rounded)))) > magnitude)
    std::snprintf(text, sizeof text, "%.*f", decimals - 1, v);
  return text;
}

std::string usd_text(double usd) {
  if (usd < 0) return "-" + usd_text(-usd);
  if (usd == 0) return "$0";
  char text[64];
  if (!std::isfinite(usd)) return "$" + significant_text(usd, 2);
  if (usd < 1) return "$" + significant_text(usd, 2);
  if (usd < 1000) {
    std::snprintf(text, sizeof text, "$%.2f", usd);
    return text;
  }
  std::snprintf(text, sizeof text, "$%.0f", usd);
  return text;
}

std::string energy_text(double kwh) {
  static const Unit units[] = {{1e-6, "mWh"}, {1e-3, "Wh"}, {1.0, "kWh"}, {1e3, "MWh"}};
  return scaled(kwh, units, 2, "");
}

std::string carbon_text(double kg) {
  static const Unit units[] = {{1e-6, "mg"}, {1e-3, "g"}, {1.0, "kg"}, {1e3, "t"}};
  return scaled(kg, units, 2, " CO2e");
}

std::string duration_text(double seconds) {
  if (!std::isfinite(seconds)) return significant_text(seconds, 2) + " s";
  if (seconds < 0) return "-" + duration_text(-seconds);
  char text[64];
  if (seconds == 0) return "0 s";
  if (seconds < 1e-5) return significant_text(seconds * 1e6, 2) + " us";
  if (seconds < 0.01) return significant_text(seconds * 1e3, 2) + " ms";
  if (seconds < 60) return significant_text(seconds, seconds < 10 ? 2 : 3) + " s";
  const long long s = std::llround(seconds);
  if (s < 3600) {
    std::snprintf(text, sizeof text, "%lld min %lld s", s / 60, s % 60);
  } else if (s < 86400) {
    std::snprintf(text, sizeof text, "%lld h %02lld min", s / 3600, (s % 3600) / 60);
  } else {
    std::snprintf(text, sizeof text, "%lld d %02lld h", s / 86400, (s % 86400) / 3600);
  }
  return text;
}

}  // namespace frugal
