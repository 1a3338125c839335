// SGD and AdamW steps as vectorized per-element loops over raw parameter data, all parameters in
// one parallel region (fixed 16K-element chunks, split statically by elements over the threads:
// elementwise, so the split never changes a result), optimizer state for checkpoints, parameter
// groups and global-norm clipping. Built with -fno-math-errno (optim/CMakeLists.txt) so that
// std::sqrt has no errno branch and AdamW's loop vectorizes; results are unchanged by it.
#include "frugal/optim/optimizer.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "frugal/autograd/autograd.h"
#include "frugal/base/format.h"
#include "frugal/base/glob.h"
#include "frugal/base/parallel.h"

namespace frugal {
namespace optim {

namespace {
// Chunk length: also the fixed summation block of clip_grad_norm, so its sums never change.
constexpr int64_t kChunk = 1 << 14;
// Elements per thread at least; below it one thread is faster than waking another.
constexpr int64_t kGrain = 1 << 15;

// The kernels prefer 512-bit vectors (GCC's default for this CPU is 256) and take restrict
// pointers and branch-free bodies so that GCC vectorizes them (checked with -fopt-info-vec).
// Rounding is spelled out: no implicit a * b + c contraction (fp-contract=off), explicit std::fma
// where the per-parameter loops before them contracted, so results are the same bits as those
// loops' (and as PyTorch's within the golden tolerance) on any compiler or vector width.
#define FRUGAL_OPTIM_KERNEL __attribute__((noinline, target("prefer-vector-width=512"), optimize("fp-contract=off")))

// PyTorch SGD on n elements; the options are template flags so that the loop has no branch.
template <class T, bool kDecay, bool kMomentum, bool kFirst, bool kNesterov>
FRUGAL_OPTIM_KERNEL void sgd_kernel(int64_t n, T* __restrict p, const T* __restrict g, T* __restrict buffer,
                                    T weight_decay, T momentum, T keep, T step) {
  for (int64_t i = 0; i < n; ++i) {
    T d = g[i];
    if constexpr (kDecay) d = std::fma(weight_decay, p[i], d);
    if constexpr (kMomentum) {
      const T b = kFirst ? d : std::fma(buffer[i], momentum, keep * d);
      buffer[i] = b;
      d = kNesterov ? std::fma(momentum, b, d) : b;
    }
    p[i] = std::fma(step, d, p[i]);
  }
}

template <class T, bool kDecay, bool kMomentum, bool kFirst>
void sgd_nesterov(bool nesterov, int64_t n, T* p, const T* g, T* buffer, T weight_decay, T momentum, T keep, T step) {
  if (nesterov) sgd_kernel<T, kDecay, kMomentum, kFirst, true>(n, p, g, buffer, weight_decay, momentum, keep, step);
  else sgd_kernel<T, kDecay, kMomentum, kFirst, false>(n, p, g, buffer, weight_decay, momentum, keep, step);
}

template <class T, bool kDecay>
void sgd_chunk(bool momentum_on, bool first, bool nesterov, int64_t n, T* p, const T* g, T* buffer, T weight_decay,
               T momentum, T keep, T step) {
  if (!momentum_on) sgd_kernel<T, kDecay, false, false, false>(n, p, g, buffer, weight_decay, momentum, keep, step);
  else if (first) sgd_nesterov<T, kDecay, true, true>(nesterov, n, p, g, buffer, weight_decay, momentum, keep, step);
  else sgd_nesterov<T, kDecay, true, false>(nesterov, n, p, g, buffer, weight_decay, momentum, keep, step);
}

// PyTorch AdamW on n elements (the scalars as in AdamW::prepare). kLerpFromStart: torch.lerp's
// two-sided formula, chosen once per parameter.
template <class T, bool kLerpFromStart>
FRUGAL_OPTIM_KERNEL void adamw_kernel(int64_t n, T* __restrict p, const T* __restrict g, T* __restrict m,
                                      T* __restrict v, T decay, T weight, T beta2, T keep2, T bias_correction2_sqrt,
                                      T eps, T step) {
  for (int64_t i = 0; i < n; ++i) {
    const T gi = g[i], mi_old = m[i];
    const T pi = p[i] * decay;
    const T mi = kLerpFromStart ? std::fma(weight, gi - mi_old, mi_old) : std::fma(-(gi - mi_old), T(1) - weight, gi);
    const T vi = std::fma(keep2 * gi, gi, v[i] * beta2);
    const T denom = std::sqrt(vi) / bias_correction2_sqrt + eps;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi + step * mi / denom;
  }
}

// Sum of squares of x[0, n) in double, in element order (the order is part of the result).
template <class T>
FRUGAL_OPTIM_KERNEL double sum_of_squares(int64_t n, const T* __restrict x) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s = std::fma(double(x[i]), double(x[i]), s);
  return s;
}

template <class T>
FRUGAL_OPTIM_KERNEL void scale_kernel(int64_t n, T* __restrict x, T scale) {
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] * scale;
}

// Runs body(first_chunk, last_chunk) over the chunks whose element offsets (offsets: one per
// chunk, then the total) fall in each thread's equal share of the elements; one parallel region.
template <class Body>
void for_chunks_split_by_elements(const std::vector<int64_t>& offsets, int64_t work_elements, Body&& body) {
  const int64_t chunks = int64_t(offsets.size()) - 1;
  if (chunks <= 0) return;
  const int64_t total = offsets.back();
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(std::min<int64_t>(num_threads(), chunks), work_elements / kGrain));
  if (parts == 1) {
    body(int64_t{0}, chunks);
    return;
  }
  auto first_chunk_at = [&](int64_t element) {  // the first chunk starting at or after element
    return int64_t(std::lower_bound(offsets.begin(), offsets.end() - 1, element) - offsets.begin());
  };
  parallel_for(parts, 1, [&](int64_t part_begin, int64_t part_end) {
    for (int64_t part = part_begin; part < part_end; ++part)
      body(first_chunk_at(total * part / parts), first_chunk_at(total * (part + 1) / parts));
  });
}

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

std::vector<ParamGroup> param_groups_by_lr(const nn::Module& model, double weight_decay,
                                           const std::vector<std::pair<std::string, double>>& multipliers) {
  if (multipliers.empty()) return default_param_groups(model, weight_decay);
  for (const auto& [pattern, multiplier] : multipliers)
    if (!(multiplier >= 0) || !std::isfinite(multiplier))
      throw InputError("lr multiplier of '" + pattern + "' must be a finite number >= 0, got " + number_text(multiplier));
  const nn::NamedTensors params = model.named_parameters();
  std::vector<bool> used(multipliers.size(), false);
  // Per parameter: its multiplier, chosen by the most specific matching pattern.
  std::vector<double> scale(params.size(), 1.0);
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string& name = params[i].first;
    std::vector<size_t> matching;
    size_t best = multipliers.size();
    for (size_t m = 0; m < multipliers.size(); ++m) {
      if (!glob_match(multipliers[m].first, name)) continue;
      used[m] = true;
      matching.push_back(m);
      if (best == multipliers.size() || glob_literal_count(multipliers[m].first) > glob_literal_count(multipliers[best].first))
        best = m;
    }
    for (size_t m : matching)
      if (glob_literal_count(multipliers[m].first) == glob_literal_count(multipliers[best].first) &&
          multipliers[m].second != multipliers[best].second)
        throw InputError("lr multipliers '" + multipliers[best].first + "' = " + number_text(multipliers[best].second) +
                         " and '" + multipliers[m].first + "' = " + number_text(multipliers[m].second) +
                         " both match parameter '" + name + "' and are equally specific; make one narrower");
    if (best < multipliers.size()) scale[i] = multipliers[best].second;
  }
  for (size_t m = 0; m < multipliers.size(); ++m)
    if (!used[m]) {
      std::string some;
      for (size_t i = 0; i < params.size() && i < 8; ++i) some += (i ? ", " : "") + params[i].first;
      if (params.size() > 8) some += ", ...";
      throw InputError("lr multiplier pattern '" + multipliers[m].first + "' matches no parameter (the model's: " + some + ")");
    }
  std::vector<ParamGroup> out;
  for (const bool decay : {true, false}) {
    const size_t first = out.size();
    for (size_t i = 0; i < params.size(); ++i) {
      const Tensor& p = params[i].second;
      if ((p.rank() >= 2) != decay) continue;
      auto group = std::find_if(out.begin() + std::ptrdiff_t(first), out.end(),
                                [&](const ParamGroup& g) { return g.lr_scale == scale[i]; });
      if (group == out.end()) {
        std::string name = decay ? "decay" : "no_decay";
        if (scale[i] != 1.0) name += " lr x" + number_text(scale[i]);
        out.push_back({name, {}, decay ? weight_decay : 0.0, scale[i]});
        group = out.end() - 1;
      }
      group->params.push_back(p);
    }
  }
  return out;
}

// ---- Optimizer ----

Optimizer::Optimizer(std::vector<ParamGroup> groups, double lr) : groups_(std::move(groups)), lr_(lr) {
  require_finite_non_negative(lr, "optimizer lr");
  int64_t offset = 0;
  std::unordered_set<const Storage*> storages;
  for (const ParamGroup& group : groups_) {
    require_finite_non_negative(group.weight_decay, "param group '" + group.name + "' weight_decay");
    for (const Tensor& p : group.params) {
      FRUGAL_CHECK(p.defined() && p.is_contiguous(), "optimizer: parameters must be defined and contiguous");
      dispatch_param(p.dtype(), [](auto) {});
      // Chunks of all parameters are updated in parallel: no two may share memory.
      FRUGAL_CHECK(storages.insert(p.storage().get()).second,
                   "optimizer: a parameter appears twice or shares its storage with another (group '" +
                       group.name + "')");
      for (int64_t begin = 0; begin < p.numel(); begin += kChunk) {
        chunks_.push_back({num_params_, begin, std::min(p.numel(), begin + kChunk)});
        chunk_offsets_.push_back(offset + begin);
      }
      offset += p.numel();
      ++num_params_;
    }
  }
  chunk_offsets_.push_back(offset);
  has_grad_.assign(size_t(num_params_), 0);
  step_grads_.resize(size_t(num_params_));
}

void Optimizer::step() {
  autograd::NoGradGuard no_grad;
  int64_t k = 0, work_elements = 0;
  for (ParamGroup& group : groups_) {
    for (Tensor& p : group.params) {
      Tensor g = p.grad();
      has_grad_[size_t(k)] = g.defined();
      if (g.defined()) {
        FRUGAL_CHECK(g.dtype() == p.dtype() && g.shape() == p.shape(),
                     "optimizer: gradient " + std::string(dtype_name(g.dtype())) + " " + shape_str(g.shape()) +
                         " does not match parameter " + std::string(dtype_name(p.dtype())) + " " +
                         shape_str(p.shape()));
        step_grads_[size_t(k)] = g.contiguous();
        prepare(k, group, p, step_grads_[size_t(k)]);
        work_elements += p.numel();
      }
      ++k;
    }
  }
  for_chunks_split_by_elements(chunk_offsets_, work_elements, [&](int64_t chunk_begin, int64_t chunk_end) {
    for (int64_t c = chunk_begin; c < chunk_end; ++c) {
      const Chunk& chunk = chunks_[size_t(c)];
      if (has_grad_[size_t(chunk.param)]) update_chunk(chunk.param, chunk.begin, chunk.end);
    }
  });
  for (Tensor& g : step_grads_) g = Tensor();
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
    MemoryCategoryGuard memory(MemoryCategory::optimizer_state);
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
  prepared_.resize(size_t(num_params()));
}

SGD::SGD(std::vector<Tensor> params, const SgdOptions& options)
    : SGD(single_group(std::move(params), options.weight_decay), options) {}

std::vector<Optimizer::BufferSlot> SGD::buffers() { return {{"momentum_buffer", &momentum_buffer_, false}}; }

void SGD::prepare(int64_t k, const ParamGroup& group, Tensor& param, const Tensor& grad) {
  MemoryCategoryGuard memory(MemoryCategory::optimizer_state);
  Tensor& buffer = momentum_buffer_[size_t(k)];
  const bool first = !buffer.defined();
  if (options_.momentum != 0 && first) buffer = Tensor::empty(param.shape(), param.dtype());
  prepared_[size_t(k)] = {param.dtype(), param.raw_data(), grad.raw_data(),
                          options_.momentum != 0 ? buffer.raw_data() : nullptr,
                          lr() * group.lr_scale, group.weight_decay, first};
}

void SGD::update_chunk(int64_t k, int64_t begin, int64_t end) {
  const Prepared& s = prepared_[size_t(k)];
  dispatch_param(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(s.param) + begin;             // (n)
    const T* g = static_cast<const T*>(s.grad) + begin;  // (n)
    T* buffer = s.buffer ? static_cast<T*>(s.buffer) + begin : nullptr;  // (n)
    const T weight_decay = T(s.weight_decay), momentum = T(options_.momentum), keep = T(1.0 - options_.dampening);
    const T step = T(-s.lr);
    const bool momentum_on = buffer != nullptr;
    if (s.weight_decay != 0)
      sgd_chunk<T, true>(momentum_on, s.first, options_.nesterov, end - begin, p, g, buffer, weight_decay, momentum, keep, step);
    else
      sgd_chunk<T, false>(momentum_on, s.first, options_.nesterov, end - begin, p, g, buffer, weight_decay, momentum, keep, step);
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
  prepared_.resize(size_t(num_params()));
}

AdamW::AdamW(std::vector<Tensor> params, const AdamWOptions& options)
    : AdamW(single_group(std::move(params), options.weight_decay), options) {}

std::vector<Optimizer::BufferSlot> AdamW::buffers() {
  return {{"step", &step_, true}, {"exp_avg", &exp_avg_, false}, {"exp_avg_sq", &exp_avg_sq_, false}};
}

void AdamW::prepare(int64_t k, const ParamGroup& group, Tensor& param, const Tensor& grad) {
  MemoryCategoryGuard memory(MemoryCategory::optimizer_state);
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
  prepared_[size_t(k)] = {param.dtype(), param.raw_data(), grad.raw_data(), m_t.raw_data(), v_t.raw_data(),
                          1.0 - lr * wd, 1.0 - beta1, beta2, 1.0 - beta2, bias_correction2_sqrt, options_.eps,
                          -step_size};
}

void AdamW::update_chunk(int64_t k, int64_t begin, int64_t end) {
  const Prepared& s = prepared_[size_t(k)];
  const bool lerp_from_start = std::abs(1.0 - options_.beta1) < 0.5;  // torch.lerp's two-sided formula
  dispatch_param(s.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = static_cast<T*>(s.param) + begin;             // (n)
    const T* g = static_cast<const T*>(s.grad) + begin;  // (n)
    T* m = static_cast<T*>(s.exp_avg) + begin;           // (n)
    T* v = static_cast<T*>(s.exp_avg_sq) + begin;        // (n)
    const T decay = T(s.decay), weight = T(s.lerp_weight), beta2 = T(s.beta2), keep2 = T(s.keep2);
    const T bias_correction2_sqrt = T(s.bias_correction2_sqrt), eps = T(s.eps), step = T(s.step);
    if (lerp_from_start)
      adamw_kernel<T, true>(end - begin, p, g, m, v, decay, weight, beta2, keep2, bias_correction2_sqrt, eps, step);
    else
      adamw_kernel<T, false>(end - begin, p, g, m, v, decay, weight, beta2, keep2, bias_correction2_sqrt, eps, step);
  });
}

// ---- Clipping ----

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  autograd::NoGradGuard no_grad;
  // Scratch kept between calls (this thread's), so that a training step does not allocate.
  struct Block {
    DType dtype;
    void* data;
    int64_t n;
  };
  struct Scratch {
    std::vector<Tensor> grads;
    std::vector<Block> blocks;      // kChunk elements of one gradient at most
    std::vector<int64_t> offsets;   // element offset of each block, then the total
    std::vector<double> partial;    // sum of squares of each block
  };
  static thread_local Scratch scratch;
  // Named once here: inside the parallel region a thread_local would be the worker's own.
  std::vector<Tensor>& grads = scratch.grads;
  std::vector<Block>& blocks = scratch.blocks;
  std::vector<int64_t>& offsets = scratch.offsets;
  std::vector<double>& partial = scratch.partial;
  grads.clear(), blocks.clear(), offsets.clear();
  int64_t total_elements = 0;
  for (const Tensor& p : params) {
    Tensor g = p.defined() ? p.grad() : Tensor();
    if (!g.defined()) continue;
    FRUGAL_CHECK(g.is_contiguous(), "clip_grad_norm: gradients must be contiguous");
    dispatch_param(g.dtype(), [](auto) {});
    for (int64_t begin = 0; begin < g.numel(); begin += kChunk) {
      blocks.push_back({g.dtype(), static_cast<char*>(g.raw_data()) + begin * int64_t(dtype_size(g.dtype())),
                        std::min(g.numel() - begin, kChunk)});
      offsets.push_back(total_elements + begin);
    }
    total_elements += g.numel();
    grads.push_back(std::move(g));
  }
  offsets.push_back(total_elements);
  partial.assign(blocks.size(), 0.0);
  for_chunks_split_by_elements(offsets, total_elements, [&](int64_t block_begin, int64_t block_end) {
    for (int64_t b = block_begin; b < block_end; ++b) {
      const Block& block = blocks[size_t(b)];
      dispatch_param(block.dtype, [&](auto tag) {
        using T = decltype(tag);
        partial[size_t(b)] = sum_of_squares(block.n, static_cast<const T*>(block.data));
      });
    }
  });
  double total = 0;
  for (double s : partial) total += s;  // in block order: the same sum on any thread count
  const double norm = std::sqrt(total);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    for_chunks_split_by_elements(offsets, total_elements, [&](int64_t block_begin, int64_t block_end) {
      for (int64_t b = block_begin; b < block_end; ++b) {
        const Block& block = blocks[size_t(b)];
        dispatch_param(block.dtype, [&](auto tag) {
          using T = decltype(tag);
          scale_kernel(block.n, static_cast<T*>(block.data), T(coef));
        });
      }
    });
  }
  for (Tensor& g : grads) g = Tensor();
  return norm;
}

}  // namespace optim
}  // namespace frugal
