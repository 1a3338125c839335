// Sequence-length warmup (seq_warmup.h).
#include "frugal/train/sampling/seq_warmup.h"

#include <algorithm>
#include <cmath>

#include "frugal/base/format.h"

namespace frugal::train {

int64_t seq_warmup_length(const SeqWarmupSpec& spec, int64_t context, int64_t step, int64_t warmup_steps) {
  if (step >= warmup_steps || spec.start >= context) return context;
  // Linear in the step, computed in integers so every process and platform agrees.
  const int64_t grown = spec.start + (context - spec.start) * step / warmup_steps;
  const int64_t rounded = grown / spec.multiple * spec.multiple;
  return std::clamp<int64_t>(rounded, spec.start, context);
}

data::Batch shorten_text_batch(const data::Batch& batch, int64_t length, bool reshape) {
  const int64_t B = batch.inputs.size(0), T = batch.inputs.size(1);
  if (length >= T) return batch;
  data::Batch out = batch;
  if (!reshape) {
    out.inputs = batch.inputs.slice_view(1, 0, length).contiguous();    // (B, L)
    out.targets = batch.targets.slice_view(1, 0, length).contiguous();  // (B, L)
    return out;
  }
  const int64_t pieces = T / length;  // windows of L per original window
  out.inputs = batch.inputs.slice_view(1, 0, pieces * length).contiguous().view({B * pieces, length});
  out.targets = batch.targets.slice_view(1, 0, pieces * length).contiguous().view({B * pieces, length});
  return out;
}

void SeqWarmup::on(Event event, TrainState& state) {
  switch (event) {
    case Event::run_start:
      warmup_steps_ = spec_.steps >= 0 ? spec_.steps
                                       : std::max<int64_t>(1, int64_t(std::llround(spec_.fraction * double(state.total_steps))));
      state.progress.line("seq_warmup: context " + std::to_string(spec_.start) + " -> " + std::to_string(context_) +
                          " over the first " + std::to_string(warmup_steps_) + " steps (" +
                          (spec_.reshape ? "reshape" : "truncate") + ")");
      break;
    case Event::batch_loaded: {
      const int64_t T = state.batch.inputs.size(1);
      pending_full_ = state.batch.inputs.numel();
      const int64_t length = seq_warmup_length(spec_, context_, state.step, warmup_steps_);
      if (length < T) state.batch = shorten_text_batch(state.batch, length, spec_.reshape);
      pending_trained_ = state.batch.inputs.numel();
      break;
    }
    case Event::after_backward:
      tokens_trained_ += pending_trained_;
      tokens_full_ += pending_full_;
      break;
    case Event::run_end: {
      nlohmann::json f;
      f["start"] = spec_.start;
      f["context"] = context_;
      f["warmup_steps"] = warmup_steps_;
      f["mode"] = spec_.reshape ? "reshape" : "truncate";
      f["tokens_trained"] = tokens_trained_;
      f["tokens_full_context"] = tokens_full_;
      state.summary->techniques[name()] = f;
      break;
    }
    default:
      break;
  }
}

void SeqWarmup::save_state(TechniqueState& out) const {
  out.put("tokens_trained", tokens_trained_);
  out.put("tokens_full", tokens_full_);
}

void SeqWarmup::load_state(const TechniqueState& in) {
  if (in.empty()) return;
  tokens_trained_ = in.integer("tokens_trained");
  tokens_full_ = in.integer("tokens_full");
}

}  // namespace frugal::train
