// Optimizers (SGD, AdamW) with exactly PyTorch's update rules, gradient-norm clipping, and the
// decay / no_decay parameter split. A step updates all parameters in one parallel region, over
// fixed chunks of at most 16K elements. Limits: f32 and f64 parameters (contiguous, as modules
// create them); no sparse gradients. Optimizer state is counted as MemoryCategory::optimizer_state.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "frugal/nn/module.h"
#include "frugal/tensor/tensor.h"

namespace frugal {
namespace optim {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

struct ParamGroup {
  std::string name;
  std::vector<Tensor> params;
  double weight_decay = 0;  // this group's decay (the optimizer options' value is not used for groups)
  double lr_scale = 1;      // group lr = optimizer lr * lr_scale
};

// "decay": weights of rank >= 2 (Linear, Conv, Embedding); "no_decay": biases, norm parameters and
// anything of rank < 2. Both groups are always returned (possibly empty), in the model's order.
std::vector<ParamGroup> default_param_groups(const nn::Module& model, double weight_decay);

// The decay / no_decay split, each part split further by learning-rate multiplier (lr_scale):
// `multipliers` are (glob pattern of parameter names, multiplier) (base/glob.h); a parameter takes
// the multiplier of the most specific pattern that matches it (the most characters other than * and
// ?), x1 when none does. Groups are "decay" then "no_decay", each in the order its multipliers
// first appear in the model ("decay" for x1, "decay lr x0.1" otherwise); empty groups are left out.
// Without multipliers: default_param_groups exactly. InputError naming the pattern when one matches
// no parameter, and the parameter when two equally specific patterns with different multipliers
// both match it.
std::vector<ParamGroup> param_groups_by_lr(const nn::Module& model, double weight_decay,
                                           const std::vector<std::pair<std::string, double>>& multipliers);

class Optimizer {
 public:
  Optimizer(std::vector<ParamGroup> groups, double lr);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient, under no_grad; then step_count() + 1.
  // Serial part: prepare() per parameter; then one parallel region runs update_chunk() over the
  // chunks, split statically by elements over the threads (elementwise: any split, same result).
  virtual void step();
  // Drops every gradient (PyTorch's set_to_none): the next backward writes fresh ones.
  void zero_grad();
  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  int64_t step_count() const { return step_count_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }

  // Everything a checkpoint needs for a bit-exact resume: "step_count" (i64), "lr" (f64) and
  // per-parameter buffers "param.<k>.<buffer>" with k counting parameters across groups. The
  // buffers are live handles (no copy): write them out before the next step.
  virtual NamedTensors state() const;
  // Restores state(); an unknown key, a bad index or a shape mismatch is an InputError.
  virtual void load_state(const NamedTensors& state);

 protected:
  // Serially, for each parameter k (global index) that has a gradient (contiguous, same dtype and
  // shape as param): creates its state if needed, advances its counters, and keeps the raw
  // pointers and scalars update_chunk() needs for this step.
  virtual void prepare(int64_t k, const ParamGroup& group, Tensor& param, const Tensor& grad) = 0;
  // Updates elements [begin, end) of parameter k as prepared; called in parallel for disjoint ranges.
  virtual void update_chunk(int64_t k, int64_t begin, int64_t end) = 0;
  // A per-parameter buffer of a subclass, indexed by k; undefined until the parameter's first update.
  struct BufferSlot {
    std::string name;
    std::vector<Tensor>* values;
    bool is_count;  // an i64 scalar per parameter (e.g. AdamW's step) rather than the parameter's shape
  };
  virtual std::vector<BufferSlot> buffers() = 0;
  int64_t num_params() const { return num_params_; }

 private:
  // A run of at most 16K elements of one parameter, aligned to the parameter's start.
  struct Chunk {
    int64_t param, begin, end;
  };
  std::vector<ParamGroup> groups_;
  double lr_;
  int64_t step_count_ = 0;
  int64_t num_params_ = 0;
  std::vector<Chunk> chunks_;             // over all parameters, in order; built once
  std::vector<int64_t> chunk_offsets_;    // element offset of each chunk over all parameters, then the total
  std::vector<uint8_t> has_grad_;         // per parameter, for the step under way
  std::vector<Tensor> step_grads_;        // the gradients (contiguous) held during a step
};

struct SgdOptions {
  double lr = 0.01;
  double momentum = 0;
  double dampening = 0;
  bool nesterov = false;
  double weight_decay = 0;  // used by the single-list constructor only
};

// PyTorch SGD: d = g + wd * p; with momentum, buf = d on the first step, then
// buf = momentum * buf + (1 - dampening) * d; d = nesterov ? d + momentum * buf : buf; p -= lr * d.
class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, const SgdOptions& options);
  SGD(std::vector<Tensor> params, const SgdOptions& options);
  const SgdOptions& options() const { return options_; }

 protected:
  void prepare(int64_t k, const ParamGroup& group, Tensor& param, const Tensor& grad) override;
  void update_chunk(int64_t k, int64_t begin, int64_t end) override;
  std::vector<BufferSlot> buffers() override;

 private:
  struct Prepared {  // one parameter's step
    DType dtype;
    void* param;
    const void* grad;
    void* buffer;  // null without momentum
    double lr, weight_decay;
    bool first;  // the momentum buffer starts as the first direction
  };
  SgdOptions options_;
  std::vector<Tensor> momentum_buffer_;
  std::vector<Prepared> prepared_;
};

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;  // used by the single-list constructor only
};

// PyTorch AdamW: p *= 1 - lr * wd; m = lerp(m, g, 1 - beta1); v = beta2 * v + (1 - beta2) g^2;
// p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps), t counted per parameter.
class AdamW : public Optimizer {
 public:
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options);
  AdamW(std::vector<Tensor> params, const AdamWOptions& options);
  const AdamWOptions& options() const { return options_; }

 protected:
  void prepare(int64_t k, const ParamGroup& group, Tensor& param, const Tensor& grad) override;
  void update_chunk(int64_t k, int64_t begin, int64_t end) override;
  std::vector<BufferSlot> buffers() override;

 private:
  struct Prepared {  // one parameter's step: pointers and the scalars of its update, in double
    DType dtype;
    void* param;
    const void* grad;
    void* exp_avg;
    void* exp_avg_sq;
    double decay, lerp_weight, beta2, keep2, bias_correction2_sqrt, eps, step;
  };
  AdamWOptions options_;
  std::vector<Tensor> exp_avg_, exp_avg_sq_, step_;  // step_: i64 scalar per parameter
  std::vector<Prepared> prepared_;
};

// Scales all gradients by max_norm / (norm + 1e-6) when that is < 1, norm being the global L2 norm
// over every gradient (accumulated in double over fixed 16K-element blocks of each gradient, the
// blocks' sums added in order: independent of thread count). One parallel region for the norm,
// one for the scaling. Parameters without a gradient are skipped. Returns the norm before clipping.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

}  // namespace optim
}  // namespace frugal
