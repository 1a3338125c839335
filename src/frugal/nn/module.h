// Module: a tree of layers owning parameters and buffers, named exactly as PyTorch names the same
// tree (`blocks.1.attn.qkv.weight`), so state dicts map one-to-one onto PyTorch's. Also the
// per-forward random context Dropout reads. Sequential is in sequential.h. Limits: one tensor in,
// one tensor out.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "frugal/tensor/tensor.h"

namespace frugal {
namespace nn {

class InitStreams;  // init.h: the random stream of each parameter during init_parameters

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Randomness for one forward pass: the trainer sets (run seed, optimizer step) before each forward,
// and every Dropout draws its mask from (seed, step, its index), so masks never depend on call order.
struct RandomContext {
  uint64_t seed = 0;
  uint64_t step = 0;
};
void set_random_context(const RandomContext& context);  // thread-local
RandomContext random_context();

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
  // relu(forward(x)); layers with a fused form (BatchNorm2d, Linear) override it, and
  // forward_chain (sequential.h) hands them the ReLU that follows them.
  virtual Tensor forward_relu(const Tensor& x);
  // max_pool2d(forward_relu(x)) over 2x2 windows, stride 2; BatchNorm2d fuses the three.
  virtual Tensor forward_relu_pool2x2(const Tensor& x);
  // forward(x) when the output's values will never be read, only backpropagated through (the
  // last layer of a recomputed stage in backward's re-run, autograd::recompute): a module may
  // leave unwritten what only feeds its output (autograd::UnreadOutputs). Linear, Sequential and
  // GptBlock do; the default runs forward.
  virtual Tensor forward_output_unread(const Tensor& x) { return forward(x); }
  // Class name for messages ("Linear").
  virtual std::string type_name() const = 0;

  // Registration; names are local (no dots), unique within this module, kept in order.
  // A parameter is marked requires_grad. Returns the same handle.
  Tensor register_parameter(const std::string& name, Tensor value);
  Tensor register_buffer(const std::string& name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

  // Whole-tree views with dotted names, in registration order (pre-order over the tree). A tensor
  // reachable under two names (tied weights) appears once, under its first name.
  NamedTensors named_parameters() const;
  NamedTensors named_buffers() const;
  std::vector<Tensor> parameters() const;
  // PyTorch's order: each module's parameters, then its buffers, then its children's.
  NamedTensors state_dict() const;
  // Copies values in place (dtype converted). strict: every key must match both ways. A shape
  // mismatch is always an error. Errors are InputError naming the keys and shapes.
  void load_state_dict(const NamedTensors& state, bool strict = true);
  void load_state_dict(const std::map<std::string, Tensor>& state, bool strict = true);
  int64_t num_parameters() const;
  int64_t num_trainable_parameters() const;  // of the parameters with requires_grad (not frozen)

  // Sub-modules: direct children, and every module of the tree with its dotted prefix ("" = this).
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }
  std::vector<std::pair<std::string, Module*>> named_modules();
  std::vector<std::pair<std::string, const Module*>> named_modules() const;

  // Training mode switches Dropout and BatchNorm; recursive.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Draws this module's own parameters (not its children's) as PyTorch's reset_parameters would;
  // called by init_parameters children first, so a parent may override its children's scheme.
  virtual void reset_parameters(const InitStreams& streams) {}

  // Own (local) parameters and buffers, in order.
  const NamedTensors& own_parameters() const { return parameters_; }
  const NamedTensors& own_buffers() const { return buffers_; }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  void check_new_name(const std::string& name) const;

  NamedTensors parameters_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace nn
}  // namespace frugal
