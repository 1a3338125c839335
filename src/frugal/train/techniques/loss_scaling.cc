// fp16-mixed dynamic loss scaling on the loop's events (LossScaling, builtin.h). As GradScaler: the
// gradients are unscaled before clipping; an inf/NaN gradient skips the update (optimizer state
// untouched) while the step counter and the schedule go on.
#include <sstream>

#include "frugal/train/techniques/builtin.h"

namespace frugal::train {

EventSet LossScaling::events() const {
  return train::event_set({Event::run_start, Event::before_optimizer_step, Event::run_end});
}

void LossScaling::on(Event event, TrainState& state) {
  constexpr int kOverflowLines = 5;
  switch (event) {
    case Event::run_start:
      state.loss_scale = scaler_.scale();
      state.tolerates_nonfinite_loss = true;  // an overflowing forward becomes a skipped step
      break;
    case Event::before_optimizer_step: {
      const bool skip = !scaler_.unscale_and_check(state.params);
      scaler_.update(skip);
      state.loss_scale = scaler_.scale();
      if (skip) state.skip_step = true;
      if (skip && overflow_lines_ < kOverflowLines) {
        std::ostringstream scale;
        scale << scaler_.scale();
        state.progress.line("fp16: overflow at step " + std::to_string(state.step + 1) + ", loss scale now " +
                            scale.str() + "; step skipped" +
                            (++overflow_lines_ == kOverflowLines ? " (further overflows are only counted)" : ""));
      }
      break;
    }
    case Event::run_end:
      state.summary->loss_scaling = LossScalingSummary{scaler_.scale(), scaler_.options().init_scale,
                                                       scaler_.skipped_steps(), scaler_.options().growth_interval};
      break;
    default:
      break;
  }
}

void LossScaling::save_state(TechniqueState& out) const {
  for (const auto& [name, value] : scaler_.state()) out.put(name, value);
}

void LossScaling::load_state(const TechniqueState& in) {
  if (in.empty()) in.fail("missing (fp16-mixed needs the loss scaler's state)");
  std::vector<std::pair<std::string, double>> values;
  for (const auto& [key, text] : in.values()) values.emplace_back(key, in.real(key));
  try {
    scaler_.load_state(values);
  } catch (const InputError& e) {
    in.fail(e.what());
  }
}

}  // namespace frugal::train
