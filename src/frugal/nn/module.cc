// Module tree bookkeeping: registration, dotted names, state dicts, train/eval, Sequential.
#include "frugal/nn/module.h"

#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/ops.h"
#include "frugal/nn/layers.h"

namespace frugal {
namespace nn {

namespace {
thread_local RandomContext t_random_context;

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// Pre-order walk calling fn(prefix, module).
template <class M, class Fn>
void walk(M& module, const std::string& prefix, Fn&& fn) {
  fn(prefix, module);
  for (const auto& [name, child] : module.named_children()) walk(static_cast<M&>(*child), join(prefix, name), fn);
}

// Appends `tensors` named under `prefix`, skipping ones already seen (tied weights).
void collect(const NamedTensors& tensors, const std::string& prefix, std::unordered_set<const TensorImpl*>& seen,
             NamedTensors& out) {
  for (const auto& [name, t] : tensors)
    if (seen.insert(t.impl()).second) out.emplace_back(join(prefix, name), t);
}
}  // namespace

void set_random_context(const RandomContext& context) { t_random_context = context; }
RandomContext random_context() { return t_random_context; }

void Module::check_new_name(const std::string& name) const {
  FRUGAL_CHECK(!name.empty() && name.find('.') == std::string::npos,
               "module member name '" + name + "' must be non-empty and have no '.'");
  auto taken = [&](const auto& list) {
    for (const auto& entry : list)
      if (entry.first == name) return true;
    return false;
  };
  FRUGAL_CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_),
               "name '" + name + "' registered twice in " + type_name());
}

Tensor Module::register_parameter(const std::string& name, Tensor value) {
  check_new_name(name);
  FRUGAL_CHECK(value.defined(), "register_parameter('" + name + "') with an undefined tensor");
  value.set_requires_grad(true);
  value.storage()->set_category(MemoryCategory::weights);  // memory accounting
  parameters_.emplace_back(name, value);
  return value;
}

Tensor Module::register_buffer(const std::string& name, Tensor value) {
  check_new_name(name);
  FRUGAL_CHECK(value.defined(), "register_buffer('" + name + "') with an undefined tensor");
  buffers_.emplace_back(name, value);
  return value;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_new_name(name);
  FRUGAL_CHECK(module != nullptr, "register_module('" + name + "') with a null module");
  children_.emplace_back(name, std::move(module));
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  std::unordered_set<const TensorImpl*> seen;
  walk(*this, "", [&](const std::string& prefix, const Module& m) { collect(m.parameters_, prefix, seen, out); });
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  std::unordered_set<const TensorImpl*> seen;
  walk(*this, "", [&](const std::string& prefix, const Module& m) { collect(m.buffers_, prefix, seen, out); });
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

NamedTensors Module::state_dict() const {
  NamedTensors out;
  std::unordered_set<const TensorImpl*> seen;
  walk(*this, "", [&](const std::string& prefix, const Module& m) {
    collect(m.parameters_, prefix, seen, out);
    collect(m.buffers_, prefix, seen, out);
  });
  return out;
}

void Module::load_state_dict(const NamedTensors& state, bool strict) {
  NamedTensors own = state_dict();
  std::unordered_map<std::string, const Tensor*> given;
  for (const auto& [name, t] : state) given[name] = &t;
  std::unordered_set<std::string> known;
  for (const auto& [name, t] : own) known.insert(name);

  std::vector<std::string> problems;
  for (const auto& [name, t] : own) {
    auto it = given.find(name);
    if (it == given.end()) {
      if (strict) problems.push_back("missing key '" + name + "' (model expects " + shape_str(t.shape()) + ")");
    } else if (!it->second->defined() || it->second->shape() != t.shape()) {
      problems.push_back("shape mismatch for '" + name + "': state has " +
                         (it->second->defined() ? shape_str(it->second->shape()) : std::string("no tensor")) +
                         ", model expects " + shape_str(t.shape()));
    }
  }
  if (strict)
    for (const auto& [name, t] : state)
      if (!known.count(name))
        problems.push_back("unexpected key '" + name + "' with shape " +
                           (t.defined() ? shape_str(t.shape()) : std::string("(none)")));
  if (!problems.empty()) {
    std::ostringstream message;
    message << "load_state_dict into " << type_name() << ": ";
    for (size_t i = 0; i < problems.size() && i < 10; ++i) message << (i ? "; " : "") << problems[i];
    if (problems.size() > 10) message << "; and " << problems.size() - 10 << " more";
    throw InputError(message.str());
  }
  // Validated first, copied second: a failed load leaves the model untouched.
  autograd::NoGradGuard no_grad;
  for (auto& [name, t] : own) {
    auto it = given.find(name);
    if (it != given.end()) t.copy_from(*it->second);
  }
}

void Module::load_state_dict(const std::map<std::string, Tensor>& state, bool strict) {
  load_state_dict(NamedTensors(state.begin(), state.end()), strict);
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out;
  walk(*this, "", [&](const std::string& prefix, Module& m) { out.emplace_back(prefix, &m); });
  return out;
}

std::vector<std::pair<std::string, const Module*>> Module::named_modules() const {
  std::vector<std::pair<std::string, const Module*>> out;
  walk(*this, "", [&](const std::string& prefix, const Module& m) { out.emplace_back(prefix, &m); });
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

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

Tensor Module::forward_relu(const Tensor& x) { return relu(forward(x)); }
Tensor Module::forward_relu_pool2x2(const Tensor& x) { return max_pool2d(forward_relu(x), Pool2dOptions{}); }

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
    if (conv && is_bn_relu_pool(layers, i + 1)) {
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
