// The training loop: for each step, micro-batches through forward, loss and backward, then the
// optimizer step, with evaluation at step boundaries, the events techniques act on (technique.h)
// and, at the end, the final evaluation, the model file and the run summary. It owns no setup:
// Trainer (trainer.h) builds the data, model, optimizer, run directory and techniques, restores a
// checkpoint, and hands them over. Limits: one process, one thread driving the steps.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "frugal/data/loader.h"
#include "frugal/train/summary.h"
#include "frugal/train/technique.h"

namespace frugal::train {

// Where the micro-batches come from: a classification loader going through epochs, or a language
// model's token loader drawing windows per step. Exactly one is set.
struct BatchSource {
  data::Loader* loader = nullptr;
  data::TokenLoader* tokens = nullptr;
  double wait_seconds() const { return loader ? loader->data_wait_seconds() : tokens->data_wait_seconds(); }
};

class TrainLoop {
 public:
  // `state` holds the run and its position (restored for a resumed process); `techniques` are
  // sorted by order() here; `summary` comes with the fields the trainer knows (run id, directories,
  // recompute plan, parameters, threads) and the loop completes it; flops_per_sample is the
  // model's, when known.
  TrainLoop(TrainState& state, std::vector<std::unique_ptr<Technique>>& techniques, BatchSource batches,
            RunSummary summary, std::optional<int64_t> flops_per_sample);

  // Trains to the end or to a stop and returns the summary (exit code: state.stop's, or 0).
  RunSummary run();

 private:
  void emit(Event event);
  void begin_epoch();
  void train_step();
  // accumulating: not this rank's first micro-batch of the step (see add_gradients_aside).
  void train_micro_batch(data::Batch batch, bool accumulating);
  std::vector<Tensor> set_gradients_aside();
  void add_gradients_aside(std::vector<Tensor>& aside);
  void optimizer_step();
  void end_step();
  EvalMetrics evaluate_val();
  void evaluate();
  FinalMetrics final_metrics();
  void write_model();
  CheckpointWritten write_checkpoint();
  RunSummary finish();

  TrainState& state_;
  std::vector<std::unique_ptr<Technique>>& techniques_;
  std::vector<Technique*> subscribers_[event_count];  // per event, in order
  BatchSource batches_;
  RunSummary summary_;
  std::optional<int64_t> flops_per_sample_;
  bool is_text_ = false;
  bool epoch_open_ = false;  // classification: the loader is going through state_.epoch
};

}  // namespace frugal::train
