// The training loop's events and the interface of a technique: an object that acts at some of the
// events, may change the loop's state there (the loss, the gradients, a skipped step, a stop), and
// carries its own state through checkpoints, so a resumed run ends bit-identical to one never
// interrupted without the loop knowing the technique. Every cost-saving method, and the loop's
// own services (logging, clipping, early stopping, budgets, checkpoint triggers), is one.
//
// The events of one process, in order (the loop in loop.cc emits them; tests/unit/train/
// events_test.cc checks this sequence):
//
//   load_state               each technique, when the process resumes from a checkpoint
//   run_start                once; model, optimizer, data and any checkpoint are in place
//   per optimizer step:
//     epoch_start            the step is the first of an epoch, or the first of a process that
//                            resumes in the middle of one (state.batch_in_epoch > 0 then)
//     per micro-batch (train.grad_accum of them; the last step of an epoch may have fewer; in a
//     world of N ranks each rank runs micro-batches rank, rank + N, ... of them):
//       batch_loaded         state.batch holds the micro-batch (a technique may replace it)
//       after_loss           forward and loss done: state.logits, state.loss (may be replaced)
//       after_backward       the micro-batch's gradients are added to .grad; state.micro and
//                            state.samples_seen count it
//     before_optimizer_step  gradients of the step complete (unscale, clip, all-reduce); a
//                            technique may set state.skip_step
//     after_optimizer_step   weights updated (unless skipped), state.step counts the step
//     evaluation_done        only when evaluated (every train.eval_every steps and after the
//                            last): state.eval holds the metrics
//     epoch_end              only when the step was the last of its epoch
//     step_end               the last event of every step: stops and checkpoints are decided
//                            here (budgets, time limit, preemption, checkpoint triggers)
//     save_state             each technique, when a checkpoint is written at the end of step_end
//   fit_end                  training ended for good (its steps done, early stopping, a time
//                            limit): before the final evaluation and the model file; not when the
//                            process stops to be resumed (preemption, budget)
//   run_end                  the summary (state.summary) is being completed; the last event
//   run_failed               instead of the events left, when an exception ends the run (status
//                            "failed"; state.error holds its message): the loop emits it and
//                            rethrows. A technique acting on it must not throw (what it throws is
//                            ignored) and must not touch the model; errors before run_start (set-up,
//                            input) are not runs that failed but refused jobs, and emit nothing.
//
// The FLOPs that dense ops compute from batch_loaded to after_backward of a micro-batch, a
// technique's included (a teacher's forward at after_loss), are the run's training FLOPs
// (autograd/flops.h, cost::RunMeter::add_flops); those of an evaluation, evaluation_done
// included, are its evaluation FLOPs (add_eval_flops); at the other events they count nowhere.
//
// Within an event, techniques act in increasing order() (ties: the order they were added), so an
// order is a position in the pipeline, not a priority. The built-in positions (kOrder* below) are
// chosen so that, e.g., the fp16 loss scaler unscales gradients before clipping reads them, logging
// sees the step after user techniques changed it, and checkpoint triggers act last, after every
// other technique's state change of the step (the trap of callbacks whose checkpoint runs before
// another callback updates its state).
#pragma once

#include <cstdint>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "frugal/base/value_text.h"
#include "frugal/cost/budget.h"
#include "frugal/cost/run_meter.h"
#include "frugal/data/loader.h"
#include "frugal/io/checkpoint.h"
#include "frugal/nn/module.h"
#include "frugal/optim/optimizer.h"
#include "frugal/optim/schedule.h"
#include "frugal/train/data_setup.h"
#include "frugal/train/evaluate.h"
#include "frugal/train/job.h"
#include "frugal/train/progress.h"
#include "frugal/train/summary.h"

namespace frugal::track {
class RunStore;
}
namespace frugal::dist {
class Communicator;
}

namespace frugal::train {

enum class Event {
  run_start,
  epoch_start,
  batch_loaded,
  after_loss,
  after_backward,
  before_optimizer_step,
  after_optimizer_step,
  evaluation_done,
  epoch_end,
  step_end,
  fit_end,
  run_end,
  run_failed,
};
inline constexpr int event_count = 13;
const char* event_name(Event event);  // "run_start", ...

// A set of events, e.g. event_set({Event::after_loss, Event::step_end}).
using EventSet = uint32_t;
constexpr EventSet event_set(std::initializer_list<Event> list) {
  EventSet set = 0;
  for (Event e : list) set |= EventSet(1) << int(e);
  return set;
}
constexpr bool contains(EventSet set, Event event) { return (set >> int(event)) & 1; }

// Positions of the built-in techniques within an event (see the header comment).
inline constexpr int kOrderDataParallel = 50;    // before_optimizer_step: the world's gradient sum first
inline constexpr int kOrderLossScaling = 100;    // before_optimizer_step: unscale, skip on inf/NaN
inline constexpr int kOrderClipping = 200;       // before_optimizer_step: after unscaling
inline constexpr int kOrderNonfiniteGuard = 250; // before_optimizer_step: reads clipping's norm
inline constexpr int kOrderDefault = 500;        // techniques that do not choose
inline constexpr int kOrderLogging = 600;        // metric rows and progress
inline constexpr int kOrderEarlyStopping = 700;  // evaluation_done: after the eval row; fit_end
inline constexpr int kOrderTimeLimit = 800;      // step_end
inline constexpr int kOrderPreemption = 850;     // step_end
inline constexpr int kOrderBudget = 900;         // step_end
inline constexpr int kOrderAlerts = 950;         // step_end: after the budget's warnings of the step
inline constexpr int kOrderWorldStop = 990;      // step_end: the ranks agree on a stop, after every rank's own
inline constexpr int kOrderCheckpointing = 1000; // step_end: triggers and the write, after everyone

// Appends one row to metrics.jsonl (its length is tracked, so a resume truncates it to the
// checkpoint's) and records "train" and "eval" rows in the run store too. bytes_before: the file's
// length to go on from (0: a fresh file).
class MetricsLog {
 public:
  // store: where rows are recorded too; nullptr: the file only (a data-parallel rank other than 0).
  MetricsLog(const std::string& path, int64_t bytes_before, track::RunStore* store, std::string run_id);
  void write(const nlohmann::json& row);
  int64_t bytes() const { return bytes_; }

 private:
  std::ofstream file_;
  int64_t bytes_ = 0;
  track::RunStore* store_;
  std::string run_id_;
};

// Exit code of a run stopped by a [budget] limit, after its checkpoint (status "stopped_budget");
// a preempted run exits with kExitPreempted (75, base/signals.h).
inline constexpr int kExitBudget = 3;
// Exit code of a run stopped by a NaN or inf loss or gradient norm (NonfiniteGuard, builtin.h),
// after a checkpoint of the weights before the bad step (status "stopped_nonfinite").
inline constexpr int kExitNonfinite = 4;

// A stop asked for by a technique. The first request of a run wins; later ones are ignored.
struct StopRequest {
  std::string status = "completed";  // completed | preempted | stopped_budget | ...
  std::string reason;                // the summary's stop_reason: early_stopping, time_limit, ...
  int exit_code = 0;                 // != 0: the process stops to be resumed (no final evaluation)
  bool checkpoint = false;           // write a checkpoint at this step boundary first
  std::string message;               // printed once the step (and its checkpoint) is done
};

// What a checkpoint write reports back to the technique that asked for it.
struct CheckpointWritten {
  std::string path;
  int64_t bytes = 0;
  double seconds = 0;  // packing and writing
};

// The loop's state, shared with the techniques at every event. Everything a technique may read or
// change is here; the loop owns it.
struct TrainState {
  TrainState(const JobSpec& job, const PreparedData& data, nn::Module& model, optim::Optimizer& optimizer,
             optim::LrSchedule& schedule, Progress& progress, MetricsLog& metrics, cost::RunMeter& meter)
      : job(job), data(data), model(model), optimizer(optimizer), schedule(schedule), progress(progress),
        metrics(metrics), meter(meter), params(model.parameters()) {}

  // The run, fixed for its length.
  const JobSpec& job;
  const PreparedData& data;
  nn::Module& model;
  optim::Optimizer& optimizer;
  optim::LrSchedule& schedule;
  Progress& progress;
  MetricsLog& metrics;
  cost::RunMeter& meter;
  std::vector<Tensor> params;  // model.parameters()
  int64_t total_steps = 0;     // optimizer steps of the whole run
  int64_t steps_per_epoch = 0;
  int64_t eval_every = 1;      // steps between evaluations (the job's, or its default)
  int64_t batches_per_epoch = 0;  // micro-batches (classification); 0 for text
  std::string run_id, out_dir, checkpoint_dir;
  std::string resumed_from;  // the checkpoint this process went on from ("" = a fresh run)
  // The ranks of a data-parallel job (dist/communicator.h); nullptr: one process. A world of N ranks
  // shares each step's micro-batches (micro-batch i of the step goes to rank i % N); rank 0 writes
  // the run directory, the run store and the checkpoints.
  dist::Communicator* world = nullptr;
  int rank() const;
  int world_size() const;
  // Classification: the training loader, for a technique that chooses the samples of each epoch
  // (set_epoch_order at run_start; the loop starts an epoch after run_start). nullptr for text.
  data::Loader* loader = nullptr;

  // Position: the next step to run is `step` (after after_optimizer_step: the step just done);
  // `micro` counts micro-batches and keys dropout; classification goes through `epoch` batch by
  // batch (`batch_in_epoch` = micro-batches of this epoch done), text draws windows by step.
  int64_t step = 0, micro = 0, epoch = 0, batch_in_epoch = 0, samples_seen = 0;

  // The micro-batch in flight (batch_loaded .. after_backward).
  data::Batch batch;
  int64_t micro_batches = 1;  // in this step: the loss is divided by it before backward
  Tensor logits, loss;        // after_loss: the scalar loss backward starts from (unscaled)
  double loss_value = 0;      // loss.item(), read by the loop after after_loss
  // Multiplies the loss before backward (fp16 loss scaling); gradients are then scaled too.
  double loss_scale = 1.0;
  // A technique that handles a non-finite loss sets it: the fp16 loss scaler (a skipped step), else
  // the non-finite guard (a stop with a checkpoint); with neither the loop throws InternalError.
  bool tolerates_nonfinite_loss = false;
  // before_optimizer_step: the global gradient norm, when a technique computed it (clipping).
  std::optional<double> grad_norm;
  // before_optimizer_step: leave the weights and the optimizer state unchanged this step (the
  // step still counts, and the schedule goes on).
  bool skip_step = false;

  EvalMetrics eval;          // the latest evaluation (evaluation_done)
  bool epoch_done = false;   // this step was the last of its epoch (epoch_end .. step_end)
  std::optional<StopRequest> stop;
  // step_end: the budget warnings of this step (BudgetGuard sets them, replacing the previous
  // step's), for the techniques after it (alerts). Empty without a [budget].
  std::vector<cost::BudgetEvent> budget_events;
  RunSummary* summary = nullptr;  // run_end only
  std::string error;              // run_failed only: what ended the run

  // The whole run's wall seconds so far (earlier processes included): for rows and triggers.
  double wall_s() const { return meter.wall_s(); }
  // True while the run goes on after this step: steps remain and nobody asked to stop.
  bool continuing() const { return step < total_steps && !stop; }
  // Asks the loop to stop after this step; false (and ignored) when a stop was asked for already.
  bool request_stop(StopRequest request) {
    if (stop) return false;
    stop = std::move(request);
    return true;
  }
  // Writes a checkpoint of this step now (only at step_end): the loop's position, model,
  // optimizer, schedule, meters and every technique's save_state.
  std::function<CheckpointWritten()> write_checkpoint;

  // The tensors of the run's model.safetensors (at the end, after fit_end); unset: model.state_dict().
  // A technique that trains something other than the model to deliver sets it (LoRA: the merged model).
  std::function<nn::NamedTensors()> model_to_save;
};

// A technique's part of a checkpoint: small values as text and tensors, named locally (the loop
// stores them as "<technique name>.<name>"). Numbers round-trip bit-exactly.
class TechniqueState {
 public:
  TechniqueState() = default;
  TechniqueState(std::string technique, std::string checkpoint_path)
      : technique_(std::move(technique)), path_(std::move(checkpoint_path)) {}

  void put(const std::string& key, double value);
  void put(const std::string& key, int64_t value);
  void put(const std::string& key, int value) { put(key, int64_t(value)); }
  void put_text(const std::string& key, std::string value);
  void put_tensor(const std::string& name, Tensor value);  // saved as is: write before the next step

  bool empty() const { return values_.empty() && tensors_.empty(); }
  bool has(const std::string& key) const { return values_.count(key) > 0; }
  // InputError naming the checkpoint, the technique and the key when absent or malformed.
  double real(const std::string& key) const;
  int64_t integer(const std::string& key) const;
  const std::string& text(const std::string& key) const;
  const std::vector<std::pair<std::string, Tensor>>& tensors() const { return tensors_; }
  [[noreturn]] void fail(const std::string& what) const;  // InputError naming checkpoint and technique

  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  ValueReader reader() const;

  std::string technique_, path_;
  std::map<std::string, std::string> values_;
  std::vector<std::pair<std::string, Tensor>> tensors_;
};

class Technique {
 public:
  virtual ~Technique() = default;
  // Unique within the run, no dots: names its checkpoint state, its summary entry, its messages.
  virtual std::string name() const = 0;
  // Its position within each event (kOrder*; lower first).
  virtual int order() const { return kOrderDefault; }
  // The events it acts on: on() is called for these only.
  virtual EventSet events() const = 0;
  virtual void on(Event event, TrainState& state) = 0;
  // Its state, at a checkpoint (after every event of the step) and back before run_start of a
  // process that resumes; `in` is empty when the checkpoint holds nothing of this technique.
  virtual void save_state(TechniqueState& out) const {}
  virtual void load_state(const TechniqueState& in) {}
};

}  // namespace frugal::train
