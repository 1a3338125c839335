// SGD and AdamW steps as fused per-element loops over raw parameter data (threads over large
// tensors: elementwise, so results do not depend on the partitioning), optimizer state for
// checkpoints, parameter groups and global-norm clipping.
#include "frugal/optim/optimizer.h"

#include <algorithm>
#include <cmath>

#include "frugal/autograd/autograd.h"
#include "frugal/base/parallel.h"

namespace frugal {
namespace optim {

namespace {
constexpr int64_t kGrain = 1 << 15;  // elements per thread chunk at least; below it one thread is faster

std::vector<ParamGroup> single_group(std::vector<Tensor> params, double weight_decay) {
  ParamGroup group;
  group.name = "all";
  group.params = std::move(params);
  group.weight_decay = weight_decay;
  return {group};
}

template <class Fn>
void dispatch_param(DType dtype, Fn&& fn) {
  if (dtype == DType::f32) fn(float{});
  else if (dtype == DType::f64) fn(double{});
  else FRUGAL_CHECK(false, "optimizer: parameters must be f32 or f64, got " + std::string(dtype_name(dtype)));
}

void require_finite_non_negative(double value, const std::string& field) {
  if (!(value >= 0.0) || !std::isfinite(value))
    throw InputError(field + " must be a finite non-negative number, got " + std::to_string(value));
}
}  // namespace

// ---- Parameter groups ----

std::vector<ParamGroup> default_param_groups(const nn::Module& model, double weight_decay) {
  ParamGroup decay{"decay", {}, weight_decay, 1.0}, no_decay{"no_decay", {}, 0.0, 1.0};
  for (const auto& [name, p] : model.named_parameters()) (p.rank() >= 2 ? decay : no_decay).params.push_back(p);
  return {decay, no_decay};
}

// ---- Optimizer ----

Optimizer::Optimizer(std::vector<ParamGroup> groups, double lr) : groups_(std::move(groups)), lr_(lr) {
  require_finite_non_negative(lr, "optimizer lr");
  for (const ParamGroup& group : groups_) {
    require_finite_non_negative(group.weight_decay, "param group '" + group.name + "' weight_decay");
    for (const Tensor& p : group.params) {
      FRUGAL_CHECK(p.defined() && p.is_contiguous(), "optimizer: parameters must be defined and contiguous");
      dispatch_param(p.dtype(), [](auto) {});
    }
    num_params_ += int64_t(group.params.size());
  }
}

void Optimizer::step() {
  autograd::NoGradGuard no_grad;
  int64_t k = 0;
  for (ParamGroup& group : groups_) {
    for (Tensor& p : group.params) {
      Tensor g = p.grad();
      if (g.defined()) {
        FRUGAL_CHECK(g.dtype() == p.dtype() && g.shape() == p.shape(),
                     "optimizer: gradient " + std::string(dtype_name(g.dtype())) + " " + shape_str(g.shape()) +
                         " does not match parameter " + std::string(dtype_name(p.dtype())) + " " +
                         shape_str(p.shape()));
        update(k, group, p, g.contiguous());
      }
      ++k;
    }
  }
  ++step_count_;
}

void Optimizer::zero_grad() {
  for (ParamGroup& group : groups_)
    for (Tensor& p : group.params) p.set_grad(Tensor());
}

NamedTensors Optimizer::state() const {
  NamedTensors out;
  out.emplace_back("step_count", Tensor::full({}, double(step_count_), DType::i64));
  out.emplace_back("lr", Tensor::full({}, lr_, DType::f64));
  for (const BufferSlot& slot : const_cast<Optimizer*>(this)->buffers())
    for (int64_t k = 0; k < num_params_; ++k)
      if ((*slot.values)[size_t(k)].defined())
        out.emplace_back("param." + std::to_string(k) + "." + slot.name, (*slot.values)[size_t(k)]);
  return out;
}

void Optimizer::load_state(const NamedTensors& state) {
  std::vector<const Tensor*> params;
  for (const ParamGroup& group : groups_)
    for (const Tensor& p : group.params) params.push_back(&p);
  std::vector<BufferSlot> slots = buffers();

  // Validate everything first so that a bad state leaves the optimizer untouched.
  struct Assignment { std::vector<Tensor>* values; int64_t k; Tensor value; };
  std::vector<Assignment> assignments;
  int64_t step_count = step_count_;
  double lr = lr_;
  auto scalar = [](const std::string& key, const Tensor& t) {
    if (!t.defined() || t.numel() != 1)
      throw InputError("optimizer state: '" + key + "' should be a scalar, got " +
                       (t.defined() ? shape_str(t.shape()) : std::string("no tensor")));
    return t.item();
  };
  for (const auto& [key, t] : state) {
    if (key == "step_count") { step_count = int64_t(scalar(key, t)); continue; }
    if (key == "lr") { lr = scalar(key, t); continue; }
    // "param.<k>.<buffer>"
    size_t dot = key.find('.', 6);
    const BufferSlot* slot = nullptr;
    int64_t k = -1;
    if (key.rfind("param.", 0) == 0 && dot != std::string::npos && dot > 6) {
      try { k = std::stoll(key.substr(6, dot - 6)); } catch (const std::exception&) { k = -1; }
      for (const BufferSlot& s : slots)
        if (key.substr(dot + 1) == s.name) slot = &s;
    }
    if (!slot || k < 0 || k >= num_params_)
      throw InputError("optimizer state: unexpected key '" + key + "' (this optimizer has " +
                       std::to_string(num_params_) + " parameters)");
    const Tensor& p = *params[size_t(k)];
    Shape expected = slot->is_count ? Shape{} : p.shape();
    if (!t.defined() || t.shape() != expected)
      throw InputError("optimizer state: '" + key + "' has shape " +
                       (t.defined() ? shape_str(t.shape()) : std::string("(none)")) + ", expected " +
                       shape_str(expected));
    Tensor value = Tensor::empty(expected, slot->is_count ? DType::i64 : p.dtype());
    value.copy_from(t);
    assignments.push_back({slot->values, k, value});
  }
  for (BufferSlot& s : slots)
    for (Tensor& t : *s.values) t = Tensor();
  for (Assignment& a : assignments) (*a.values)[size_t(a.k)] = a.value;
  step_count_ = step_count;
  lr_ = lr;
}

// ---- SGD ----

SGD::SGD(std::vector<ParamGroup> groups, const SgdOptions& options)
    : Optimizer(std::move(groups), options.lr), options_(options) {
  require_finite_non_negative(options.momentum, "sgd momentum");
  if (options.nesterov && (options.momentum <= 0 || options.dampening != 0))
    throw InputError("sgd: nesterov needs momentum > 0 and dampening = 0");
  momentum_buffer_.resize(size_t(num_params()));
}

SGD::SGD(std::vector<Tensor> params, const SgdOptions& options)
    : SGD(single_group(std::move(params), options.weight_decay), options) {}

std::vector<Optimizer::BufferSlot> SGD::buffers() { return {{"momentum_buffer", &momentum_buffer_, false}}; }

void SGD::update(int64_t k, const ParamGroup& group, Tensor& param, const Tensor& grad) {
  const double lr = this->lr() * group.lr_scale, wd = group.weight_decay;
  const double momentum = options_.momentum, dampening = options_.dampening;
  const bool nesterov = options_.nesterov;
  Tensor& buffer = momentum_buffer_[size_t(k)];
  const bool first = !buffer.defined();
  if (momentum != 0 && first) buffer = Tensor::empty(param.shape(), param.dtype());
  dispatch_param(param.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = param.data<T>();                                    // (n)
    const T* g = grad.data<T>();                               // (n)
    T* buf = momentum != 0 ? buffer.data<T>() : nullptr;       // (n)
    const T t_wd = T(wd), t_momentum = T(momentum), t_keep = T(1.0 - dampening), t_step = T(-lr);
    parallel_for(param.numel(), kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        T d = g[i];
        if (wd != 0) d = d + t_wd * p[i];
        if (buf) {
          buf[i] = first ? d : buf[i] * t_momentum + t_keep * d;
          d = nesterov ? d + t_momentum * buf[i] : buf[i];
        }
        p[i] = p[i] + t_step * d;
      }
    });
  });
}

// ---- AdamW ----

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options)
    : Optimizer(std::move(groups), options.lr), options_(options) {
  if (!(options.beta1 >= 0 && options.beta1 < 1) || !(options.beta2 >= 0 && options.beta2 < 1))
    throw InputError("adamw: betas must be in [0, 1), got " + std::to_string(options.beta1) + ", " +
                     std::to_string(options.beta2));
  require_finite_non_negative(options.eps, "adamw eps");
  exp_avg_.resize(size_t(num_params()));
  exp_avg_sq_.resize(size_t(num_params()));
  step_.resize(size_t(num_params()));
}

AdamW::AdamW(std::vector<Tensor> params, const AdamWOptions& options)
    : AdamW(single_group(std::move(params), options.weight_decay), options) {}

std::vector<Optimizer::BufferSlot> AdamW::buffers() {
  return {{"step", &step_, true}, {"exp_avg", &exp_avg_, false}, {"exp_avg_sq", &exp_avg_sq_, false}};
}

void AdamW::update(int64_t k, const ParamGroup& group, Tensor& param, const Tensor& grad) {
  Tensor& m_t = exp_avg_[size_t(k)];
  Tensor& v_t = exp_avg_sq_[size_t(k)];
  Tensor& step_t = step_[size_t(k)];
  if (!step_t.defined()) {
    step_t = Tensor::zeros({}, DType::i64);
    m_t = Tensor::zeros(param.shape(), param.dtype());
    v_t = Tensor::zeros(param.shape(), param.dtype());
  }
  const int64_t step = ++step_t.data<int64_t>()[0];
  const double lr = this->lr() * group.lr_scale, wd = group.weight_decay;
  const double beta1 = options_.beta1, beta2 = options_.beta2;
  // Scalars computed in double as PyTorch does in Python, then applied in the element type.
  const double bias_correction1 = 1.0 - std::pow(beta1, double(step));
  const double bias_correction2_sqrt = std::sqrt(1.0 - std::pow(beta2, double(step)));
  const double step_size = lr / bias_correction1;
  dispatch_param(param.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* p = param.data<T>();        // (n)
    const T* g = grad.data<T>();   // (n)
    T* m = m_t.data<T>();          // (n)
    T* v = v_t.data<T>();          // (n)
    const T decay = T(1.0 - lr * wd), weight = T(1.0 - beta1), t_beta2 = T(beta2), t_keep2 = T(1.0 - beta2);
    const T t_bc2_sqrt = T(bias_correction2_sqrt), t_eps = T(options_.eps), t_step = T(-step_size);
    const bool lerp_from_start = std::abs(1.0 - beta1) < 0.5;  // torch.lerp's two-sided formula
    parallel_for(param.numel(), kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        p[i] = p[i] * decay;
        m[i] = lerp_from_start ? m[i] + weight * (g[i] - m[i]) : g[i] - (g[i] - m[i]) * (T(1) - weight);
        v[i] = v[i] * t_beta2;
        v[i] = v[i] + t_keep2 * g[i] * g[i];
        const T denom = std::sqrt(v[i]) / t_bc2_sqrt + t_eps;
        p[i] = p[i] + t_step * m[i] / denom;
      }
    });
  });
}

// ---- Clipping ----

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  constexpr int64_t kBlock = 1 << 14;  // fixed summation blocks: the same sum on any thread count
  autograd::NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (const Tensor& p : params) {
    Tensor g = p.defined() ? p.grad() : Tensor();
    if (!g.defined()) continue;
    FRUGAL_CHECK(g.is_contiguous(), "clip_grad_norm: gradients must be contiguous");
    grads.push_back(g);
  }
  double total = 0;
  for (const Tensor& g : grads) {
    const int64_t n = g.numel(), blocks = (n + kBlock - 1) / kBlock;
    std::vector<double> partial(size_t(blocks), 0.0);
    dispatch_param(g.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* x = g.data<T>();
      parallel_for(blocks, 1, [&](int64_t block_begin, int64_t block_end) {
        for (int64_t b = block_begin; b < block_end; ++b) {
          double s = 0;
          for (int64_t i = b * kBlock, stop = std::min(n, (b + 1) * kBlock); i < stop; ++i) s += double(x[i]) * double(x[i]);
          partial[size_t(b)] = s;
        }
      });
    });
    for (double s : partial) total += s;
  }
  const double norm = std::sqrt(total);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    for (Tensor& g : grads) {
      dispatch_param(g.dtype(), [&](auto tag) {
        using T = decltype(tag);
        T* x = g.data<T>();
        const T scale = T(coef);
        parallel_for(g.numel(), kGrain, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) x[i] = x[i] * scale;
        });
      });
    }
  }
  return norm;
}

}  // namespace optim
}  // namespace frugal
