// The thread-local compute precision and its job-file spelling.
#include "frugal/autograd/precision.h"

#include "frugal/base/error.h"

namespace frugal {

namespace {
thread_local Precision t_precision = Precision::fp32;
}  // namespace

void set_compute_precision(Precision precision) { t_precision = precision; }

Precision compute_precision() { return t_precision; }

std::string_view precision_name(Precision precision) {
  switch (precision) {
    case Precision::bf16_mixed: return "bf16-mixed";
    case Precision::fp16_mixed: return "fp16-mixed";
    case Precision::fp32: break;
  }
  return "fp32";
}

Precision parse_precision(std::string_view name, const std::string& where) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16-mixed") return Precision::bf16_mixed;
  if (name == "fp16-mixed") return Precision::fp16_mixed;
  throw InputError(where + ": unknown precision mode \"" + std::string(name) +
                   "\", expected \"fp32\", \"bf16-mixed\" or \"fp16-mixed\"");
}

}  // namespace frugal
