// Activation recomputation (checkpointing): a block's forward runs without recording, only its
// input is kept, and backward re-runs the block with recording on and backpropagates through it.
// Limits: one tensor in, one out; bit-identical to the plain graph when the block's input feeds
// nothing outside the block (otherwise the input's gradient terms are summed in another order).
#pragma once

#include <functional>
#include <vector>

#include "frugal/tensor/tensor.h"

namespace frugal {
namespace autograd {

// Returns fn(input), recorded as one node whose backward re-runs fn on the saved input.
// - fn must be deterministic given its input: anything random it reads (dropout's RandomContext)
//   must be pinned by fn itself, since backward calls it again later. The re-run uses the compute
//   precision that was current at the forward.
// - parameters: every tensor fn reads that may need a gradient. They must be leaves; their .grad
//   accumulates exactly as the plain graph's would (same values, same order of additions).
// - state: tensors fn updates in place (BatchNorm running statistics and counters); they are
//   restored after the re-run, so the update happens once, at the forward.
// - rerun, when given, is what backward runs instead of fn: the same ops on the same values, except
//   that it may leave unwritten what only feeds the output (UnreadOutputs in autograd.h), since the
//   re-run's output is backpropagated through and never read. The gradients are fn's, bit for bit.
// Without grad recording, or when neither input nor parameters need a gradient, this is fn(input).
using BlockFn = std::function<Tensor(const Tensor&)>;
Tensor recompute(const BlockFn& fn, const Tensor& input, const std::vector<Tensor>& parameters,
                 const std::vector<Tensor>& state = {}, const BlockFn& rerun = nullptr);

}  // namespace autograd
}  // namespace frugal
