// Projection arithmetic; see projection.h.
#include "frugal/cost/projection.h"

#include <cmath>
#include <sstream>

#include "frugal/base/error.h"
#include "frugal/base/format.h"
#include "frugal/cost/catalog.h"

namespace frugal::cost {

Projection project(const Instance& instance, double model_flops, const std::string& precision, double efficiency,
                   Pricing pricing) {
  if (!std::isfinite(model_flops) || model_flops < 0)
    throw InputError("projection: model FLOPs " + number_text(model_flops) + ": expected a number >= 0");
  if (!std::isfinite(efficiency) || efficiency <= 0 || efficiency > 1)
    throw InputError("projection: efficiency " + number_text(efficiency) + ": expected a fraction in (0, 1]");
  auto peak = instance.peak(precision);
  if (!peak) {
    std::string known;
    for (const auto& [p, v] : instance.peak_flops) known += (known.empty() ? "" : ", ") + p;
    throw InputError("projection: instance '" + instance.name + "' states no peak for precision '" + precision +
                     "' (it has: " + (known.empty() ? "none" : known) + ")");
  }
  Projection out;
  out.instance = instance.name;
  out.precision = precision;
  out.efficiency = efficiency;
  double seconds = model_flops / (*peak * efficiency);
  double hours = seconds / 3600.0;
  double price = price_per_hour(instance, pricing);
  double kwh = instance.tdp_w * hours / 1000.0;
  out.hours = {hours, source_estimated};
  out.usd = {hours * price, source_estimated};
  out.kwh = {kwh, source_estimated};
  out.co2_kg = {kwh * instance.carbon_g_per_kwh / 1000.0, source_estimated};
  std::ostringstream method;
  method << "estimated: hours = " << model_flops << " FLOP / (" << *peak / 1e12 << " TFLOP/s " << precision
         << " peak x " << efficiency << " efficiency) / 3600; USD = hours x " << price << " USD/h "
         << pricing_name(pricing) << "; kWh = hours x " << instance.tdp_w << " W (full power); CO2 = kWh x "
         << instance.carbon_g_per_kwh << " g/kWh";
  out.method = method.str();
  return out;
}

}  // namespace frugal::cost
