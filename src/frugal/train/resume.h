// Spot-safe training support for the trainer: the loop state that a checkpoint carries beside the
// tensors, packing it (with model, optimizer, schedule and best weights) into a checkpoint and back,
// the job comparison that refuses a resume which would change the result, and the heartbeat file
// that measures the work lost to an interruption. Limits: one training process per checkpoint dir.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "frugal/io/checkpoint.h"
#include "frugal/nn/module.h"
#include "frugal/optim/optimizer.h"
#include "frugal/optim/schedule.h"
#include "frugal/train/job.h"

namespace frugal::train {

// Everything of the loop besides tensors that a bit-exact resume, and honest meters, need. Written
// at a step boundary only: after the optimizer step, evaluation and early-stopping bookkeeping.
struct LoopState {
  // Position. The next step to run is `step`; classification continues at batch `batch_in_epoch`
  // of `epoch` (an epoch-end checkpoint stores the next epoch and batch 0).
  int64_t step = 0, micro = 0, epoch = 0, batch_in_epoch = 0, samples_seen = 0;
  // Logged training loss: the mean over the steps since the last log line, so the window matters.
  double last_train_loss = 0, loss_window = 0;
  int64_t loss_window_count = 0;
  // Early stopping (the best weights themselves travel as tensors "best.<name>").
  double best_metric = 0;
  int64_t best_step = -1, evals_without_improvement = 0;
  bool has_best_state = false;
  // Meters, cumulative over every process of the run. wall_s is the wall time spent so far (work
  // kept, work redone after interruptions and checkpoint writes); checkpoint_s counts the writes
  // before this checkpoint (its own write time reaches the next process through the heartbeat);
  // checkpoints_written counts this one.
  double wall_s = 0, train_compute_s = 0, data_wait_s = 0, checkpoint_s = 0, lost_s = 0;
  int64_t checkpoints_written = 0, interruptions = 0;
  // Bookkeeping of the run directory and the run store.
  std::string run_id, out_dir;
  int64_t metrics_bytes = 0;  // length of metrics.jsonl at this step; a resume truncates to it
  int threads = 0;            // thread count of the run (weights are bit-exact for the same count)
  // fp16-mixed: the dynamic loss scaler's state (optim::DynamicLossScaler::state()), stored as
  // values "loss_scaler.<name>"; empty in the other precisions.
  std::vector<std::pair<std::string, double>> loss_scaler;
};

// Builds the checkpoint of this step. Tensors are live handles: write the state before the next step.
io::CheckpointState pack_checkpoint(const LoopState& loop, const JobSpec& job, const nn::Module& model,
                                    const optim::Optimizer& optimizer, const optim::LrSchedule& schedule,
                                    const std::vector<std::pair<std::string, Tensor>>& best_state);

// Restores model, optimizer, schedule and best weights from `state` (read from `path`) and returns the
// loop state. Throws InputError naming `path` when the checkpoint lacks a field or does not fit the
// model; the model and optimizer are then unchanged only if the failure is in the values or the model.
LoopState unpack_checkpoint(const io::CheckpointState& state, const std::string& path, nn::Module& model,
                            optim::Optimizer& optimizer, optim::LrSchedule& schedule,
                            std::vector<std::pair<std::string, Tensor>>& best_state);

// One key whose value differs between two resolved jobs ("" = not set, i.e. the default).
struct JobDifference {
  std::string key, saved, current;
};

// The keys that differ between the job stored in a checkpoint and the current one and could change
// the result. Keys that cannot are left out: checkpoint.* (when to save), train.log_every (logging),
// train.max_minutes (a stop trigger like a checkpoint trigger), run.store (where the run is recorded),
// data.prefetch (how far the loader reads ahead), memory.* (recomputation: same bits, less memory),
// cost.* and budget.* (what is measured and when to
// stop, not the math); and train.eval_every / train.eval_tokens when
// neither job evaluates for early stopping nor a plateau schedule (evaluation then changes no weight).
std::vector<JobDifference> result_differences(const std::string& saved_toml, const std::string& current_toml);

// Throws InputError naming `path` and every differing key when `state` was written by a job whose
// result would differ from `job`'s.
void check_resumable(const io::CheckpointState& state, const std::string& path, const JobSpec& job);

// The heartbeat: one small file in the checkpoint directory, overwritten in place after every step
// and every checkpoint write with the cumulative wall and checkpoint seconds, so the next process can
// tell how much work an interruption (even SIGKILL) destroyed. Not fsynced: a power loss may lose it.
struct HeartbeatRecord {
  std::string run_id;
  int64_t step = 0;
  double wall_s = 0, checkpoint_s = 0;
};

class Heartbeat {
 public:
  Heartbeat() = default;
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;
  void open(const std::string& path);  // creates it if needed; throws InputError naming the file
  void beat(const HeartbeatRecord& record);  // best effort; never throws
 private:
  int fd_ = -1;
};

std::string heartbeat_path(const std::string& checkpoint_dir);
std::optional<HeartbeatRecord> read_heartbeat(const std::string& path);  // nullopt when absent or unreadable

// True when `dir` holds files named like checkpoints (good or not).
bool has_checkpoint_files(const std::string& dir);

}  // namespace frugal::train
