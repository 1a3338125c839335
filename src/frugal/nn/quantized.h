// int8 layers for inference: per-output-channel symmetric int8 weights, inputs quantized with a
// calibrated scale (static) or per row at run time (dynamic), as LayerHooks on Linear and Conv2d;
// range observers for calibration; BatchNorm folded into the convolution before it. Limits:
// inference only (no gradient); Conv2d with one group; a Linear's static input is s8 (the shared
// int8 matmul takes s8 x s8), a Conv2d's u8 when calibration saw no negative input.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "frugal/nn/layers.h"
#include "frugal/nn/module.h"

namespace frugal {
namespace nn {

// Per-output-channel symmetric quantization of a weight (out, ...): scale[o] = max |w[o]| / 127
// (1 for a channel of zeros), q = saturate(round_half_even(w / scale), -127, 127).
struct QuantizedWeight {
  Tensor values;  // i8, the weight's shape
  Tensor scale;   // f32 (out)
};
QuantizedWeight quantize_per_channel(const Tensor& weight);
Tensor dequantize_per_channel(const QuantizedWeight& weight);  // f32, values * scale[o]

// One quantized layer as the file stores it (nn/quantized.h's names: <layer>.weight i8,
// <layer>.weight_scale f32 (out), <layer>.bias f32 (out), <layer>.input_scale f32 (1)).
struct QuantizedLayer {
  QuantizedWeight weight;
  Tensor bias;         // f32 (out) or undefined
  Tensor input_scale;  // f32 (1): static; undefined: dynamic, per row (Linear only)
  bool input_unsigned = false;  // static u8 input (Conv2d only): calibration saw no negative value
};

// Sets an int8 hook on the layer (Linear or Conv2d); InputError when the layer's shapes and the
// quantized tensors disagree (name: the layer, for messages).
void set_int8(Linear& layer, const QuantizedLayer& quantized, const std::string& name);
void set_int8(Conv2d& layer, const QuantizedLayer& quantized, const std::string& name);

// The layers int8 serves, in model order, as (name, module): every Linear, and every Conv2d with at
// least kInt8MinConvChannels input channels per group. An image model's first convolution (1 or 3
// channels) stays f32: it is a sliver of the compute, oneDNN's int8 kernels run it at a few
// GOP/s, and the f32 first-block op (conv, BatchNorm, ReLU, pooling in one pass) is far faster.
inline constexpr int64_t kInt8MinConvChannels = 4;
std::vector<std::pair<std::string, Module*>> quantizable_layers(Module& model);

// What a calibration saw at one layer's input.
class RangeObserver {
 public:
  void observe(const Tensor& x);  // f32, any shape
  double min() const { return min_; }
  double abs_max() const { return abs_max_; }
  int64_t count() const { return count_; }
  // The p-th percentile (0 < p <= 100) of |x| over a strided sample of what was observed
  // (at most ~4M values kept); p = 100 is abs_max.
  double abs_percentile(double p) const;

 private:
  double min_ = 0, abs_max_ = 0;
  int64_t count_ = 0;
  std::vector<float> sample_;
};

// Hooks a RangeObserver on every quantizable layer (the layer still computes in f32); returns the
// observers in quantizable_layers' order. remove_hooks takes them off again.
std::vector<std::shared_ptr<RangeObserver>> observe_inputs(Module& model);
void remove_hooks(Module& model);

// Folds each BatchNorm2d that directly follows a quantizable Conv2d in a Sequential into that convolution
// (eval-mode statistics: w' = w * g / sqrt(var + eps), b' = (b - mean) * g / sqrt(var + eps) + beta)
// and makes the BatchNorm an identity (weight 1, bias 0, mean 0, var 1 - eps). Returns the folded
// BatchNorms' names. The convolution gains a bias if it had none only through its returned values:
// folded_bias holds one per folded conv, by conv name.
struct FoldedConv {
  std::string conv, batch_norm;
  Tensor weight, bias;  // f32: the folded weight and bias
};
std::vector<FoldedConv> fold_batch_norms(Module& model);
// Sets a BatchNorm to the identity as fold_batch_norms leaves it.
void make_identity(BatchNorm& batch_norm);

}  // namespace nn
}  // namespace frugal
