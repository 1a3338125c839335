// DynamicLossScaler (see loss_scaler.h). The unscale pass multiplies by the f32 (or f64) reciprocal
// of the scale, as PyTorch does, and detects non-finite results from their exponent bits, an integer
// OR that vectorizes where a floating-point test would not.
#include "frugal/optim/loss_scaler.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "frugal/base/error.h"
#include "frugal/base/format.h"
#include "frugal/base/parallel.h"

namespace frugal {
namespace optim {

namespace {
constexpr int64_t kChunk = 1 << 14;  // elements per block; blocks are split statically over threads
constexpr int64_t kGrainBlocks = 2;  // blocks per thread at least

// PyTorch keeps the scale in an f32 tensor and updates it in double: the scale is always an f32
// value, so the loss multiplies by exactly it.
double as_f32(double v) { return double(float(v)); }

// g[i] *= inv for n elements; returns true when any result is inf or NaN (exponent all ones).
template <class T, class Bits, Bits kExponent>
__attribute__((noinline, target("prefer-vector-width=512"))) bool unscale_kernel(int64_t n, T* __restrict g, T inv) {
  Bits bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T v = g[i] * inv;
    g[i] = v;
    Bits u;
    std::memcpy(&u, &v, sizeof u);
    bad |= Bits((u & kExponent) == kExponent);
  }
  return bad != 0;
}
}  // namespace

DynamicLossScaler::DynamicLossScaler(const LossScalerOptions& options) : options_(options), scale_(0) {
  const LossScalerOptions& o = options;
  if (!(std::isfinite(o.init_scale) && o.init_scale > 0 && o.init_scale <= double(FLT_MAX)))
    throw InputError("loss scaler: init_scale is " + number_text(o.init_scale) +
                     ", expected a finite number in (0, 3.4e38] (the scale multiplies an f32 loss)");
  if (!(std::isfinite(o.growth_factor) && o.growth_factor > 1))
    throw InputError("loss scaler: growth_factor is " + number_text(o.growth_factor) + ", expected a finite number > 1");
  if (!(o.backoff_factor > 0 && o.backoff_factor < 1))
    throw InputError("loss scaler: backoff_factor is " + number_text(o.backoff_factor) + ", expected a number in (0, 1)");
  if (o.growth_interval < 1)
    throw InputError("loss scaler: growth_interval is " + std::to_string(o.growth_interval) + ", expected an integer >= 1");
  scale_ = as_f32(o.init_scale);
}

bool DynamicLossScaler::unscale_and_check(const std::vector<Tensor>& params) {
  blocks_.clear();
  for (const Tensor& p : params) {
    if (!p.defined()) continue;
    Tensor g = p.grad();
    if (!g.defined() || g.numel() == 0) continue;
    FRUGAL_CHECK(g.is_contiguous(), "unscale_and_check: gradients must be contiguous");
    FRUGAL_CHECK(g.dtype() == DType::f32 || g.dtype() == DType::f64, "unscale_and_check: gradients must be f32 or f64");
    // The block keeps a raw pointer: the gradient tensor is held by its parameter for the call.
    char* data = static_cast<char*>(g.raw_data());
    const int64_t element = int64_t(dtype_size(g.dtype()));
    for (int64_t begin = 0; begin < g.numel(); begin += kChunk)
      blocks_.push_back({g.dtype(), data + begin * element, std::min(g.numel() - begin, kChunk)});
  }
  block_bad_.assign(blocks_.size(), 0);
  // PyTorch: inv_scale = float(1 / double(scale)); exact for the usual power-of-two scales.
  const float inv_f32 = float(1.0 / scale_);
  const double inv_f64 = 1.0 / scale_;
  parallel_for(int64_t(blocks_.size()), kGrainBlocks, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const Block& block = blocks_[size_t(b)];
      const bool bad = block.dtype == DType::f32
                           ? unscale_kernel<float, uint32_t, 0x7F800000u>(block.n, static_cast<float*>(block.data), inv_f32)
                           : unscale_kernel<double, uint64_t, 0x7FF0000000000000ull>(
                                 block.n, static_cast<double*>(block.data), inv_f64);
      block_bad_[size_t(b)] = bad ? 1 : 0;
    }
  });
  for (uint8_t bad : block_bad_)
    if (bad) return false;
  return true;
}

void DynamicLossScaler::update(bool found_inf) {
  if (found_inf) {
    scale_ = as_f32(scale_ * options_.backoff_factor);
    growth_tracker_ = 0;
    ++skipped_steps_;
    return;
  }
  if (++growth_tracker_ < options_.growth_interval) return;
  growth_tracker_ = 0;
  // PyTorch keeps its f32 scale when growing would make it inf.
  const double grown = scale_ * options_.growth_factor;
  if (grown <= double(FLT_MAX)) scale_ = as_f32(grown);
}

std::vector<std::pair<std::string, double>> DynamicLossScaler::state() const {
  return {{"scale", scale_}, {"growth_tracker", double(growth_tracker_)}, {"skipped_steps", double(skipped_steps_)}};
}

void DynamicLossScaler::load_state(const std::vector<std::pair<std::string, double>>& state) {
  double scale = NAN, tracker = NAN, skipped = NAN;
  for (const auto& [name, value] : state) {
    if (name == "scale") scale = value;
    else if (name == "growth_tracker") tracker = value;
    else if (name == "skipped_steps") skipped = value;
    else throw InputError("loss scaler state: unknown value '" + name + "' (expected scale, growth_tracker, skipped_steps)");
  }
  auto missing = [](double v) { return std::isnan(v); };
  if (missing(scale) || missing(tracker) || missing(skipped))
    throw InputError(std::string("loss scaler state: missing value '") +
                     (missing(scale) ? "scale" : missing(tracker) ? "growth_tracker" : "skipped_steps") + "'");
  if (!(std::isfinite(scale) && scale > 0 && scale <= double(FLT_MAX)))
    throw InputError("loss scaler state: scale = " + number_text(scale) + ", expected a finite number in (0, 3.4e38]");
  if (!(tracker >= 0 && tracker < double(options_.growth_interval) && tracker == std::floor(tracker)))
    throw InputError("loss scaler state: growth_tracker = " + number_text(tracker) + ", expected an integer in [0, " +
                     std::to_string(options_.growth_interval) + ")");
  if (!(skipped >= 0 && skipped < 9.007199254740992e15 && skipped == std::floor(skipped)))
    throw InputError("loss scaler state: skipped_steps = " + number_text(skipped) + ", expected an integer >= 0");
  scale_ = scale;
  growth_tracker_ = int64_t(tracker);
  skipped_steps_ = int64_t(skipped);
}

}  // namespace optim
}  // namespace frugal
