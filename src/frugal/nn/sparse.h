// Unstructured sparsity that pays at inference: each Linear whose weight is mostly zeros gets a
// compressed copy (kernels/ref/sparse.h), and on its first forward times the dense and the sparse
// product on the real input and keeps the faster (or the sparse one, when forced). Inference only:
// a forward that would need a gradient is refused. Limits: plain Linear layers (no LoRA adapter);
// the weights must not change while a plan is armed (a plan copies them); f32 activations.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "frugal/kernels/ref/sparse.h"
#include "frugal/nn/module.h"

namespace frugal {
namespace nn {

class Linear;

// off: dense everywhere; automatic: measured per layer; on: sparse for every eligible Linear.
enum class SparseMode { off, automatic, on };
std::string_view sparse_mode_name(SparseMode mode);  // "off", "auto", "on"
SparseMode parse_sparse_mode(std::string_view text, const std::string& where);

// Layers denser than this stay dense without timing in automatic mode: the crossover measured in
// bench/sparse (RESULTS.md) lies far below it on every shape and batch, so timing them is waste.
constexpr double kSparseDensityCap = 0.5;

// One Linear's decision, filled when its first forward runs (rows = the input rows it was timed on).
struct SparseLayerReport {
  std::string name;  // "fc1", "blocks.0.mlp.fc"
  int64_t in_features = 0, out_features = 0;
  double density = 1;  // nonzero share of the weight
  int64_t rows = 0;    // rows of the first input (the batch, times the sequence for a GPT)
  double dense_us = -1, sparse_us = -1;  // median microseconds per product; -1 = not timed
  bool sparse = false;                   // the path kept
  std::string reason;                    // "faster", "slower", "forced", "dense above cap", "not run"
};

// A Linear's armed state (its LayerHook holds it while a plan is alive).
struct SparseLinearState {
  kernels::SparseMatrix matrix;
  SparseMode mode = SparseMode::automatic;
  int repetitions = 5;
  bool decided = false;
  SparseLayerReport report;
};

// Arms the Linear layers of a model for the life of the plan (a LayerHook on each, running
// sparse_linear_forward); its destructor disarms them. Layers hooked already (int8) are left alone.
class SparsePlan {
 public:
  SparsePlan() = default;
  // Arms every Linear without an adapter: in automatic mode those below kSparseDensityCap (the
  // rest are reported dense), in on mode all of them; off arms none and reports none.
  SparsePlan(Module& model, SparseMode mode, int repetitions = 5);
  ~SparsePlan();
  SparsePlan(const SparsePlan&) = delete;
  SparsePlan& operator=(const SparsePlan&) = delete;
  // One entry per Linear considered, in module order; layers not yet run say "not run".
  std::vector<SparseLayerReport> reports() const;

 private:
  std::vector<std::pair<Linear*, SparseLinearState*>> armed_;  // the state lives in the layer's hook
  std::vector<SparseLayerReport> dense_;  // layers left dense without timing
};

// The forward of an armed Linear: y = x W^T + b (then relu), dense or sparse as decided (deciding
// on this call if not yet). InputError when gradients are being recorded for the layer.
Tensor sparse_linear_forward(const Linear& layer, SparseLinearState& state, const Tensor& x, bool relu);

// One line per report for people: "fc1 (784 -> 256): density 9.8%, dense 41 us, sparse 12 us: sparse (faster)".
std::string sparse_report_line(const SparseLayerReport& report);

}  // namespace nn
}  // namespace frugal
