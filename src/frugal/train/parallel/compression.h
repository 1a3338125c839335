// Gradient compression for data-parallel training ([dist] compression, issue 19): a replacement of
// the exact fixed-order gradient sum that sends fewer bytes. With a compressor, each rank adds up its
// own micro-batches of the step in its .grad as one process would; at before_optimizer_step the
// DataParallel technique (data_parallel.h) hands the gradients to reduce(), after which every rank
// must hold the same approximation of the world's SUM (each micro-batch's loss is already divided by
// the step's micro-batch count over all ranks, so the sum is the global batch's gradient).
// One method per file: bf16_sum.cc, topk.cc, powersgd.cc, local_sgd.cc, sign_sum.cc; make_compressor
// picks one.
//
// State that differs between ranks (error-feedback residuals, PowerSGD's Q) is per rank: a compressor
// gathers it to rank 0 at save_state (the only rank that writes checkpoints) and a process resuming
// at the same world size takes its own rank's part back; at another world size it starts from zero
// and says so once.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "frugal/dist/communicator.h"
#include "frugal/optim/optimizer.h"
#include "frugal/tensor/tensor.h"
#include "frugal/train/job.h"

namespace frugal::train {

class TechniqueState;

class GradientCompressor {
 public:
  virtual ~GradientCompressor() = default;
  virtual std::string name() const = 0;  // "bf16", "topk", ...
  // False at steps where the gradients stay local (local SGD between averages): the optimizer then
  // steps each rank on its own gradients.
  virtual bool reduces_gradients(int64_t step) const { return true; }
  // grads[i]: parameter i's local gradient (f32, undefined when it got none on this rank: every
  // rank then sees it undefined); replaced in place by the world's (approximate) sum.
  virtual void reduce(std::vector<Tensor>& grads, dist::Communicator& comm, int64_t step) = 0;
  // At run_start, after load_state (model and optimizer in place, a checkpoint's included): local SGD
  // puts back this rank's own parameters and optimizer state, which differ between averages.
  virtual void start(const std::vector<Tensor>& params, optim::Optimizer& optimizer, dist::Communicator& comm) {}
  // After the optimizer step (weights updated): local SGD averages the parameters every H steps.
  virtual void after_step(const std::vector<Tensor>& params, optim::Optimizer& optimizer, dist::Communicator& comm,
                          int64_t step) {}
  // See the header comment; `comm` is the world (save_state is a collective: every rank calls it).
  virtual void save_state(TechniqueState& out, dist::Communicator& comm) const {}
  virtual void load_state(const TechniqueState& in, dist::Communicator& comm) {}
};

// The job's method; nullptr for compression = "none".
std::unique_ptr<GradientCompressor> make_compressor(const DistSpec& spec);

}  // namespace frugal::train
