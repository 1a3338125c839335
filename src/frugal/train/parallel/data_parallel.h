// Data-parallel training over the ranks of a world (issue 19): `mpirun -np N frugal train job.toml`.
// The job's global batch does not change with N: a step is train.grad_accum micro-batches of
// train.batch_size, and the loop gives micro-batch i of each step to rank i % N (loop.cc), keyed for
// dropout by its index as one process keys it. This technique makes the ranks one run:
//   - gradients: the exact fixed-order sum (exact_sum.h), bucketed and overlapped with backward, or
//     a [dist] compression method (compression.h) on each rank's own accumulated gradients;
//   - BatchNorm running statistics: every micro-batch's update is applied on every rank in the order
//     one process applies them (RunningStatsCapture), so buffers stay identical too;
//   - samples seen count the whole world.
// With compression = "none" N ranks end bit-identical to one process with the same micro-batches
// (the same thread count per process), and checkpoints do not depend on N: a run checkpointed at 4
// ranks goes on at 2 or 1. WorldStop (order kOrderWorldStop) makes the ranks agree on stops.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "frugal/autograd/ops.h"
#include "frugal/train/parallel/compression.h"
#include "frugal/train/parallel/exact_sum.h"
#include "frugal/train/technique.h"

namespace frugal::train {

class DataParallel : public Technique {
 public:
  DataParallel(const DistSpec& spec, dist::Communicator& world);
  ~DataParallel() override;
  std::string name() const override { return "data_parallel"; }
  int order() const override { return kOrderDataParallel; }
  EventSet events() const override;
  void on(Event event, TrainState& state) override;
  void save_state(TechniqueState& out) const override;
  void load_state(const TechniqueState& in) override;

 private:
  void finish_step(TrainState& state);
  void exchange_step_records(TrainState& state);

  DistSpec spec_;
  dist::Communicator& world_;
  std::unique_ptr<GradientCompressor> compressor_;
  std::unique_ptr<ExactGradientSum> exact_;
  std::vector<Tensor> params_;  // trainable
  // This step's micro-batches on this rank: samples, loss, and BatchNorm updates captured.
  struct MicroRecord {
    int64_t samples = 0;
    std::vector<RunningStatsUpdate> stats;
  };
  std::vector<MicroRecord> records_;
  std::optional<RunningStatsCapture> capture_;
  std::vector<RunningStatsUpdate> stats_targets_;  // the buffers each micro-batch updates, in order
  std::vector<Tensor> batch_counters_;             // BatchNorm's num_batches_tracked
  int64_t samples_at_step_start_ = 0, step_first_micro_ = 0;
};

// At step_end, after every rank's own decisions (time limit, preemption, budget): when any rank asks
// to stop, every rank adopts the request of the lowest such rank, so all write the same checkpoint
// and exit with the same code.
class WorldStop : public Technique {
 public:
  explicit WorldStop(dist::Communicator& world) : world_(world) {}
  std::string name() const override { return "world_stop"; }
  int order() const override { return kOrderWorldStop; }
  EventSet events() const override { return event_set({Event::step_end}); }
  void on(Event event, TrainState& state) override;

 private:
  dist::Communicator& world_;
};

}  // namespace frugal::train
