// Selective backprop (selective_backprop.h).
#include "frugal/train/sampling/selective_backprop.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "frugal/autograd/autograd.h"
#include "frugal/base/format.h"
#include "frugal/base/timer.h"
#include "frugal/train/sampling/sampling.h"

namespace frugal::train {

std::vector<int64_t> select_highest_loss(const std::vector<double>& losses, double keep) {
  const int64_t B = int64_t(losses.size());
  const int64_t k = std::clamp<int64_t>(int64_t(std::ceil(keep * double(B) - 1e-9)), B > 0 ? 1 : 0, B);
  std::vector<int64_t> rows(static_cast<size_t>(B));
  std::iota(rows.begin(), rows.end(), 0);
  // Highest loss first; NaN counts as highest (a sample the model cannot fit is worth the backward).
  auto above = [&](int64_t a, int64_t b) {
    const double la = losses[size_t(a)], lb = losses[size_t(b)];
    if (std::isnan(la) != std::isnan(lb)) return std::isnan(la);
    if (la != lb) return la > lb;
    return a < b;
  };
  std::stable_sort(rows.begin(), rows.end(), above);
  rows.resize(size_t(k));
  std::sort(rows.begin(), rows.end());
  return rows;
}

void SelectiveBackprop::on(Event event, TrainState& state) {
  switch (event) {
    case Event::run_start:
      state.progress.line("selective_backprop: backward on the " + number_text(100 * spec_.keep) +
                          "% highest-loss samples of each batch" +
                          (spec_.start_step > 0 ? " from step " + std::to_string(spec_.start_step) : ""));
      break;
    case Event::batch_loaded: {
      if (state.step < spec_.start_step || spec_.keep >= 1.0) break;
      Timer timer;
      std::vector<double> losses;
      {
        autograd::NoGradGuard no_grad;
        const bool training = state.model.is_training();
        state.model.train(false);  // eval mode: see the header
        Tensor logits = state.model(state.batch.inputs);  // (B, classes)
        state.model.train(training);
        losses = per_row_cross_entropy(logits, state.batch.targets);
      }
      const std::vector<int64_t> rows = select_highest_loss(losses, spec_.keep);
      scored_ += int64_t(losses.size());
      kept_ += int64_t(rows.size());
      state.batch = take_rows(state.batch, rows);
      scoring_s_ += timer.seconds();
      break;
    }
    case Event::run_end: {
      nlohmann::json f;
      f["keep"] = spec_.keep;
      f["start_step"] = spec_.start_step;
      f["samples_scored"] = scored_;
      f["samples_backward"] = kept_;
      f["scoring_s"] = scoring_s_;
      state.summary->techniques[name()] = f;
      break;
    }
    default:
      break;
  }
}

void SelectiveBackprop::save_state(TechniqueState& out) const {
  out.put("scored", scored_);
  out.put("kept", kept_);
  out.put("scoring_s", scoring_s_);
}

void SelectiveBackprop::load_state(const TechniqueState& in) {
  if (in.empty()) return;
  scored_ = in.integer("scored");
  kept_ = in.integer("kept");
  scoring_s_ = in.real("scoring_s");
}

}  // namespace frugal::train
