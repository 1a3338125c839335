// The guard against a non-finite loss (NonfiniteGuard, builtin.h). It watches the loss of every
// micro-batch and the gradient norm clipping computed (no pass of its own over the gradients), so a
// gradient that overflows with a finite loss and no clipping is not caught here.
#include <cmath>
#include <sstream>

#include "frugal/train/techniques/builtin.h"

namespace frugal::train {

EventSet NonfiniteGuard::events() const {
  return event_set({Event::run_start, Event::after_backward, Event::before_optimizer_step});
}

void NonfiniteGuard::on(Event event, TrainState& state) {
  switch (event) {
    case Event::run_start:
      // The loss scaler (earlier at run_start) turns non-finite steps into skipped ones: its call.
      passive_ = state.tolerates_nonfinite_loss;
      state.tolerates_nonfinite_loss = true;
      break;
    case Event::after_backward:
      if (!passive_ && !bad_loss_ && !std::isfinite(state.loss_value)) bad_loss_ = state.loss_value;
      break;
    case Event::before_optimizer_step: {
      if (passive_) break;
      const bool bad_norm = state.grad_norm && !std::isfinite(*state.grad_norm);
      if (!bad_loss_ && !bad_norm) break;
      std::ostringstream what;
      if (bad_loss_) what << "loss " << *bad_loss_;
      else what << "gradient norm " << *state.grad_norm;
      bad_loss_.reset();
      state.skip_step = true;
      const int64_t step = state.step + 1;  // 1-based, as progress lines count
      state.request_stop({"stopped_nonfinite", "nonfinite", kExitNonfinite, /*checkpoint=*/true,
                          "non-finite " + what.str() + " at step " + std::to_string(step) +
                              ": the step was not applied; a checkpoint of the weights before it was written; stopping "
                              "(exit " + std::to_string(kExitNonfinite) +
                              "). Check the data, lower optim.lr or set train.clip_norm"});
      break;
    }
    default:
      break;
  }
}

}  // namespace frugal::train
