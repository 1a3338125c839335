// Per-sample scores of a training split (EL2N, GraNd, loss, forgetting events, a given difficulty)
// written by `frugal data score` and read by the techniques that choose samples (data pruning,
// curriculum): one safetensors file with an f32 (N) tensor per score, the fingerprint of the split
// it was computed on, and the bill of the run that computed it (so a run using it can count it).
// Limits: rows are the prepared training split's (after [data] classes, limits and fractions).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frugal/cost/run_meter.h"
#include "frugal/data/dataset.h"

namespace frugal::train {

struct SampleScores {
  std::map<std::string, std::vector<float>> scores;  // kind ("el2n", "grand", ...) -> one per row
  std::string fingerprint;  // dataset_fingerprint of the split the scores belong to
  int64_t samples = 0;      // rows of that split
  // The bill of the run that computed them: {"run_id", "wall_s", "energy_j", "usd", "co2_g", ...}
  // as the scorer wrote it; null when unknown.
  nlohmann::json cost;
  std::string path;  // where they were read from (messages)

  // The scores of `kind`; InputError naming the file and the kinds it holds when absent.
  const std::vector<float>& get(const std::string& kind) const;
};

// A hex digest of a split's targets and inputs (shape, dtype and bytes): equal splits, equal digests.
std::string dataset_fingerprint(const data::Dataset& dataset);

// The run's own bill plus the scoring run's (`scoring_cost` as a score file holds it; null adds
// nothing): {"usd", "kwh", "co2_kg", "hours", "wall_s"}, what a technique that used the scores
// reports as its "total_with_scoring" (frugal compare counts that total).
nlohmann::json total_with_scoring(const cost::CostSummary& run, const nlohmann::json& scoring_cost);

// Atomic write (safetensors); every score vector must have `samples` entries.
void write_sample_scores(const std::string& path, const SampleScores& scores);

// Reads `path` and checks it against `train` (the split it will be used on): InputError naming the
// file when it is not a score file, was computed on another data set (fingerprint or row count
// differ; both printed), or holds a non-finite score.
SampleScores read_sample_scores(const std::string& path, const data::Dataset& train);

}  // namespace frugal::train
