// [freeze]: parameters that get no gradient — requires_grad off, so backward computes none for them
// and the optimizer keeps no state for them (not a zero update) — and gradual unfreezing at given
// optimizer steps or epochs. Which parameters train follows from the step alone, so the technique
// has no checkpoint state: run_start applies the schedule as of state.step, and a resumed run trains
// exactly the parameters the uninterrupted one does.
//
// Events: run_start (freeze as of state.step), step_end (unfreeze). An entry { step = S } unfreezes
// at step_end of step S - 1, when state.step has become S: the next step, the (S+1)-th update, is
// the first whose forward records their gradients. { epoch = E } is { step = E x steps per epoch }
// (after E whole epochs). Each change prints a line with the trainable and frozen parameter counts.
// Limits: only unfreezing is scheduled (a parameter once training is never frozen again).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "frugal/nn/module.h"
#include "frugal/train/job.h"
#include "frugal/train/technique.h"

namespace frugal::train {

class Freezing : public Technique {
 public:
  // Checks every pattern against the model's parameter names: InputError naming `where` and the
  // pattern when one of [freeze] params matches no parameter, or one of an unfreeze entry matches
  // none of the frozen ones.
  Freezing(const FreezeSpec& spec, const nn::Module& model, const std::string& where);
  std::string name() const override { return "freeze"; }
  EventSet events() const override { return event_set({Event::run_start, Event::step_end}); }
  void on(Event event, TrainState& state) override;

 private:
  struct Frozen {
    std::string name;
    Tensor param;
    std::vector<size_t> entries;  // the unfreeze entries whose patterns match it
    int64_t unfreeze_at = INT64_MAX;  // the first step it trains in (resolved at run_start)
  };
  // requires_grad of every frozen parameter as of `step`; a line when the counts changed.
  void apply(TrainState& state, int64_t step);

  FreezeSpec spec_;
  std::vector<Frozen> frozen_;
  int64_t trainable_ = -1;  // parameters that train, as last printed
};

}  // namespace frugal::train
