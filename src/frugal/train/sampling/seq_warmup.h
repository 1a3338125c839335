// Sequence-length warmup for the GPT ([seq_warmup], Composer's SeqLengthWarmup, Li et al. 2022):
// at batch_loaded the text batch's windows (B, T) become (B, L) with L growing linearly from `start`
// to the context over the warmup steps (truncate), or (B x T/L, L) (reshape: the same tokens cut into
// shorter windows). The forward then runs on the shorter sequences, so the FLOPs the loop counts go
// down with L. Limits: text batches only; evaluation always uses the full context.
#pragma once

#include <cstdint>
#include <string>

#include "frugal/train/job.h"
#include "frugal/train/technique.h"

namespace frugal::train {

// The length of step `step`'s windows: start + (context - start) x step / warmup_steps rounded down
// to a multiple of spec.multiple (never below start), and the full context from warmup_steps on.
int64_t seq_warmup_length(const SeqWarmupSpec& spec, int64_t context, int64_t step, int64_t warmup_steps);

// The batch of windows of length `length` cut from `batch` (inputs and targets i64 (B, T)): truncate
// keeps each window's first `length` tokens; reshape cuts each into T / length windows (the rest of
// a window, T mod length tokens, is dropped). length >= T returns the batch as is.
data::Batch shorten_text_batch(const data::Batch& batch, int64_t length, bool reshape);

class SeqWarmup : public Technique {
 public:
  SeqWarmup(SeqWarmupSpec spec, int64_t context) : spec_(spec), context_(context) {}
  std::string name() const override { return "seq_warmup"; }
  EventSet events() const override {
    return event_set({Event::run_start, Event::batch_loaded, Event::after_backward, Event::run_end});
  }
  void on(Event event, TrainState& state) override;
  void save_state(TechniqueState& out) const override;
  void load_state(const TechniqueState& in) override;

  int64_t warmup_steps() const { return warmup_steps_; }
  int64_t tokens_trained() const { return tokens_trained_; }

 private:
  const SeqWarmupSpec spec_;
  const int64_t context_;
  int64_t warmup_steps_ = 0;  // resolved at run_start
  // Carried through checkpoints: the tokens the model was trained on, and what the full-length
  // windows would have held (the plain run's), over the whole run.
  int64_t tokens_trained_ = 0, tokens_full_ = 0;
  int64_t pending_trained_ = 0, pending_full_ = 0;  // the micro-batch in flight
};

}  // namespace frugal::train
