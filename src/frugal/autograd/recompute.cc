// recompute(): forward without a graph, backward as a nested backward() over a re-run of the block.
// The nested pass walks only the re-run's subgraph (its input is a fresh leaf and parameters are
// leaves), so it never touches the outer tape.
#include "frugal/autograd/recompute.h"

#include <string>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/precision.h"

namespace frugal {
namespace autograd {

namespace {
// Turns recording on in a scope: backward rules run with it off, and the re-run must record.
class GradEnabledGuard {
 public:
  GradEnabledGuard() : previous_(grad_enabled()) { set_grad_enabled(true); }
  ~GradEnabledGuard() { set_grad_enabled(previous_); }
  GradEnabledGuard(const GradEnabledGuard&) = delete;
  GradEnabledGuard& operator=(const GradEnabledGuard&) = delete;

 private:
  bool previous_;
};
}  // namespace

Tensor recompute(const BlockFn& fn, const Tensor& input, const std::vector<Tensor>& parameters,
                 const std::vector<Tensor>& state, const BlockFn& rerun) {
  FRUGAL_CHECK(input.defined(), "recompute: undefined input");
  std::vector<Tensor> inputs;
  inputs.reserve(1 + parameters.size());
  inputs.push_back(input);
  for (const Tensor& p : parameters) {
    // A non-leaf would pull the outer graph into the nested backward (and run its nodes twice).
    FRUGAL_CHECK(!p.defined() || !p.grad_fn(), "recompute: parameters must be leaves");
    inputs.push_back(p);
  }
  if (!needs_grad(inputs)) return fn(input);

  const Precision precision = compute_precision();
  Tensor output;
  {
    NoGradGuard no_grad;
    output = fn(input);
  }
  FRUGAL_CHECK(output.defined(), "recompute: the block returned an undefined tensor");
  // A fresh handle: fn may return its input (an identity layer) or a view of it, and record()
  // marks the handle it is given.
  output = output.detach();

  const bool input_needs_grad = input.requires_grad();
  const Tensor saved_input = input.detach();
  const size_t count = parameters.size();
  BlockFn block = rerun ? rerun : fn;
  return record(output, "recompute", std::move(inputs),
                [block, saved_input, input_needs_grad, precision, state, count](const Tensor& grad_output) {
                  PrecisionGuard same_precision(precision);
                  Tensor x = saved_input.detach();  // (the block's input) a new leaf for the re-run
                  if (input_needs_grad) x.set_requires_grad(true);
                  Tensor y;
                  {
                    std::vector<Tensor> before;
                    before.reserve(state.size());
                    for (const Tensor& s : state) before.push_back(s.clone());
                    GradEnabledGuard recording;
                    y = block(x);
                    for (size_t i = 0; i < state.size(); ++i) {
                      Tensor target = state[i];  // a handle on the same storage
                      target.copy_from(before[i]);
                    }
                  }
                  FRUGAL_CHECK(y.defined() && y.shape() == grad_output.shape(),
                               "recompute: the re-run gave another shape than the forward");
                  // Parameter gradients accumulate into their .grad inside this nested pass, in the
                  // order the plain graph would add them; only the input's gradient goes back out,
                  // as the backward temporary it is (never copied into x's .grad: that copy was a
                  // whole input's bytes on top of the re-run's peak).
                  std::vector<Tensor> grads(1 + count);
                  if (!y.requires_grad()) return grads;
                  if (input_needs_grad) grads[0] = backward_returning(y, grad_output, {x})[0];
                  else backward(y, grad_output);
                  return grads;
                });
}

}  // namespace autograd
}  // namespace frugal
