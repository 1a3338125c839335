// What the gradient compressors (bf16_sum.cc, topk.cc, powersgd.cc, local_sgd.cc) share: the exact
// sum of the warmup steps, the per-rank state gathered to rank 0 in a checkpoint, and one factory per
// method for make_compressor. Internal to train/parallel/.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "frugal/train/parallel/compression.h"

namespace frugal::train::compress {

// The exact fixed-order sum (dist::allreduce_sum) of every defined gradient, in place, in one call.
void exact_sum(std::vector<Tensor>& grads, dist::Communicator& comm);

// Makes grads[i] a contiguous f32 tensor (InputError otherwise: compression works on f32 gradients).
void check_f32(std::vector<Tensor>& grads, const std::string& method);

// A rank's own state: f32 tensors with the same names and shapes on every rank (residuals, ...).
using RankTensors = std::vector<std::pair<std::string, Tensor>>;

// A collective: every rank's `mine` is gathered (allgather) to rank 0, which puts the tensors
// "compression.rank<r>.<name>" and the value "compression.world_size" into `out` (prefixed: the
// state is the DataParallel technique's, which has keys of its own). The other ranks leave `out` alone (only rank 0 writes checkpoints).
void save_rank_tensors(TechniqueState& out, dist::Communicator& comm, const RankTensors& mine);

// This rank's part of what save_rank_tensors wrote (names without "compression.rank<r>."), or nothing when the
// checkpoint holds none; when it was written at another world size, rank 0 prints one note that
// `method`'s state starts from zero and nothing is returned.
RankTensors load_rank_tensors(const TechniqueState& in, dist::Communicator& comm, const std::string& method);

// The tensor called `name` in `state` (undefined when absent).
Tensor find(const RankTensors& state, const std::string& name);

// A copy of `loaded`'s tensor `name` when present (InternalError when its shape is not `shape`), else
// zeros: where an error-feedback residual starts.
Tensor initial_state(const RankTensors& loaded, const std::string& name, const Shape& shape);

// A compressor with an error-feedback residual per parameter (bf16, top-k, sign): its residuals are
// this rank's checkpoint state.
class ResidualCompressor : public GradientCompressor {
 public:
  void save_state(TechniqueState& out, dist::Communicator& comm) const override;
  void load_state(const TechniqueState& in, dist::Communicator& comm) override;

 protected:
  // Parameter i's residual, made (from the checkpoint, else zeros) on first use.
  Tensor& residual(size_t i, const Shape& shape);

  std::vector<Tensor> residual_;  // per parameter; undefined without error feedback
  RankTensors loaded_;            // from load_state: where residuals start
};

std::unique_ptr<GradientCompressor> make_bf16_sum(const DistSpec& spec);
std::unique_ptr<GradientCompressor> make_topk(const DistSpec& spec);
std::unique_ptr<GradientCompressor> make_powersgd(const DistSpec& spec);
std::unique_ptr<GradientCompressor> make_local_sgd(const DistSpec& spec);
std::unique_ptr<GradientCompressor> make_sign(const DistSpec& spec);

}  // namespace frugal::train::compress
