// Importance sampling by loss ([importance_sampling], after Katharopoulos & Fleuret 2018 and
// Loshchilov & Hutter 2015): each training sample's latest loss is kept in a table updated from the
// batches trained (after_loss, per row, no gradient), and each epoch from start_epoch on draws its N
// samples with replacement with probability p_i = (loss_i + smoothing x mean loss) / sum. With
// reweight = true the loss of row i is weighed by 1 / (N p_i) (the unbiased gradient). The epoch's
// probabilities are a snapshot taken when it starts, saved with the live table, so a resume in the
// middle of an epoch rebuilds the same order. Limits: classification; losses of a sample are as old
// as the last time it was drawn.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "frugal/train/job.h"
#include "frugal/train/technique.h"

namespace frugal::train {

// The sampling probabilities of `losses` (one per row): (loss + smoothing x mean) / sum; uniform when
// every loss is 0 (or the table is empty of information).
std::vector<double> importance_probabilities(const std::vector<float>& losses, double smoothing);

// n rows drawn with replacement by `probabilities` (inverse CDF), from Rng keyed by (seed, epoch).
std::vector<int64_t> importance_draw(const std::vector<double>& probabilities, int64_t n, uint64_t seed, int64_t epoch);

class ImportanceSampling : public Technique {
 public:
  ImportanceSampling(ImportanceSamplingSpec spec, int64_t samples);
  std::string name() const override { return "importance_sampling"; }
  EventSet events() const override { return event_set({Event::run_start, Event::after_loss, Event::run_end}); }
  void on(Event event, TrainState& state) override;
  void save_state(TechniqueState& out) const override;
  void load_state(const TechniqueState& in) override;

  const std::vector<float>& losses() const { return losses_; }

 private:
  std::vector<int64_t> epoch_order(int64_t epoch, std::vector<int64_t> shuffled);

  const ImportanceSamplingSpec spec_;
  const int64_t samples_;
  uint64_t seed_ = 0;
  std::vector<float> losses_;    // live: each row's latest loss (0 until seen)
  std::vector<float> snapshot_;  // the table the current epoch's order was drawn from
  int64_t snapshot_epoch_ = -1;
  std::vector<double> probabilities_;  // of snapshot_, set with every drawn order (reweighting reads it)
  int64_t epochs_sampled_ = 0;   // epochs whose order was drawn by loss
  double max_probability_ratio_ = 0;  // largest p_i x N of the latest drawn epoch (how skewed)
};

}  // namespace frugal::train
