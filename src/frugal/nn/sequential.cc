// Sequential and forward_chain: which runs of layers go to a fused op, decided by the layers' types.
// Limits: only the runs named in forward_chain fuse; any other layer runs on its own.
#include "frugal/nn/sequential.h"

#include "frugal/autograd/ops.h"
#include "frugal/nn/layers.h"

namespace frugal {
namespace nn {

Sequential::Sequential(std::vector<std::shared_ptr<Module>> modules) {
  for (auto& m : modules) push_back(std::move(m));
}

void Sequential::push_back(std::shared_ptr<Module> module) {
  register_module(std::to_string(named_children().size()), std::move(module));
}

Module& Sequential::operator[](int64_t index) const {
  FRUGAL_CHECK(index >= 0 && index < size(), "Sequential index " + std::to_string(index) + " out of range");
  return *named_children()[size_t(index)].second;
}

namespace {
bool is_pool2x2(const Module* m) {
  const auto* pool = dynamic_cast<const MaxPool2d*>(m);
  if (!pool) return false;
  const Pool2dOptions& o = pool->options();
  return o.kernel_h == 2 && o.kernel_w == 2 && o.stride_h == 2 && o.stride_w == 2 && o.padding_h == 0 &&
         o.padding_w == 0;
}

// BatchNorm2d, ReLU, 2x2 max pooling from layers[i]: one fused op, which reads bf16 input.
bool is_bn_relu_pool(const std::vector<Module*>& layers, size_t i) {
  return i + 2 < layers.size() && dynamic_cast<const BatchNorm2d*>(layers[i]) &&
         dynamic_cast<const ReLU*>(layers[i + 1]) && is_pool2x2(layers[i + 2]);
}
}  // namespace

Tensor forward_chain(const std::vector<Module*>& layers, const Tensor& x, bool output_unread) {
  Tensor y = x;
  for (size_t i = 0; i < layers.size(); ++i) {
    auto* conv = dynamic_cast<Conv2d*>(layers[i]);
    if (conv && conv->hook() && is_bn_relu_pool(layers, i + 1) && static_cast<BatchNorm2d*>(layers[i + 1])->folded()) {
      // A hooked (int8) convolution with its BatchNorm folded in: the hook runs ReLU and pooling.
      y = conv->forward_relu_pool2x2(y);
      i += 3;
      continue;
    }
    if (conv && !conv->hook() && is_bn_relu_pool(layers, i + 1)) {
      // A first block (no gradient into x) runs as one op; otherwise the convolution's output is
      // stored for batch norm only, in bf16 under bf16-mixed precision.
      if (Tensor fused = static_cast<BatchNorm2d*>(layers[i + 1])->forward_conv_relu_pool2x2(*conv, y);
          fused.defined()) {
        y = fused;
        i += 3;
        continue;
      }
      y = conv->forward_bf16_output(y);
    } else if (i + 2 < layers.size() && dynamic_cast<const ReLU*>(layers[i + 1]) && is_pool2x2(layers[i + 2])) {
      y = layers[i]->forward_relu_pool2x2(y);
      i += 2;
    } else if (i + 1 < layers.size() && dynamic_cast<const ReLU*>(layers[i + 1])) {
      y = layers[i]->forward_relu(y);
      ++i;
    } else {
      y = output_unread && i + 1 == layers.size() ? layers[i]->forward_output_unread(y) : layers[i]->forward(y);
    }
  }
  return y;
}

std::vector<Module*> Sequential::layers() const {
  std::vector<Module*> layers;
  layers.reserve(named_children().size());
  for (const auto& [name, child] : named_children()) layers.push_back(child.get());
  return layers;
}

Tensor Sequential::forward(const Tensor& x) { return forward_chain(layers(), x); }
Tensor Sequential::forward_output_unread(const Tensor& x) { return forward_chain(layers(), x, true); }

}  // namespace nn
}  // namespace frugal
