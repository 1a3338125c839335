// The compute precision of the dense ops (matmul, linear, conv2d): fp32; bf16-mixed, where f32
// operands are rounded to bf16 (nearest even) and multiplied with f32 accumulation and output; or
// fp16-mixed, the same with IEEE half (nearest even, overflow to inf), which needs loss scaling
// (optim/loss_scaler.h) in training; or int8-mixed (SwitchBack, Wortsman et al. 2023), where
// linear's forward and input-gradient products run in int8 (x and dY quantized per row, W per
// tensor, int32 sums, f32 output) and its weight gradient, the convolutions and every other matmul
// run as in bf16-mixed. Per thread, like grad mode. Only f32 inputs are affected: f64 always runs
// exactly; parameters, gradients and everything outside the dense ops stay f32.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace frugal {

enum class Precision { fp32, bf16_mixed, fp16_mixed, int8_mixed };

// The modes whose convolutions, attention and plain matmuls take bf16 operands.
inline bool bf16_operands(Precision precision) {
  return precision == Precision::bf16_mixed || precision == Precision::int8_mixed;
}

// int8-mixed: the weights whose linear products stay bf16-mixed ([precision] int8_exclude), known
// by the address of their first element (parameters are updated in place, so it is stable). Per
// thread, like the precision; empty by default.
void set_int8_excluded_weights(std::vector<const void*> weights);
bool int8_excluded_weight(const void* weight_data);
const std::vector<const void*>& int8_excluded_weights();

void set_compute_precision(Precision precision);
Precision compute_precision();

// "fp32", "bf16-mixed", "fp16-mixed" or "int8-mixed", the job-file spelling.
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
