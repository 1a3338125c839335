// [prune]: magnitude or first-order Taylor pruning on the training loop's events, of single weights
// (unstructured) or of whole neurons, conv channels, attention heads and GPT MLP units (structured),
// one-shot or on the cubic schedule of Zhu & Gupta (2017), with fine-tuning between and after.
// Masks are applied at each pruning step and after every optimizer step (so AdamW's update cannot
// revive a weight), and saved in checkpoints with the Taylor scores gathered since the last pruning:
// a resumed run ends bit-identical. A structured run's model.safetensors is the compacted smaller
// model, with model.toml (its job) beside it. Limits: the zoo's models (a custom model: unstructured
// only); masks over f32 master weights.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frugal/train/compress/prune_compact.h"
#include "frugal/train/compress/prune_layers.h"
#include "frugal/train/compress/prune_schedule.h"
#include "frugal/train/technique.h"

namespace frugal::train {

// The summary's and `frugal prune`'s account of the masks: per layer kept / total units, and the
// parameters the masks remove.
nlohmann::json prune_report(const std::vector<PruneLayer>& layers, const PruneMasks& masks, const PruneSpec& spec);
// In words: "90.0% of weights removed (210124 of 233472) over 2 layers, magnitude scores, per-layer
// ranking; 210124 weights zeroed" (structured: "50.0% of channels removed (48 of 96) ...").
std::string prune_line(const std::vector<PruneLayer>& layers, const PruneMasks& masks, const PruneSpec& spec);

class Pruning : public Technique {
 public:
  // Finds the layers (InputError naming `where` for a structure the model lacks or a pattern
  // matching no layer).
  Pruning(const JobSpec& job, nn::Module& model);
  std::string name() const override { return "prune"; }
  // After early stopping: at fit_end it may restore the best weights, from before the last pruning
  // step; the masks go back on them before compaction reads them. (At the optimizer step the masks
  // only need to come before the step's checkpoint, which acts at step_end.)
  int order() const override { return kOrderEarlyStopping + 50; }
  EventSet events() const override {
    return event_set({Event::run_start, Event::before_optimizer_step, Event::after_optimizer_step, Event::fit_end,
                      Event::run_end});
  }
  void on(Event event, TrainState& state) override;
  void save_state(TechniqueState& out) const override;
  void load_state(const TechniqueState& in) override;

 private:
  void prune_now(TrainState& state, int64_t step);
  bool structured() const;

  const JobSpec& job_;
  PruneSpec spec_;
  std::vector<PruneLayer> layers_;
  PruneMasks masks_;
  std::vector<std::vector<double>> taylor_;  // since the last pruning step
  PruneSchedule schedule_;
  std::optional<CompactModel> compact_;  // at fit_end (structured)
};

}  // namespace frugal::train
