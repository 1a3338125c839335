// Budget checks; see budget.h.
#include "frugal/cost/budget.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "frugal/base/error.h"
#include "frugal/base/units.h"

namespace frugal::cost {

namespace {

constexpr double thresholds[] = {0.5, 0.8, 1.0};

// A figure as a person reads it (base/units.h): "$0.0060", "0.10 Wh", "0.050 g CO2e", "3 min 12 s".
std::string amount(double value, const std::string& unit) {
  if (unit == "USD") return usd_text(value);
  if (unit == "kWh") return energy_text(value);
  if (unit == "kg CO2e") return carbon_text(value);
  return duration_text(value * 3600);  // hours
}

std::string percent(double fraction) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(0) << fraction * 100 << "%";
  return out.str();
}

}  // namespace

Budget::Budget(BudgetLimits limits, double forecast_after) : limits_(limits), forecast_after_(forecast_after) {
  FRUGAL_CHECK(forecast_after > 0 && forecast_after < 1, "forecast_after must be in (0, 1)");
  auto add = [&](const std::optional<double>& limit, const char* key, const char* unit) {
    if (!limit) return;
    if (!std::isfinite(*limit) || *limit <= 0) {
      std::ostringstream value;
      value << *limit;
      throw InputError(std::string("[budget] ") + key + " = " + value.str() + ": expected a number > 0");
    }
    tracks_.push_back(Track{key, unit, *limit});
  };
  add(limits.usd, "max_usd", "USD");
  add(limits.kwh, "max_kwh", "kWh");
  add(limits.co2_kg, "max_co2_kg", "kg CO2e");
  add(limits.hours, "max_hours", "h");
}

std::vector<BudgetEvent> Budget::update(const BudgetTotals& totals, double progress) {
  std::vector<BudgetEvent> events;
  for (Track& t : tracks_) {
    double value = t.key == "max_usd" ? totals.usd
                   : t.key == "max_kwh" ? totals.kwh
                   : t.key == "max_co2_kg" ? totals.co2_kg
                                           : totals.hours;
    bool can_forecast = progress >= forecast_after_ && progress < 1;
    double forecast = can_forecast ? value / progress : 0.0;
    std::string forecast_text =
        can_forecast ? "; forecast " + amount(forecast, t.unit) + " at the end (" + percent(progress) + " done)" : "";

    int reached = 0;
    while (reached < 3 && value >= thresholds[reached] * t.limit) ++reached;
    if (reached > t.thresholds_done) {
      double threshold = thresholds[reached - 1];
      BudgetEvent e{BudgetEvent::Kind::threshold, t.key, threshold, value, forecast, ""};
      if (threshold >= 1.0) {
        e.message = "budget exceeded: " + t.key + " = " + amount(t.limit, t.unit) + " reached, now " +
                    amount(value, t.unit);
        if (exceeded_message_.empty()) exceeded_message_ = e.message;
      } else {
        e.message = "budget: " + percent(threshold) + " of " + t.key + " = " + amount(t.limit, t.unit) + " used (" +
                    amount(value, t.unit) + ")" + forecast_text;
      }
      events.push_back(e);
      t.thresholds_done = reached;
    }
    if (!t.forecast_done && can_forecast && value < t.limit && forecast > t.limit) {
      t.forecast_done = true;
      events.push_back({BudgetEvent::Kind::forecast, t.key, 1.0, value, forecast,
                        "budget forecast: at the current rate the run ends at " + amount(forecast, t.unit) +
                            ", over " + t.key + " = " + amount(t.limit, t.unit) + " (now " + amount(value, t.unit) +
                            " at " + percent(progress) + " done)"});
    }
  }
  return events;
}

std::vector<Budget::Fired> Budget::fired() const {
  std::vector<Fired> out;
  for (const Track& t : tracks_) out.push_back({t.key, t.limit, t.thresholds_done, t.forecast_done});
  return out;
}

void Budget::restore_fired(const std::vector<Fired>& fired) {
  for (const Fired& f : fired)
    for (Track& t : tracks_) {
      if (t.key != f.key || t.limit != f.limit) continue;
      t.thresholds_done = std::clamp(f.thresholds_done, 0, 3);
      t.forecast_done = f.forecast_done;
      if (t.thresholds_done == 3 && exceeded_message_.empty())
        exceeded_message_ = "budget exceeded: " + t.key + " = " + amount(t.limit, t.unit) + " reached";
    }
}

}  // namespace frugal::cost
