// Dollars for a run: billed hours x the instance's on-demand or spot price. Billing granularity is
// per second with a 60 s minimum (AWS, GCP and Azure Linux VMs) or per started hour. Limits: no
// storage, network or licence charges; spot price is the catalog's typical value, not a quote.
#pragma once

#include <string>

#include "frugal/cost/figure.h"

namespace frugal::cost {

struct Instance;

enum class Pricing { on_demand, spot };
enum class Billing { per_second, per_hour };

// "on-demand" | "spot" and "per-second" | "per-hour"; `where` names the key for the error message.
Pricing parse_pricing(const std::string& text, const std::string& where = "pricing");
Billing parse_billing(const std::string& text, const std::string& where = "billing");
const char* pricing_name(Pricing pricing);
const char* billing_name(Billing billing);

// Hours billed for `seconds` of use: per second rounds up to whole seconds with a 60 s minimum
// for any use > 0; per hour rounds up to whole hours. 0 seconds bill nothing.
double billed_hours(double seconds, Billing billing);

double price_per_hour(const Instance& instance, Pricing pricing);

// billed_hours x price; source "catalog", or "user" when a user catalog file set that price.
Figure dollars(const Instance& instance, double wall_seconds, Pricing pricing, Billing billing);

}  // namespace frugal::cost
