// What [prune] and `frugal prune` can remove in a model of the zoo, and how: each PruneLayer is one
// weight tensor (unstructured: its elements are the units) or one layer's neurons / conv channels /
// attention heads / GPT MLP units, with the rows of the tensors a unit owns (zeroed by its mask) and
// the columns that read it (dropped by compaction). Scores, the choice of what goes (global or per
// layer) and the masks live here too. Limits: the zoo's MLP, CNN and GPT only (a custom model:
// unstructured pruning of its Linear and Conv2d weights).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "frugal/nn/module.h"
#include "frugal/train/job.h"

namespace frugal::train {

const char* prune_structure_name(PruneStructure structure);  // "weights", "neurons", ...

// Rows along axis 0 of a tensor that belong to unit u: offset + u * rows + r, r < rows, for each offset
// (a GPT head owns its q, k and v rows: three offsets). A consumer's axis is 1 (the columns reading
// the unit: the next Linear or Conv2d, attn.proj, mlp.proj).
struct PruneSlice {
  std::string name;  // state-dict name
  Tensor tensor;     // the live parameter or buffer
  std::vector<int64_t> offsets = {0};
  int64_t rows = 1;
  bool masked = true;  // zeroed with the unit (BatchNorm running statistics are only gathered)
  bool scored = true;  // counted in the magnitude score (weights, not biases)
};

struct PruneLayer {
  std::string name;  // the weight the [prune] layers / exclude patterns match: "layers.1.weight"
  PruneStructure structure = PruneStructure::weights;
  int64_t units = 0;  // unstructured: the weight's elements
  std::vector<PruneSlice> owned;      // axis 0, zeroed with the unit
  std::vector<PruneSlice> consumers;  // axis 1, dropped at compaction
  int64_t index = 0;  // the entry of [model] hidden / channels, or the GPT block
  // MLP with an activation whose f(0) != 0 (sigmoid): a removed unit still sends f(0) x its column
  // of the next Linear; compaction folds that into `fold_bias` (the next Linear's bias).
  double activation_at_zero = 0;
  std::string fold_bias;
};

// The layers of `model` that spec.structures and spec.layers / spec.exclude choose, in model order.
// Default choice: every Linear and Conv2d weight but the output layer (unstructured), or every
// layer that has the structure. InputError naming `where` for a structure the model does not have
// (heads on an MLP) and for a pattern that matches no candidate.
std::vector<PruneLayer> find_prune_layers(const nn::Module& model, const ModelSpec& spec_model, const PruneSpec& spec,
                                          const std::string& where);

// The units of each layer as kept (1) or removed (0).
using PruneMasks = std::vector<std::vector<uint8_t>>;
PruneMasks full_masks(const std::vector<PruneLayer>& layers);

// Magnitude: |w| (unstructured) or the L2 norm of the unit's scored rows.
std::vector<std::vector<double>> magnitude_scores(const std::vector<PruneLayer>& layers);
// Adds this step's first-order Taylor terms: |w g| per weight, or |sum over the unit of w g|
// (Molchanov et al. 2019). Parameters without a gradient add nothing.
void accumulate_taylor(const std::vector<PruneLayer>& layers, std::vector<std::vector<double>>& scores);

// Removes the lowest-scoring units so that `sparsity` of each structure's units are gone (global:
// one ranking over its layers, structured scores divided by their layer's RMS so layers of other
// scales compare; layer: each layer the same fraction). Removed units stay removed; a structured
// layer keeps at least one unit. Ties go to the earlier layer and unit: deterministic.
void choose_pruned(const std::vector<PruneLayer>& layers, const std::vector<std::vector<double>>& scores,
                   double sparsity, bool global, PruneMasks& masks);

// Zeroes every removed unit's owned rows in the live tensors.
void apply_masks(const std::vector<PruneLayer>& layers, const PruneMasks& masks);

int64_t kept_count(const std::vector<uint8_t>& mask);

}  // namespace frugal::train
