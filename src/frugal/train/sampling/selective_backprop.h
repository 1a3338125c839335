// Selective backprop ([selective_backprop], Jiang et al. 2019, in its top-k form): at batch_loaded a
// forward without gradients scores each sample of the micro-batch by its loss, and the batch is
// replaced by the `keep` fraction with the highest loss, which alone go through the training forward
// and backward. The scoring forward runs in eval mode (no dropout; BatchNorm reads its running
// statistics and does not update them, so the statistics move once per step as in a plain run) and
// its FLOPs are the run's (batch_loaded is inside the loop's counter). Limits: classification;
// Jiang et al.'s probabilistic selection by loss percentile is not implemented (deterministic top-k).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "frugal/train/job.h"
#include "frugal/train/technique.h"

namespace frugal::train {

// The rows to keep: the ceil(keep x B) rows with the highest loss, in increasing row order (ties: the
// lower row first), so the kept batch keeps the loader's order.
std::vector<int64_t> select_highest_loss(const std::vector<double>& losses, double keep);

class SelectiveBackprop : public Technique {
 public:
  explicit SelectiveBackprop(SelectiveBackpropSpec spec) : spec_(spec) {}
  std::string name() const override { return "selective_backprop"; }
  EventSet events() const override { return event_set({Event::run_start, Event::batch_loaded, Event::run_end}); }
  void on(Event event, TrainState& state) override;
  void save_state(TechniqueState& out) const override;
  void load_state(const TechniqueState& in) override;

 private:
  const SelectiveBackpropSpec spec_;
  // Carried through checkpoints: samples scored by the extra forward, and those trained on.
  int64_t scored_ = 0, kept_ = 0;
  double scoring_s_ = 0;
};

}  // namespace frugal::train
