// "This run on instance X would cost": hours, dollars, energy and carbon for a given amount of
// model FLOPs on a catalog instance, from its peak FLOP/s at a precision and a stated efficiency
// (the fraction of peak the job reaches, i.e. its MFU). Limits: a first-order model; it ignores
// data loading, communication and memory limits, which the efficiency has to absorb.
#pragma once

#include <string>

#include "frugal/cost/billing.h"
#include "frugal/cost/figure.h"

namespace frugal::cost {

struct Instance;

struct Projection {
  std::string instance, precision;
  double efficiency = 0;
  Figure hours, usd, kwh, co2_kg;  // all "estimated"
  std::string method;              // the formulas, with the numbers used
};

// hours = model_flops / (peak[precision] x efficiency) / 3600; usd = hours x price (continuous,
// no billing minimum); kwh = tdp_w x hours / 1000 (full power while busy); co2 = kwh x intensity.
// precision: "fp32", "bf16", "fp16" or "int8". InputError when the instance states no peak for
// it, or for efficiency outside (0, 1] or negative FLOPs.
Projection project(const Instance& instance, double model_flops, const std::string& precision, double efficiency,
                   Pricing pricing = Pricing::on_demand);

}  // namespace frugal::cost
