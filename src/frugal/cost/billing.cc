// Billing arithmetic; see billing.h for the rules.
#include "frugal/cost/billing.h"

#include <cmath>

#include "frugal/base/error.h"
#include "frugal/cost/catalog.h"

namespace frugal::cost {

Pricing parse_pricing(const std::string& text, const std::string& where) {
  if (text == "on-demand") return Pricing::on_demand;
  if (text == "spot") return Pricing::spot;
  throw InputError(where + " = \"" + text + "\": expected \"on-demand\" or \"spot\"");
}

Billing parse_billing(const std::string& text, const std::string& where) {
  if (text == "per-second") return Billing::per_second;
  if (text == "per-hour") return Billing::per_hour;
  throw InputError(where + " = \"" + text + "\": expected \"per-second\" or \"per-hour\"");
}

const char* pricing_name(Pricing pricing) { return pricing == Pricing::spot ? "spot" : "on-demand"; }
const char* billing_name(Billing billing) { return billing == Billing::per_hour ? "per-hour" : "per-second"; }

double billed_hours(double seconds, Billing billing) {
  FRUGAL_CHECK(std::isfinite(seconds) && seconds >= 0, "billed_hours needs a finite time >= 0");
  if (seconds == 0) return 0.0;
  if (billing == Billing::per_hour) return std::ceil(seconds / 3600.0);
  return std::max(60.0, std::ceil(seconds)) / 3600.0;
}

double price_per_hour(const Instance& instance, Pricing pricing) {
  return pricing == Pricing::spot ? instance.spot_usd_per_hour : instance.usd_per_hour;
}

Figure dollars(const Instance& instance, double wall_seconds, Pricing pricing, Billing billing) {
  const char* key = pricing == Pricing::spot ? "spot_usd_per_hour" : "usd_per_hour";
  return {billed_hours(wall_seconds, billing) * price_per_hour(instance, pricing),
          instance.from_user(key) ? source_user : source_catalog};
}

}  // namespace frugal::cost
