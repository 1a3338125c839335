// Per-sample scores recorded during a short early run (`frugal data score`): EL2N (Paul et al. 2021,
// ||softmax(f(x)) - onehot(y)||_2), GraNd as the norm of the per-sample gradient of the loss w.r.t.
// the LAST Linear layer's weight and bias (the cheap proxy: ||p - y|| * sqrt(||h||^2 + 1), h its
// input), the cross-entropy loss, and forgetting events (Toneva et al. 2019). Limits: classification;
// each quantity comes from an extra eval-mode, no-grad forward of the micro-batch at after_loss
// (before the step's update), averaged over the run's epochs, not over several seeds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "frugal/train/sampling/sample_scores.h"
#include "frugal/train/technique.h"

namespace frugal::train {

inline const std::vector<std::string> kScoreKinds = {"el2n", "grand", "loss", "forgetting"};

// One micro-batch's quantities, per sample b (double math from f32 inputs).
struct SampleQuantities {
  std::vector<double> el2n, grand, loss;
  std::vector<uint8_t> correct;  // argmax(logits) == target (the first maximum on ties)
};
// embedding f32 (B, H), logits f32 (B, C), targets B entries in [0, C).
SampleQuantities sample_quantities(const Tensor& embedding, const Tensor& logits, const std::vector<int64_t>& targets);

// Forgetting events of one sample from its correctness over successive presentations: the count of
// correct -> incorrect transitions; a sample never classified correctly gets the number of its
// presentations (more than any learned sample can have: the hardest, as in Toneva et al.).
struct ForgettingCounter {
  int8_t last = -1;  // -1: not seen yet
  bool learned = false;
  int64_t events = 0, seen = 0;
  void add(bool correct);
  double score() const { return learned ? double(events) : double(seen); }
};

// The technique: records every training presentation's quantities; after the run, scores() holds
// the mean per row (forgetting: events). Its state (sums, counts, forgetting) is checkpointed.
class ScoreRecorder : public Technique {
 public:
  explicit ScoreRecorder(std::vector<std::string> kinds) : kinds_(std::move(kinds)) {}
  std::string name() const override { return "data_score"; }
  EventSet events() const override { return event_set({Event::run_start, Event::after_loss, Event::run_end}); }
  void on(Event event, TrainState& state) override;
  void save_state(TechniqueState& out) const override;
  void load_state(const TechniqueState& in) override;

  // After run_end: one vector per kind, the split's fingerprint and size (cost left for the caller).
  // InputError when some row was never presented (a run shorter than an epoch).
  SampleScores scores() const;
  bool finished() const { return finished_; }

 private:
  void record(TrainState& state);
  std::vector<std::string> kinds_;
  std::vector<double> el2n_sum_, grand_sum_, loss_sum_;
  std::vector<ForgettingCounter> forgetting_;
  std::vector<int64_t> count_;
  std::string fingerprint_;
  double extra_forward_s_ = 0;
  bool finished_ = false;
};

}  // namespace frugal::train
