// Gradient clipping by global norm (GradientClipping, builtin.h).
#include "frugal/optim/optimizer.h"
#include "frugal/train/techniques/builtin.h"

namespace frugal::train {

void GradientClipping::on(Event event, TrainState& state) {
  // A skipped step's gradients are inf/NaN and thrown away: nothing to clip.
  if (!state.skip_step) state.grad_norm = optim::clip_grad_norm(state.params, max_norm_);
}

}  // namespace frugal::train
