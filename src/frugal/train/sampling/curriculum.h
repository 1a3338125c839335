// Curriculum by difficulty ([curriculum], Wu et al. 2021 "When do curricula work?"): the batches of
// step t are drawn uniformly from the g(t) easiest training samples, the pool widening by a pacing
// function (linear, root, step) to all data. The difficulty: a score file (frugal data score;
// train/sampling/sample_scores.h) or the model's own loss over its first self_epochs epochs on all
// data (score = "self"). order = "anti" puts the hardest first, "random" a fixed random pool (the
// control). Works through Loader::set_epoch_order: an epoch's order is a pure function of the
// epoch, the scores and the seed. Limits: classification data; the score file's bill is reported
// beside the run's (the run meter has no entry for another run's cost).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frugal/train/data_setup.h"
#include "frugal/train/job.h"
#include "frugal/train/technique.h"

namespace frugal::train {

// The pool's share of the data at step t of a curriculum of `steps` steps (t, steps counted from the
// curriculum's first step): min(1, start + (1 - start) x f(t / (full_at x steps))), f = x, sqrt(x)
// or floor(x x stages) / stages.
double curriculum_pool_fraction(const CurriculumSpec& spec, int64_t t, int64_t steps);

// Where the curriculum's steps are in a run, and how an epoch's micro-batches map to steps.
struct CurriculumPlan {
  int64_t first_step = 0;      // steps before it go through the loader's shuffle (self scoring)
  int64_t total_steps = 0;     // of the run
  int64_t steps_per_epoch = 1;
  int64_t batch_size = 1, grad_accum = 1;
  uint64_t seed = 0;
};

// The epoch's dataset rows: batch b (of batch_size rows) belongs to step epoch x steps_per_epoch +
// b / grad_accum and draws its rows without repeats (repeats only when the pool is smaller than a
// batch) from ranking[0, g(step)). ranking: the rows from easiest to hardest (as the order wants).
// Pure in its arguments. Epochs before plan.first_step return `shuffled`.
std::vector<int64_t> curriculum_epoch_order(const CurriculumSpec& spec, const CurriculumPlan& plan,
                                            const std::vector<int64_t>& ranking, int64_t epoch,
                                            std::vector<int64_t> shuffled);

// The rows ordered from first-trained to last: ascending score (easy), descending (anti), or a random
// permutation keyed by the seed (random). Ties keep row order; NaN scores (rows never scored) last.
std::vector<int64_t> curriculum_ranking(const CurriculumSpec& spec, const std::vector<float>& scores, uint64_t seed);

class Curriculum : public Technique {
 public:
  // Reads and checks the score file against the training split (InputError naming the file).
  Curriculum(CurriculumSpec spec, const PreparedData& data);
  std::string name() const override { return "curriculum"; }
  EventSet events() const override;
  void on(Event event, TrainState& state) override;
  void save_state(TechniqueState& out) const override;
  void load_state(const TechniqueState& in) override;

  const std::vector<float>& scores() const { return scores_; }

 private:
  void record_losses(const TrainState& state);
  const std::vector<int64_t>& ranking();

  const CurriculumSpec spec_;
  const int64_t samples_;
  std::vector<float> scores_;  // one per training row: the file's, or the recorded losses (NaN: not yet)
  nlohmann::json file_cost_;   // the scoring run's bill, as the score file holds it
  std::string file_fingerprint_;
  CurriculumPlan plan_;
  std::vector<int64_t> ranking_;  // computed once the scores are final
  double pool_sum_ = 0;           // sum over the run's steps of the pool fraction (the summary's mean)
  int64_t full_step_ = -1;        // first step whose pool held all data
};

}  // namespace frugal::train
