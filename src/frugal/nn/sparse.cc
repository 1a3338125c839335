// The sparse inference path of Linear: arming, the first-forward measurement, and the reports.
// The timing alternates dense and sparse repetitions after one warm-up of each (caches and
// primitives made), and compares medians, so one slow repetition on a shared machine decides nothing.
#include "frugal/nn/sparse.h"

#include <algorithm>
#include <cstdio>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/ops.h"
#include "frugal/base/error.h"
#include "frugal/base/timer.h"
#include "frugal/kernels/cpu/sparse.h"
#include "frugal/kernels/kernels.h"
#include "frugal/nn/layers.h"

namespace frugal {
namespace nn {
namespace {

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// y (..., out) from x (..., in) through the compressed weight; f32 only.
Tensor sparse_product(const Linear& layer, const kernels::SparseMatrix& matrix, const Tensor& x, bool relu) {
  if (x.dtype() != DType::f32)
    throw InputError("Linear(" + std::to_string(layer.in_features()) + " -> " + std::to_string(layer.out_features()) +
                     "): the sparse path takes f32 inputs, not " + std::string(dtype_name(x.dtype())));
  const Tensor xc = x.contiguous();
  const int64_t rows = x.numel() / layer.in_features();
  Shape shape = x.shape();
  shape.back() = layer.out_features();
  Tensor y = Tensor::empty(shape, DType::f32);
  const float* bias = layer.bias().defined() ? layer.bias().contiguous().data<float>() : nullptr;
  if (kernels::reference_mode()) kernels::ref::sparse_linear(xc.data<float>(), rows, matrix, bias, y.data<float>());
  else kernels::cpu::sparse_linear(xc.data<float>(), rows, matrix, bias, y.data<float>());
  return relu ? frugal::relu(y) : y;
}

Tensor dense_product(const Linear& layer, const Tensor& x, bool relu) {
  return relu ? linear_relu(x, layer.weight(), layer.bias()) : linear(x, layer.weight(), layer.bias());
}

class SparseHook : public LayerHook {
 public:
  SparseHook(const Linear& layer, SparseLinearState state) : layer_(layer), state_(std::move(state)) {}
  Tensor forward(const Tensor& x, bool relu) override { return sparse_linear_forward(layer_, state_, x, relu); }
  SparseLinearState& state() { return state_; }

 private:
  const Linear& layer_;
  SparseLinearState state_;
};

}  // namespace

std::string_view sparse_mode_name(SparseMode mode) {
  switch (mode) {
    case SparseMode::off: return "off";
    case SparseMode::automatic: return "auto";
    case SparseMode::on: return "on";
  }
  return "?";
}

SparseMode parse_sparse_mode(std::string_view text, const std::string& where) {
  if (text == "off") return SparseMode::off;
  if (text == "auto") return SparseMode::automatic;
  if (text == "on") return SparseMode::on;
  throw InputError(where + ": '" + std::string(text) + "' is not a sparse mode (expected auto, on or off)");
}

SparsePlan::SparsePlan(Module& model, SparseMode mode, int repetitions) {
  if (mode == SparseMode::off) return;
  for (auto& [name, module] : model.named_modules()) {
    auto* layer = dynamic_cast<Linear*>(module);
    if (!layer || layer->has_lora() || layer->hook() || layer->weight().dtype() != DType::f32) continue;
    const Tensor w = layer->weight().contiguous();  // (out, in)
    SparseLayerReport report;
    report.name = name;
    report.in_features = layer->in_features();
    report.out_features = layer->out_features();
    report.density = 1.0 - double(kernels::count_zeros(w.data<float>(), w.numel())) / double(std::max<int64_t>(1, w.numel()));
    if (mode == SparseMode::automatic && report.density >= kSparseDensityCap) {
      report.reason = "dense above cap";
      dense_.push_back(report);
      continue;
    }
    SparseLinearState state;
    state.matrix = kernels::to_sparse(w.data<float>(), layer->out_features(), layer->in_features());
    state.mode = mode;
    state.repetitions = std::max(1, repetitions);
    state.report = report;
    state.report.reason = "not run";
    auto hook = std::make_shared<SparseHook>(*layer, std::move(state));
    armed_.emplace_back(layer, &hook->state());
    layer->set_hook(std::move(hook));
  }
}

SparsePlan::~SparsePlan() {
  for (auto& [layer, state] : armed_) layer->set_hook(nullptr);
}

std::vector<SparseLayerReport> SparsePlan::reports() const {
  std::vector<SparseLayerReport> all;
  for (const auto& [layer, state] : armed_) all.push_back(state->report);
  all.insert(all.end(), dense_.begin(), dense_.end());
  return all;
}

Tensor sparse_linear_forward(const Linear& layer, SparseLinearState& state, const Tensor& x, bool relu) {
  if (autograd::grad_enabled() && (x.requires_grad() || layer.weight().requires_grad()))
    throw InputError("Linear(" + std::to_string(layer.in_features()) + " -> " + std::to_string(layer.out_features()) +
                     "): the sparse path is inference only, but a gradient is being recorded (run it under no_grad)");
  if (!state.decided) {
    SparseLayerReport& r = state.report;
    r.rows = x.numel() / layer.in_features();
    // Warm-ups first (oneDNN primitive creation, scratch allocation), then alternated repetitions.
    dense_product(layer, x, relu);
    sparse_product(layer, state.matrix, x, relu);
    std::vector<double> dense_s, sparse_s;
    for (int i = 0; i < state.repetitions; ++i) {
      Timer t;
      dense_product(layer, x, relu);
      dense_s.push_back(t.seconds());
      t.reset();
      sparse_product(layer, state.matrix, x, relu);
      sparse_s.push_back(t.seconds());
    }
    r.dense_us = 1e6 * median(dense_s);
    r.sparse_us = 1e6 * median(sparse_s);
    if (state.mode == SparseMode::on) r.sparse = true, r.reason = "forced";
    else r.sparse = r.sparse_us < r.dense_us, r.reason = r.sparse ? "faster" : "slower";
    state.decided = true;
  }
  return state.report.sparse ? sparse_product(layer, state.matrix, x, relu) : dense_product(layer, x, relu);
}

std::string sparse_report_line(const SparseLayerReport& r) {
  char line[256];
  std::snprintf(line, sizeof line, "%s (%lld -> %lld): density %.1f%%", r.name.c_str(), (long long)r.in_features,
                (long long)r.out_features, 100 * r.density);
  std::string text = line;
  if (r.dense_us >= 0) {
    std::snprintf(line, sizeof line, ", %lld rows: dense %.1f us, sparse %.1f us", (long long)r.rows, r.dense_us,
                  r.sparse_us);
    text += line;
  }
  return text + ": " + (r.sparse ? "sparse" : "dense") + " (" + r.reason + ")";
}

}  // namespace nn
}  // namespace frugal
