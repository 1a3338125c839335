// Counting the FLOPs that the dense ops execute, as they run: a FlopCounter opened on a thread
// collects what matmul, linear, conv2d, the fused first block and attention compute there, split
// into forward and backward work. Limits: only dense products count (see below); one thread's ops
// only (the op's calling thread, not the kernels' worker threads); an op's count is a formula of
// its shapes, not a hardware counter.
//
// What counts, a multiply-add being 2 FLOPs (as nn::count_flops_per_sample counts):
// - matmul (batch..., M, K) x (batch..., K, N): 2 x batch x M N K forward; backward dA and dB each
//   the same, each only when that operand needs a gradient (its requires_grad);
// - linear and linear_relu, x (M, in) and weight (out, in): 2 M in out forward; dX and dW each
//   2 M in out when needed (the bias sum and the ReLU mask are elementwise: not counted);
// - conv2d in every form (NCHW, channels-last, bf16 output, mixed precision, reference):
//   2 N O OH OW (C / groups) KH KW forward, the direct convolution's count also for the f32 3x3
//   convolutions that run as Winograd F(2x2, 3x3) (fewer multiplications); backward the same for
//   dX when x needs a gradient and for dW when the weight or the bias needs one (one kernel pass
//   computes both);
// - conv2d_batch_norm_relu_max_pool2x2 (a first block): its convolution as conv2d counts it,
//   forward, and for the weight gradient in backward when needed (the kernel forms it from
//   moments, with fewer multiply-adds; its input never needs a gradient);
// - attention over q (BH, Tq, D) and keys/values (BH, Tk, D): scores Q K^T and the value product
//   P V, 2 BH Tq Tk D each, forward; backward dV = P^T dO, dP = dO V^T, dQ = dS K, dK = dS^T Q,
//   2 BH Tq Tk D each, as every path computes all four. The full Tq x Tk matrix counts even when
//   causal: the materialized path (short contexts) computes it all; the tiled kernel (long
//   contexts, f64, reference mode) skips blocks above the diagonal, so there it counts more than it
//   executes, as count_flops_per_sample does for every path.
// Not counted: elementwise ops, activations, norms, softmax, losses, embeddings, pools, reductions
// and optimizer updates (memory-bound, small next to the products in the models frugal trains).
// Where an op skips a product (a gradient not needed, an output an UnreadOutputs scope leaves
// unwritten) nothing counts; where work runs twice (activation recomputation re-runs blocks in
// backward) it counts twice.
//
// Forward or backward: work done while autograd::backward runs backward rules (a BackwardFlops
// scope, which backward() opens) is backward work, whatever op does it, so a backward rule that
// calls matmul() counts its product as backward, and a recomputed block's re-run counts as
// backward, where it runs; everything else is forward work.
//
// Nesting: counters nest; an op adds its FLOPs to every counter open on its thread, so an outer
// counter's totals include an inner one's. Counters must close in the reverse order of opening
// (as scopes do). With no counter open, counting costs one thread-local read per op call.
#pragma once

namespace frugal {
namespace autograd {

class FlopCounter {
 public:
  FlopCounter();   // opens: from now on this thread's dense ops add to it
  ~FlopCounter();  // closes; the innermost open counter of this thread must be the one closing
  FlopCounter(const FlopCounter&) = delete;
  FlopCounter& operator=(const FlopCounter&) = delete;

  double forward() const { return forward_; }
  double backward() const { return backward_; }
  double total() const { return forward_ + backward_; }

 private:
  friend void count_flops(double flops);
  FlopCounter* outer_;  // the counter open before this one on the thread, or null
  double forward_ = 0, backward_ = 0;
};

// For ops: adds `flops` to every counter open on this thread, as backward work inside a
// BackwardFlops scope, else as forward work. Call once per product an op computes, with its count
// (a formula of the shapes; never per element).
void count_flops(double flops);

// Marks what the dense ops compute in this scope, on this thread, as backward work
// (autograd::backward opens one around the backward rules). Nests; restores the previous mark.
class BackwardFlops {
 public:
  BackwardFlops();
  ~BackwardFlops();
  BackwardFlops(const BackwardFlops&) = delete;
  BackwardFlops& operator=(const BackwardFlops&) = delete;

 private:
  bool previous_;
};

}  // namespace autograd
}  // namespace frugal
