// Compaction of a structured-pruned model: the kept neurons / conv channels / heads / MLP units
// gathered into a physically smaller dense model (smaller tensors, smaller [model] widths) that
// computes what the masked dense model computes, and the job file that describes it. Limits: the
// zoo's MLP, CNN and GPT; unstructured layers keep their shapes (their zeros stay).
#pragma once

#include <cstdint>
#include <string>

#include "frugal/nn/module.h"
#include "frugal/train/compress/prune_layers.h"
#include "frugal/train/job.h"

namespace frugal::train {

struct CompactModel {
  nn::NamedTensors tensors;  // the smaller model's state dict (new tensors; the input is not changed)
  ModelSpec model;           // the input's [model] with the smaller widths
};

// `state`: the masked dense model's state dict (removed units already zeroed); `model`: its [model].
// Removed units' rows go from the tensors that own them and their columns from the tensors that read
// them; an MLP activation with f(0) != 0 leaves f(0) x the column in the next Linear's bias.
CompactModel compact_model(const nn::NamedTensors& state, const ModelSpec& model, const std::vector<PruneLayer>& layers,
                           const PruneMasks& masks);

// The job's resolved TOML with [model] replaced by `model`'s widths (MLP hidden; CNN channels and
// hidden; GPT block_heads and mlp_widths), without [prune] and [init] (the weights come with it),
// and its path keys made absolute (it is written into the run directory, not beside the job).
std::string compact_job_toml(const JobSpec& job, const ModelSpec& model);

}  // namespace frugal::train
