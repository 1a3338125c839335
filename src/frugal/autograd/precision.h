// The compute precision of the dense ops (matmul, linear, conv2d): fp32; bf16-mixed, where f32
// operands are rounded to bf16 (nearest even) and multiplied with f32 accumulation and output; or
// fp16-mixed, the same with IEEE half (nearest even, overflow to inf), which needs loss scaling
// (optim/loss_scaler.h) in training. Per thread, like grad mode. Only f32 inputs are affected: f64
// always runs exactly; parameters, gradients and everything outside the dense ops stay f32.
#pragma once

#include <string>
#include <string_view>

namespace frugal {

enum class Precision { fp32, bf16_mixed, fp16_mixed };

void set_compute_precision(Precision precision);
Precision compute_precision();

// "fp32", "bf16-mixed" or "fp16-mixed", the job-file spelling.
std::string_view precision_name(Precision precision);
// Parses a job-file mode; InputError naming `where` and the allowed values otherwise.
Precision parse_precision(std::string_view name, const std::string& where);

class PrecisionGuard {
 public:
  explicit PrecisionGuard(Precision precision) : previous_(compute_precision()) { set_compute_precision(precision); }
  ~PrecisionGuard() { set_compute_precision(previous_); }
  PrecisionGuard(const PrecisionGuard&) = delete;
  PrecisionGuard& operator=(const PrecisionGuard&) = delete;

 private:
  Precision previous_;
};

}  // namespace frugal
