// Spot-safe training support for the trainer: the loop position that a checkpoint carries, packing
// it (with model, optimizer, schedule and the techniques' states) into a checkpoint and back,
// the job comparison that refuses a resume which would change the result, and the heartbeat file
// that measures the work lost to an interruption. Limits: one training process per checkpoint dir.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "frugal/io/checkpoint.h"
#include "frugal/nn/module.h"
#include "frugal/optim/optimizer.h"
#include "frugal/optim/schedule.h"
#include "frugal/train/job.h"
#include "frugal/train/technique.h"

namespace frugal::train {

// The loop's position and the run's bookkeeping in a checkpoint, beside the model, optimizer and
// schedule tensors, the cost meters (cost::RunMeter::save) and each technique's state. Written at a
// step boundary only, after every event of the step.
struct LoopPosition {
  // The next step to run is `step`; classification continues at batch `batch_in_epoch` of `epoch`
  // (an epoch-end checkpoint stores the next epoch and batch 0).
  int64_t step = 0, micro = 0, epoch = 0, batch_in_epoch = 0, samples_seen = 0;
  std::string run_id, out_dir;
  int64_t metrics_bytes = 0;  // length of metrics.jsonl at this step; a resume truncates to it
  int threads = 0;            // thread count of the run (weights are bit-exact for the same count)
};

// Builds the checkpoint of this step: values "step", ..., tensors "model.*", "optim.*",
// "schedule.*", and each technique's state as "<name>.<key>" (value "techniques" lists the names).
// Tensors are live handles: write the state before the next step.
io::CheckpointState pack_checkpoint(const LoopPosition& position, const JobSpec& job, const nn::Module& model,
                                    const optim::Optimizer& optimizer, const optim::LrSchedule& schedule,
                                    const std::vector<std::unique_ptr<Technique>>& techniques);

// Restores model, optimizer, schedule and every technique's state from `state` (read from `path`)
// and returns the position. InputError naming `path` when the checkpoint lacks a field, does not
// fit the model, or holds the state of a technique this run does not have.
LoopPosition unpack_checkpoint(const io::CheckpointState& state, const std::string& path, nn::Module& model,
                               optim::Optimizer& optimizer, optim::LrSchedule& schedule,
                               const std::vector<std::unique_ptr<Technique>>& techniques);

// Checkpoints written before the loop had techniques kept early stopping's, the metric log's and
// the checkpoint count's state under bare names ("best_metric", "best.<tensor>", ...): renames them
// to their techniques' ("early_stopping.best_metric", ...), so those runs resume unchanged.
void upgrade_checkpoint(io::CheckpointState& state);

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
