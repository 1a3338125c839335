// Early stopping on a validation metric (EarlyStopping, builtin.h): counts evaluations without an
// improvement of more than min_delta, stops after `patience` of them, and restores the best weights
// at fit_end when restore_best.
#include <cmath>

#include "frugal/train/techniques/builtin.h"

namespace frugal::train {

EventSet EarlyStopping::events() const {
  return train::event_set({Event::run_start, Event::evaluation_done, Event::fit_end, Event::run_end});
}

void EarlyStopping::on(Event event, TrainState& state) {
  switch (event) {
    case Event::run_start: {
      // Best weights from a checkpoint must fit this model, name by name.
      if (best_state_.empty()) break;
      nn::NamedTensors own = state.model.state_dict();
      bool fits = best_state_.size() == own.size();
      for (size_t i = 0; fits && i < own.size(); ++i)
        fits = best_state_[i].first == own[i].first && best_state_[i].second.shape() == own[i].second.shape();
      if (!fits) throw InputError(state.resumed_from + ": checkpoint's best weights do not match the model");
      break;
    }
    case Event::evaluation_done: {
      const EvalMetrics& m = state.eval;
      const double value = spec_.metric == EarlyStopMetric::val_accuracy        ? m.accuracy
                           : spec_.metric == EarlyStopMetric::val_bits_per_char ? m.bits_per_char
                                                                                : m.loss;
      const bool better = std::isnan(best_metric_) || (spec_.mode == MetricMode::min
                                                           ? value < best_metric_ - spec_.min_delta
                                                           : value > best_metric_ + spec_.min_delta);
      if (better) {
        best_metric_ = value;
        best_step_ = state.step;
        evals_without_improvement_ = 0;
        if (spec_.restore_best) {
          best_state_.clear();
          for (auto& [name, t] : state.model.state_dict()) best_state_.emplace_back(name, t.clone());
        }
      } else if (++evals_without_improvement_ > spec_.patience) {
        state.request_stop({"completed", "early_stopping", 0, false, ""});
      }
      break;
    }
    case Event::fit_end:
      if (spec_.restore_best && !best_state_.empty()) {
        state.model.load_state_dict(best_state_, true);
        state.progress.line("restored the best weights (step " + std::to_string(best_step_) + ")");
      }
      break;
    case Event::run_end:
      // The best step of a run that ended; a process stopped to be resumed reports none.
      if (best_step_ >= 0 && (!state.stop || state.stop->exit_code == 0)) state.summary->best_step = best_step_;
      break;
    default:
      break;
  }
}

void EarlyStopping::save_state(TechniqueState& out) const {
  out.put("best_metric", best_metric_);
  out.put("best_step", best_step_);
  out.put("evals_without_improvement", evals_without_improvement_);
  out.put("has_best_state", int64_t(!best_state_.empty()));
  for (const auto& [name, t] : best_state_) out.put_tensor("best." + name, t);
}

void EarlyStopping::load_state(const TechniqueState& in) {
  if (in.empty()) in.fail("missing (the job uses early stopping)");
  best_metric_ = in.real("best_metric");
  best_step_ = in.integer("best_step");
  evals_without_improvement_ = in.integer("evals_without_improvement");
  best_state_.clear();
  if (in.integer("has_best_state") != 0) {
    // Copied, so the checkpoint's buffer can go.
    for (const auto& [name, t] : in.tensors())
      if (name.rfind("best.", 0) == 0) best_state_.emplace_back(name.substr(5), t.clone());
    if (best_state_.empty()) in.fail("has_best_state is set but no best weights are stored");
  }
}

}  // namespace frugal::train
