// [freeze] and gradual unfreezing (see freeze.h).
#include "frugal/train/compress/freeze.h"

#include <algorithm>

#include "frugal/base/error.h"
#include "frugal/base/glob.h"

namespace frugal::train {

namespace {

std::string some_names(const nn::NamedTensors& params, size_t limit = 8) {
  std::string out;
  for (size_t i = 0; i < params.size() && i < limit; ++i) out += (i ? ", " : "") + params[i].first;
  if (params.size() > limit) out += ", ...";
  return out;
}

}  // namespace

Freezing::Freezing(const FreezeSpec& spec, const nn::Module& model, const std::string& where) : spec_(spec) {
  const nn::NamedTensors params = model.named_parameters();
  std::vector<bool> used(spec.params.size(), false);
  for (const auto& [name, param] : params) {
    bool frozen = false;
    for (size_t p = 0; p < spec.params.size(); ++p)
      if (glob_match(spec.params[p], name)) frozen = used[p] = true;
    if (frozen) frozen_.push_back({name, param, {}, INT64_MAX});
  }
  for (size_t p = 0; p < spec.params.size(); ++p)
    if (!used[p])
      throw InputError(where + ": [freeze] params pattern \"" + spec.params[p] + "\" matches no parameter of the model (" +
                       some_names(params) + ")");
  // Backward needs something to differentiate: a step with every parameter frozen cannot run.
  if (frozen_.size() == params.size())
    throw InputError(where + ": [freeze] params freezes all " + std::to_string(params.size()) +
                     " parameter tensors of the model; leave some to train (gradual unfreezing starts from a "
                     "trainable part, e.g. the head)");
  for (size_t e = 0; e < spec.unfreeze.size(); ++e)
    for (const std::string& pattern : spec.unfreeze[e].params) {
      bool matched = false;
      for (Frozen& f : frozen_)
        if (glob_match(pattern, f.name)) {
          matched = true;
          if (f.entries.empty() || f.entries.back() != e) f.entries.push_back(e);
        }
      if (!matched)
        throw InputError(where + ": [freeze] unfreeze #" + std::to_string(e + 1) + " params pattern \"" + pattern +
                         "\" matches none of the frozen parameters (those [freeze] params chooses)");
    }
}

void Freezing::apply(TrainState& state, int64_t step) {
  for (Frozen& f : frozen_) f.param.set_requires_grad(step >= f.unfreeze_at);
  int64_t trainable = 0, frozen = 0, frozen_tensors = 0;
  for (const Tensor& p : state.params) {
    (p.requires_grad() ? trainable : frozen) += p.numel();
    frozen_tensors += !p.requires_grad();
  }
  if (trainable == trainable_) return;
  trainable_ = trainable;
  state.progress.line("freeze: from step " + std::to_string(step) + ", " + std::to_string(trainable) +
                      " parameters train, " + std::to_string(frozen) + " frozen (" + std::to_string(frozen_tensors) +
                      " tensors)");
}

void Freezing::on(Event event, TrainState& state) {
  if (event == Event::run_start) {
    for (Frozen& f : frozen_) {
      f.unfreeze_at = INT64_MAX;
      for (size_t e : f.entries) {
        const UnfreezeSpec& u = spec_.unfreeze[e];
        f.unfreeze_at = std::min(f.unfreeze_at, u.step >= 0 ? u.step : u.epoch * state.steps_per_epoch);
      }
    }
    apply(state, state.step);
    return;
  }
  // step_end: state.step is the next step to run; unfreeze what trains from it on.
  if (state.step >= state.total_steps) return;
  for (const Frozen& f : frozen_)
    if (f.unfreeze_at == state.step) {
      apply(state, state.step);
      return;
    }
}

}  // namespace frugal::train
