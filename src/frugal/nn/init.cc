// torch.nn.init rules over frugal's counter-based streams; values are drawn in row-major order.
#include "frugal/nn/init.h"

#include <cmath>
#include <functional>
#include <vector>

#include "frugal/autograd/autograd.h"

namespace frugal {
namespace nn {

InitStreams::InitStreams(uint64_t seed, const Module& model) : seed_(seed) {
  uint64_t i = 0;
  for (const auto& [name, p] : model.named_parameters()) index_[p.impl()] = i++;
}

Rng InitStreams::rng(const Tensor& param) const {
  auto it = index_.find(param.impl());
  FRUGAL_CHECK(it != index_.end(), "init: tensor is not a parameter of the model being initialized");
  return Rng(seed_, it->second, RandomPurpose::init);
}

namespace {
void reset_tree(Module& m, const InitStreams& streams) {
  for (const auto& [name, child] : m.named_children()) reset_tree(*child, streams);
  m.reset_parameters(streams);
}
}  // namespace

void init_parameters(Module& model, uint64_t seed) {
  InitStreams streams(seed, model);
  reset_tree(model, streams);
}

namespace init {

namespace {
// Writes draw() into every element of t, in row-major order.
void fill_with(Tensor& t, const std::function<double()>& draw) {
  autograd::NoGradGuard no_grad;
  const int64_t n = t.numel();
  if (t.dtype() == DType::f32 && t.is_contiguous()) {
    float* p = t.data<float>();
    for (int64_t i = 0; i < n; ++i) p[i] = float(draw());
    return;
  }
  std::vector<double> values(static_cast<size_t>(n));
  for (double& v : values) v = draw();
  t.copy_from(Tensor::from_vector(values, t.shape()));
}

double fan_for_mode(const Tensor& t, const std::string& mode) {
  auto [fan_in, fan_out] = fan_in_and_fan_out(t);
  if (mode == "fan_in") return double(fan_in);
  if (mode == "fan_out") return double(fan_out);
  throw InputError("init: mode '" + mode + "' is not one of fan_in, fan_out");
}
}  // namespace

double calculate_gain(const std::string& nonlinearity, double param) {
  if (nonlinearity == "linear" || nonlinearity == "sigmoid" || nonlinearity.rfind("conv", 0) == 0) return 1.0;
  if (nonlinearity == "tanh") return 5.0 / 3.0;
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") return std::sqrt(2.0 / (1.0 + param * param));
  if (nonlinearity == "selu") return 3.0 / 4.0;
  throw InputError("init: nonlinearity '" + nonlinearity +
                   "' is not one of linear, conv1d, conv2d, sigmoid, tanh, relu, leaky_relu, selu");
}

std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& t) {
  FRUGAL_CHECK(t.rank() >= 2, "fan in/out of a tensor of shape " + shape_str(t.shape()) + " (needs rank >= 2)");
  int64_t receptive = 1;
  for (int64_t i = 2; i < t.rank(); ++i) receptive *= t.shape()[i];
  return {t.shape()[1] * receptive, t.shape()[0] * receptive};
}

void uniform_(Tensor& t, double low, double high, Rng& rng) {
  fill_with(t, [&] { return low + (high - low) * rng.uniform_double(); });
}

void normal_(Tensor& t, double mean, double std, Rng& rng) {
  fill_with(t, [&] { return mean + std * double(rng.normal()); });
}

void constant_(Tensor& t, double value) {
  autograd::NoGradGuard no_grad;
  t.fill(value);
}
void zeros_(Tensor& t) { constant_(t, 0.0); }
void ones_(Tensor& t) { constant_(t, 1.0); }

void kaiming_uniform_(Tensor& t, Rng& rng, double a, const std::string& mode, const std::string& nonlinearity) {
  double bound = calculate_gain(nonlinearity, a) * std::sqrt(3.0 / fan_for_mode(t, mode));
  uniform_(t, -bound, bound, rng);
}

void kaiming_normal_(Tensor& t, Rng& rng, double a, const std::string& mode, const std::string& nonlinearity) {
  normal_(t, 0.0, calculate_gain(nonlinearity, a) / std::sqrt(fan_for_mode(t, mode)), rng);
}

void xavier_uniform_(Tensor& t, Rng& rng, double gain) {
  auto [fan_in, fan_out] = fan_in_and_fan_out(t);
  double bound = gain * std::sqrt(6.0 / double(fan_in + fan_out));
  uniform_(t, -bound, bound, rng);
}

void xavier_normal_(Tensor& t, Rng& rng, double gain) {
  auto [fan_in, fan_out] = fan_in_and_fan_out(t);
  normal_(t, 0.0, gain * std::sqrt(2.0 / double(fan_in + fan_out)), rng);
}

}  // namespace init
}  // namespace nn
}  // namespace frugal
