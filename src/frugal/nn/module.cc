// Module tree bookkeeping: registration, dotted names, state dicts, train/eval, and the unfused
// forward_relu / forward_relu_pool2x2 every layer starts from.
#include "frugal/nn/module.h"

#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/ops.h"

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

int64_t Module::num_trainable_parameters() const {
  int64_t n = 0;
  for (const auto& [name, t] : named_parameters())
    if (t.requires_grad()) n += t.numel();
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

Tensor Module::forward_relu(const Tensor& x) { return relu(forward(x)); }
Tensor Module::forward_relu_pool2x2(const Tensor& x) { return max_pool2d(forward_relu(x), Pool2dOptions{}); }

}  // namespace nn
}  // namespace frugal
