// Dynamic loss scaling for fp16-mixed training, with PyTorch GradScaler's semantics: the loss is
// multiplied by scale() before backward, the gradients are divided by it (and checked for inf/NaN)
// before clipping and the optimizer step, a step with a non-finite gradient is skipped and the scale
// backed off, and after growth_interval good steps in a row the scale grows. Limits: f32 and f64
// gradients only; one scale for all parameters (no per-group or per-device scales).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "frugal/tensor/tensor.h"

namespace frugal {
namespace optim {

struct LossScalerOptions {
  double init_scale = 65536.0;  // 2^16, as PyTorch
  double growth_factor = 2.0;   // > 1
  double backoff_factor = 0.5;  // in (0, 1)
  int64_t growth_interval = 2000;  // good steps in a row before the scale grows (>= 1)
};

class DynamicLossScaler {
 public:
  // InputError naming the option when a value is out of range: init_scale must be finite and in
  // (0, FLT_MAX] (the scale multiplies an f32 loss), growth_factor finite and > 1, backoff_factor in
  // (0, 1), growth_interval >= 1.
  explicit DynamicLossScaler(const LossScalerOptions& options = {});

  // Always an f32 value, as PyTorch's f32 scale tensor (init_scale is rounded to f32).
  double scale() const { return scale_; }
  int64_t growth_tracker() const { return growth_tracker_; }
  int64_t skipped_steps() const { return skipped_steps_; }
  const LossScalerOptions& options() const { return options_; }

  // Multiplies every parameter's gradient by 1 / scale() in place (one threaded pass over fixed
  // chunks; parameters without a gradient are skipped) and returns true when every unscaled value is
  // finite, false when any is inf or NaN (the gradients are then unusable: skip the step).
  bool unscale_and_check(const std::vector<Tensor>& params);

  // After a step: found_inf backs the scale off, resets the growth tracker and counts a skipped
  // step; otherwise the tracker counts the good step and, at growth_interval, the scale grows (unless
  // it would pass FLT_MAX) and the tracker restarts.
  void update(bool found_inf);

  // The scaler's state as named numbers ("scale", "growth_tracker", "skipped_steps"), exact as
  // doubles, so that a resumed run continues bit-identically. load_state throws InputError naming
  // the value that is missing, unknown or out of range.
  std::vector<std::pair<std::string, double>> state() const;
  void load_state(const std::vector<std::pair<std::string, double>>& state);

 private:
  LossScalerOptions options_;
  double scale_;
  int64_t growth_tracker_ = 0, skipped_steps_ = 0;
  // Scratch kept between steps so that unscaling allocates nothing in the steady state.
  struct Block {
    DType dtype;
    void* data;
    int64_t n;
  };
  std::vector<Block> blocks_;
  std::vector<uint8_t> block_bad_;
};

}  // namespace optim
}  // namespace frugal
