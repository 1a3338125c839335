// The thread-local compute precision and its job-file spelling.
#include "frugal/autograd/precision.h"

#include <algorithm>

#include "frugal/base/error.h"

namespace frugal {

namespace {
thread_local Precision t_precision = Precision::fp32;
thread_local std::vector<const void*> t_int8_excluded;  // sorted
}  // namespace

void set_int8_excluded_weights(std::vector<const void*> weights) {
  std::sort(weights.begin(), weights.end());
  t_int8_excluded = std::move(weights);
}

const std::vector<const void*>& int8_excluded_weights() { return t_int8_excluded; }

bool int8_excluded_weight(const void* weight_data) {
  return std::binary_search(t_int8_excluded.begin(), t_int8_excluded.end(), weight_data);
}

void set_compute_precision(Precision precision) { t_precision = precision; }

Precision compute_precision() { return t_precision; }

std::string_view precision_name(Precision precision) {
  switch (precision) {
    case Precision::bf16_mixed: return "bf16-mixed";
    case Precision::fp16_mixed: return "fp16-mixed";
    case Precision::int8_mixed: return "int8-mixed";
    case Precision::fp32: break;
  }
  return "fp32";
}

Precision parse_precision(std::string_view name, const std::string& where) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16-mixed") return Precision::bf16_mixed;
  if (name == "fp16-mixed") return Precision::fp16_mixed;
  if (name == "int8-mixed") return Precision::int8_mixed;
  throw InputError(where + ": unknown precision mode \"" + std::string(name) +
                   "\", expected \"fp32\", \"bf16-mixed\", \"fp16-mixed\" or \"int8-mixed\"");
}

}  // namespace frugal
