// fake_quantize: int8 rounding simulated in float for quantization-aware training, with the
// straight-through estimator. Limits: f32 and f64; the scale gets no gradient (its ranges are
// observed, not learned as in LSQ); per-channel scales along axis 0 only.
#pragma once

#include <cstdint>

#include "frugal/tensor/tensor.h"

namespace frugal {

// y = clamp(round_half_even(x / s), qmin, qmax) * s with s = scale[0] (scale (1): per tensor) or
// s = scale[c] for the slice x[c] (scale (C), C = x.size(0) > 1: per output channel of a weight).
// Backward: grad_x = grad_y where qmin <= x / s <= qmax (the clipping range, bounds included),
// 0 outside. scale must be positive and finite (an assertion: the caller derives it from ranges).
Tensor fake_quantize(const Tensor& x, const Tensor& scale, int64_t qmin, int64_t qmax);

}  // namespace frugal
