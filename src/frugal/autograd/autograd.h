// Reverse-mode automatic differentiation. Every differentiable op records one Node holding its
// inputs and a backward rule; backward() replays the recorded nodes in reverse creation order
// (a tape) and accumulates gradients into leaves' .grad. Limits: first derivatives only (backward
// rules run with recording off); single-output ops.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "frugal/tensor/tensor.h"

namespace frugal {
namespace autograd {

// Gradient of the op's output -> gradients of its inputs, in order (undefined = no gradient).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

struct Node {
  std::string name;             // op name, for messages ("matmul")
  uint64_t sequence = 0;        // creation order; backward runs in decreasing order
  std::vector<Tensor> inputs;   // the op's inputs (handles: edges of the graph)
  Shape output_shape;
  BackwardFn backward;
};

bool grad_enabled();
void set_grad_enabled(bool enabled);

// Turns recording off in a scope (evaluation, optimizer steps, backward rules).
class NoGradGuard {
 public:
  NoGradGuard() : previous_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when an op on these inputs must record a node.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Records `output` as produced by an op on `inputs` when any input requires a gradient.
// Backward rules must capture saved tensors with .detach() (never the output handle itself)
// so the graph holds no reference cycle.
Tensor record(Tensor output, const char* name, std::vector<Tensor> inputs, BackwardFn backward);

// ---- Outputs nobody reads ----
// Backward's re-run of a recomputed block (recompute.h) only backpropagates through the block's
// output, so the ops at the block's end, whose values feed nothing but that output, need their
// nodes, not their values. Inside an active UnreadOutputs scope an op that can do without its
// output (skip_output) records its node and leaves the output unwritten: arbitrary bytes. The
// scope holds every op recorded in it to that: one that did not ask to skip, or one whose backward
// reads a value skipped earlier in the scope, is a logic error (its gradient would be garbage).
class UnreadOutputs {
 public:
  explicit UnreadOutputs(bool active = true);
  ~UnreadOutputs();
  UnreadOutputs(const UnreadOutputs&) = delete;
  UnreadOutputs& operator=(const UnreadOutputs&) = delete;

 private:
  bool previous_;
};

// Suspends an active UnreadOutputs scope: ops inside compute their outputs and record as usual,
// for a value that an op later in the scope reads in its backward (a LoRA adapter's rank-wide
// product inside a layer whose own output nobody reads: lora_b's gradient reads it). The outputs
// skipped before stay skipped.
class ReadOutputs {
 public:
  ReadOutputs();
  ~ReadOutputs();
  ReadOutputs(const ReadOutputs&) = delete;
  ReadOutputs& operator=(const ReadOutputs&) = delete;

 private:
  bool previous_;
};

// For an op about to run on `inputs` whose backward reads only `read_by_backward` (never its own
// output): true when it may leave its output unwritten, that is inside an active UnreadOutputs
// scope and recording. The op must then record() its node.
bool skip_output(std::initializer_list<const Tensor*> inputs, std::initializer_list<const Tensor*> read_by_backward);

// Backpropagates from `root`. `grad_root` defaults to 1 for a one-element root. Gradients add
// into the .grad of every leaf that requires grad. The graph is released afterwards. The dense
// work of the backward rules counts as backward FLOPs (flops.h).
void backward(const Tensor& root, const Tensor& grad_root = Tensor());

// While a GradReadyScope is alive on this thread, backward() calls its function once for each leaf
// whose .grad will receive nothing more in this backward (all nodes that use it have run), as soon
// as that is so: data-parallel training starts sending a bucket of gradients while backward goes on.
// Leaves no gradient reaches are not reported.
class GradReadyScope {
 public:
  explicit GradReadyScope(std::function<void(const Tensor& leaf)> ready);
  ~GradReadyScope();
  GradReadyScope(const GradReadyScope&) = delete;
  GradReadyScope& operator=(const GradReadyScope&) = delete;

 private:
  std::function<void(const Tensor&)> previous_;
};

// backward() that hands back the gradients of `leaves` (leaves that require grad) instead of adding
// them into their .grad: no copy, no .grad written (torch.autograd.grad's role). Every other leaf
// accumulates as backward() does. An entry is undefined when no gradient reached that leaf.
std::vector<Tensor> backward_returning(const Tensor& root, const Tensor& grad_root, const std::vector<Tensor>& leaves);

// Sums `grad` over broadcast axes so it has `shape` (the inverse of broadcasting).
Tensor reduce_to_shape(const Tensor& grad, const Shape& shape);

}  // namespace autograd
}  // namespace frugal
