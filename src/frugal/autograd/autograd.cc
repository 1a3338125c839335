#include "frugal/autograd/autograd.h"

#include <algorithm>
#include <atomic>
#include <unordered_map>
#include <unordered_set>

#include "frugal/autograd/flops.h"
#include "frugal/autograd/ops.h"

namespace frugal {
namespace autograd {

namespace {
thread_local bool t_grad_enabled = true;
std::atomic<uint64_t> g_sequence{0};

// UnreadOutputs: whether a scope is active, whether the op about to record asked to skip its
// output, and the storages of the outputs skipped so far in the scope.
thread_local bool t_unread_outputs = false;
thread_local bool t_skip_claimed = false;
thread_local std::vector<const Storage*> t_skipped;
}  // namespace

UnreadOutputs::UnreadOutputs(bool active) : previous_(t_unread_outputs) {
  if (active) t_unread_outputs = true;
}

UnreadOutputs::~UnreadOutputs() {
  t_unread_outputs = previous_;
  if (!t_unread_outputs) {
    t_skipped.clear();
    t_skip_claimed = false;
  }
}

// Not an UnreadOutputs scope ending: the list of skipped outputs stays for the checks after it.
ReadOutputs::ReadOutputs() : previous_(t_unread_outputs) { t_unread_outputs = false; }
ReadOutputs::~ReadOutputs() { t_unread_outputs = previous_; }

bool skip_output(std::initializer_list<const Tensor*> inputs, std::initializer_list<const Tensor*> read_by_backward) {
  if (!t_unread_outputs || !needs_grad(inputs)) return false;
  for (const Tensor* t : read_by_backward)
    if (t && t->defined())
      FRUGAL_CHECK(std::find(t_skipped.begin(), t_skipped.end(), t->storage().get()) == t_skipped.end(),
                   "skip_output: an op's backward would read an output skipped earlier in the UnreadOutputs scope");
  t_skip_claimed = true;
  return true;
}

bool grad_enabled() { return t_grad_enabled; }
void set_grad_enabled(bool enabled) { t_grad_enabled = enabled; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(Tensor output, const char* name, std::vector<Tensor> inputs, BackwardFn backward) {
  if (!needs_grad(inputs)) return output;
  if (t_unread_outputs) {
    FRUGAL_CHECK(t_skip_claimed, std::string("record: ") + name +
                                     " ran inside an UnreadOutputs scope without skip_output(); its backward may "
                                     "read values that were never computed");
    t_skip_claimed = false;
    t_skipped.push_back(output.storage().get());
  }
  auto node = std::make_shared<Node>();
  node->name = name;
  node->sequence = g_sequence.fetch_add(1);
  node->inputs = std::move(inputs);
  node->output_shape = output.shape();
  node->backward = std::move(backward);
  output.impl()->requires_grad = true;
  output.impl()->grad_fn = std::move(node);
  return output;
}

Tensor reduce_to_shape(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  NoGradGuard no_grad;
  const int64_t lead = grad.rank() - int64_t(shape.size());
  FRUGAL_CHECK(lead >= 0, "reduce_to_shape: " + shape_str(grad.shape()) + " to " + shape_str(shape));
  std::vector<int64_t> axes;
  for (int64_t i = 0; i < grad.rank(); ++i)
    if (i < lead || (shape[i - lead] == 1 && grad.shape()[i] != 1)) axes.push_back(i);
  Tensor summed = axes.empty() ? grad : sum(grad, axes, /*keepdim=*/true);
  return reshape(summed, shape);
}

namespace {
// Nothing but g holds g's tensor or its buffer, all of which g is: a backward's fresh result.
bool sole_owner(const Tensor& g) {
  return g.impl_ptr().use_count() == 1 && g.storage().use_count() == 1 && g.offset() == 0 && g.is_contiguous() &&
         !g.grad_fn();
}

// Adds g into slot. A leaf's .grad must own its buffer (optimizers and clipping change it in
// place), so `own` copies g unless g is its buffer's sole owner (then it is taken as it is).
void accumulate(Tensor& slot, Tensor g, bool own) {
  if (!slot.defined()) {
    slot = own && !sole_owner(g) ? g.clone() : std::move(g);
  } else {
    slot = add(slot, g);
  }
}

// Makes g (fresh from accumulate(..., own = true)) the leaf's .grad; its buffer was allocated as
// a backward temporary, so the memory accounting moves it to gradients.
void adopt_grad(const Tensor& leaf, const Tensor& g) {
  leaf.impl()->grad = g.impl_ptr();
  g.storage()->set_category(MemoryCategory::gradients);
}
}  // namespace

namespace {
thread_local std::function<void(const Tensor&)> grad_ready;  // GradReadyScope's function, if any
}  // namespace

GradReadyScope::GradReadyScope(std::function<void(const Tensor& leaf)> ready) : previous_(std::move(grad_ready)) {
  grad_ready = std::move(ready);
}
GradReadyScope::~GradReadyScope() { grad_ready = std::move(previous_); }

namespace {
// backward() and backward_returning(): the gradient of a leaf listed in `returned` goes to the
// matching slot of *out (moved, not copied); other leaves accumulate into their .grad.
void run_backward(const Tensor& root, const Tensor& grad_root, const std::vector<Tensor>& returned,
                  std::vector<Tensor>* out) {
  FRUGAL_CHECK(root.defined() && root.requires_grad(), "backward() on a tensor that does not require grad");
  Tensor seed = grad_root;
  if (!seed.defined()) {
    FRUGAL_CHECK(root.numel() == 1, "backward() without a gradient needs a one-element root, got " +
                                        shape_str(root.shape()));
    seed = Tensor::ones(root.shape(), root.dtype());
  }
  NoGradGuard no_grad;
  BackwardFlops backward_work;  // what the rules compute is backward work (flops.h)
  // The slot a leaf's gradient goes to: its .grad, or its entry of *out when it is returned.
  auto deliver = [&](const Tensor& leaf, Tensor g) {
    for (size_t i = 0; i < returned.size(); ++i)
      if (returned[i].impl_ptr() == leaf.impl_ptr()) {
        accumulate((*out)[i], std::move(g), false);
        return;
      }
    Tensor slot = leaf.grad();
    accumulate(slot, std::move(g), true);
    adopt_grad(leaf, slot);
  };
  if (!root.grad_fn()) {  // root is a leaf
    deliver(root, seed);
    if (grad_ready) grad_ready(root);
    return;
  }
  // Collect the nodes reachable from root, then run them newest first.
  std::vector<Node*> order;
  std::unordered_set<Node*> seen;
  std::vector<Node*> stack{root.grad_fn().get()};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (!seen.insert(n).second) continue;
    order.push_back(n);
    for (const Tensor& in : n->inputs)
      if (in.defined() && in.grad_fn()) stack.push_back(in.grad_fn().get());
  }
  std::sort(order.begin(), order.end(), [](Node* a, Node* b) { return a->sequence > b->sequence; });
  // With a GradReadyScope: the leaves each node is the last user of, reported once it has run.
  std::vector<std::vector<Tensor>> last_user_of;
  if (grad_ready) {
    std::unordered_map<const void*, size_t> last;
    std::unordered_map<const void*, Tensor> leaf_of;
    for (size_t i = 0; i < order.size(); ++i)
      for (const Tensor& in : order[i]->inputs)
        if (in.defined() && in.requires_grad() && !in.grad_fn()) {
          last[in.impl_ptr().get()] = i;
          leaf_of.emplace(in.impl_ptr().get(), in);
        }
    last_user_of.resize(order.size());
    for (const auto& [impl, i] : last) last_user_of[i].push_back(leaf_of.at(impl));
  }
  auto report_ready = [&](size_t i) {
    if (!grad_ready) return;
    for (const Tensor& leaf : last_user_of[i])
      if (leaf.grad().defined()) grad_ready(leaf);
  };
  std::unordered_map<Node*, Tensor> pending;
  pending[root.grad_fn().get()] = seed;
  for (size_t position = 0; position < order.size(); ++position) {
    Node* n = order[position];
    auto it = pending.find(n);
    if (it == pending.end()) {  // no gradient flows here
      report_ready(position);
      continue;
    }
    Tensor grad_out = std::move(it->second);
    pending.erase(it);
    FRUGAL_CHECK(grad_out.shape() == n->output_shape, std::string("gradient shape mismatch at ") + n->name);
    FRUGAL_CHECK(n->backward != nullptr, std::string("backward through ") + n->name +
                                             " a second time; its saved tensors were released");
    std::vector<Tensor> grads = n->backward(grad_out);
    n->backward = nullptr;  // release saved tensors now, as the step no longer needs them
    FRUGAL_CHECK(grads.size() == n->inputs.size(), std::string("backward of ") + n->name +
                                                       " returned the wrong number of gradients");
    for (size_t i = 0; i < grads.size(); ++i) {
      const Tensor& in = n->inputs[i];
      if (!grads[i].defined() || !in.defined() || !in.requires_grad()) continue;
      FRUGAL_CHECK(grads[i].shape() == in.shape(), std::string("backward of ") + n->name +
                   " gave gradient " + shape_str(grads[i].shape()) + " for input " + shape_str(in.shape()));
      if (in.grad_fn()) {
        accumulate(pending[in.grad_fn().get()], grads[i], false);
      } else {
        deliver(in, std::move(grads[i]));
      }
    }
    report_ready(position);
  }
}
}  // namespace

void backward(const Tensor& root, const Tensor& grad_root) { run_backward(root, grad_root, {}, nullptr); }

std::vector<Tensor> backward_returning(const Tensor& root, const Tensor& grad_root, const std::vector<Tensor>& leaves) {
  for (const Tensor& leaf : leaves)
    FRUGAL_CHECK(leaf.defined() && leaf.requires_grad() && !leaf.grad_fn(),
                 "backward_returning: every returned tensor must be a leaf that requires grad");
  std::vector<Tensor> out(leaves.size());
  run_backward(root, grad_root, leaves, &out);
  return out;
}

}  // namespace autograd
}  // namespace frugal
