// Parameter initialization with PyTorch's rules (torch.nn.init: gains, fan_in/fan_out), drawn from
// counter-based streams: parameter i of a model uses Rng(seed, i, RandomPurpose::init), so a model's
// weights depend only on (seed, its structure). Limits: values differ from PyTorch's own RNG draws;
// the distributions and bounds are the same.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "frugal/base/rng.h"
#include "frugal/nn/module.h"
#include "frugal/tensor/tensor.h"

namespace frugal {
namespace nn {

// The random stream of each parameter of one model during one init_parameters call.
class InitStreams {
 public:
  InitStreams(uint64_t seed, const Module& model);
  // A fresh generator for `param` (the same one every time it is asked for).
  Rng rng(const Tensor& param) const;

 private:
  uint64_t seed_;
  std::unordered_map<const TensorImpl*, uint64_t> index_;
};

// Re-initializes every parameter of the model deterministically: each module's reset_parameters,
// children before parents (BatchNorm's also resets its running statistics, as PyTorch's does).
void init_parameters(Module& model, uint64_t seed);

namespace init {

// PyTorch's calculate_gain: linear, conv*, sigmoid -> 1; tanh -> 5/3; relu -> sqrt(2);
// leaky_relu -> sqrt(2 / (1 + slope^2)); selu -> 3/4. Unknown name -> InputError.
double calculate_gain(const std::string& nonlinearity, double param = 0.01);
// fan_in = size(1) * receptive field, fan_out = size(0) * receptive field; needs rank >= 2.
std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& t);

void uniform_(Tensor& t, double low, double high, Rng& rng);
void normal_(Tensor& t, double mean, double std, Rng& rng);
void constant_(Tensor& t, double value);
void zeros_(Tensor& t);
void ones_(Tensor& t);
// mode "fan_in" or "fan_out"; bound = gain * sqrt(3 / fan), gain = calculate_gain(nonlinearity, a).
void kaiming_uniform_(Tensor& t, Rng& rng, double a = 0, const std::string& mode = "fan_in",
                      const std::string& nonlinearity = "leaky_relu");
void kaiming_normal_(Tensor& t, Rng& rng, double a = 0, const std::string& mode = "fan_in",
                     const std::string& nonlinearity = "leaky_relu");
// bound = gain * sqrt(6 / (fan_in + fan_out)); std = gain * sqrt(2 / (fan_in + fan_out)).
void xavier_uniform_(Tensor& t, Rng& rng, double gain = 1.0);
void xavier_normal_(Tensor& t, Rng& rng, double gain = 1.0);

}  // namespace init
}  // namespace nn
}  // namespace frugal
