// Data pruning (Paul et al. 2021): train on a fraction of the training split chosen by a per-sample
// score of `frugal data score` (hardest, easiest, class-balanced hardest, or a seeded random control).
// The trainer subsets PreparedData.train before the loader is built, so epochs, steps and the
// schedule are those of the smaller set; the scoring run's bill is added to the run's in the summary.
// Limits: classification; the score file must be for the same prepared split (fingerprint).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frugal/train/job.h"
#include "frugal/train/technique.h"

namespace frugal::train {

// The rows kept: round(fraction * N) of them (at least 1), ascending. hardest: the highest scores;
// easiest: the lowest; balanced: per class round(fraction * n_c) (at least 1) of its highest;
// random: a Fisher-Yates draw keyed by Rng(seed, 2, RandomPurpose::split). Ties: the lower row first.
std::vector<int64_t> choose_kept_rows(const std::vector<float>& scores, const std::vector<int64_t>& targets,
                                      double fraction, DataPruningKeep keep, uint64_t seed);

// Applied by the trainer after prepare_data: reads [data_pruning] scores (checked against data.train),
// keeps the chosen rows, and returns the summary figures (kept, of, the scoring run's cost).
nlohmann::json apply_data_pruning(const JobSpec& job, PreparedData& data);

// The summary line (run_end): the pruning figures and totals with the scoring run's bill added.
class DataPruningReport : public Technique {
 public:
  explicit DataPruningReport(nlohmann::json figures) : figures_(std::move(figures)) {}
  std::string name() const override { return "data_pruning"; }
  EventSet events() const override { return event_set({Event::run_end}); }
  void on(Event event, TrainState& state) override;

 private:
  nlohmann::json figures_;
};

}  // namespace frugal::train
