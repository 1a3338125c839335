// Sequential and forward_chain: layers run in order, a layer handed the ReLU (and 2x2 max pooling)
// that follows it when it has a fused form. Here rather than in module.h because the routing has
// to know the concrete layers (layers.h); Module itself stays generic. Limits: one tensor in and out.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "frugal/nn/module.h"

namespace frugal {
namespace nn {

// Runs layers in order; a layer followed by a ReLU runs the pair as layer->forward_relu, and by a
// ReLU and a 2x2 stride-2 MaxPool2d the three as layer->forward_relu_pool2x2. output_unread: the
// chain's output will not be read (Module::forward_output_unread), so a last layer run on its own
// runs as forward_output_unread.
Tensor forward_chain(const std::vector<Module*>& layers, const Tensor& x, bool output_unread = false);

// Runs its children in order (forward_chain); children are named "0", "1", ... as torch.nn.Sequential.
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Module>> modules);
  void push_back(std::shared_ptr<Module> module);
  int64_t size() const { return int64_t(named_children().size()); }
  Module& operator[](int64_t index) const;
  Tensor forward(const Tensor& x) override;
  Tensor forward_output_unread(const Tensor& x) override;  // forward_chain's output_unread
  std::string type_name() const override { return "Sequential"; }

 private:
  std::vector<Module*> layers() const;
};

}  // namespace nn
}  // namespace frugal
