// Learning-rate schedules as closed forms of PyTorch's schedulers: lr_at(step) is the lr for the
// next optimizer step when `step` steps are done (0-based), so a resumed run needs only the step
// count (plus ReduceOnPlateau's state()). Limits: one lr per schedule (groups scale it by lr_scale).
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "frugal/tensor/tensor.h"

namespace frugal {
namespace optim {

class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  virtual double lr_at(int64_t step) const = 0;
  // A validation metric, for schedules that react to one (ReduceOnPlateau); others ignore it.
  virtual void observe(double metric) {}
  // State beyond the step count, for checkpoints (f64 scalars); empty for the closed forms.
  virtual std::vector<std::pair<std::string, Tensor>> state() const { return {}; }
  virtual void load_state(const std::vector<std::pair<std::string, Tensor>>& state);
};

// lr
class ConstantSchedule : public LrSchedule {
 public:
  explicit ConstantSchedule(double lr);
  double lr_at(int64_t step) const override { return lr_; }

 private:
  double lr_;
};

// StepLR: lr * gamma^floor(step / step_size)
class StepSchedule : public LrSchedule {
 public:
  StepSchedule(double lr, int64_t step_size, double gamma = 0.1);
  double lr_at(int64_t step) const override;

 private:
  double lr_;
  int64_t step_size_;
  double gamma_;
};

// ExponentialLR: lr * gamma^step
class ExponentialSchedule : public LrSchedule {
 public:
  ExponentialSchedule(double lr, double gamma);
  double lr_at(int64_t step) const override;

 private:
  double lr_, gamma_;
};

// Linear warmup then decay, as SequentialLR(LinearLR(start_factor = 1/W, total_iters = W),
// CosineAnnealingLR(T_max = S - W, eta_min) or LinearLR to lr_min), W = warmup_steps, S = total_steps:
//   s < W:       lr * (1/W + (1 - 1/W) * s / W)          (lr / W at step 0, lr at step W)
//   W <= s < S:  p = (s - W) / (S - W);  cosine: lr_min + (lr - lr_min) * (1 + cos(pi p)) / 2
//                                        linear: lr + (lr_min - lr) * p
//   s >= S:      lr_min
// W = 0 is plain cosine (or linear) annealing from lr.
class WarmupDecaySchedule : public LrSchedule {
 public:
  enum class Decay { cosine, linear };
  WarmupDecaySchedule(double lr, int64_t warmup_steps, int64_t total_steps, double lr_min = 0,
                      Decay decay = Decay::cosine);
  double lr_at(int64_t step) const override;

 private:
  double lr_;
  int64_t warmup_steps_, total_steps_;
  double lr_min_;
  Decay decay_;
};

// CosineAnnealingWarmRestarts: cycle i lasts T_i = T_0 * T_mult^i steps; with t steps into the
// current cycle, lr = eta_min + (lr - eta_min) * (1 + cos(pi * t / T_i)) / 2.
class CosineRestartsSchedule : public LrSchedule {
 public:
  CosineRestartsSchedule(double lr, int64_t t_0, int64_t t_mult = 1, double eta_min = 0);
  double lr_at(int64_t step) const override;

 private:
  double lr_;
  int64_t t_0_, t_mult_;
  double eta_min_;
};

// OneCycleLR (anneal_strategy "cos", three_phase false), lr = max_lr:
//   initial = max_lr / div_factor, final = initial / final_div_factor, E1 = pct_start * total - 1;
//   s <= E1: cos_anneal(initial, max_lr, s / E1);  else cos_anneal(max_lr, final, (s - E1) / (total - 1 - E1))
//   cos_anneal(a, b, p) = b + (a - b) / 2 * (1 + cos(pi p)).  Steps past total - 1 stay at `final`.
class OneCycleSchedule : public LrSchedule {
 public:
  OneCycleSchedule(double max_lr, int64_t total_steps, double pct_start = 0.3, double div_factor = 25,
                   double final_div_factor = 1e4);
  double lr_at(int64_t step) const override;

 private:
  double max_lr_, initial_lr_, final_lr_;
  int64_t total_steps_;
  double phase1_end_;
};

// ReduceLROnPlateau: after each evaluation observe(metric); when the metric has not improved for
// more than `patience` evaluations (improved: rel mode beyond best * (1 -+ threshold), abs mode
// beyond best -+ threshold), lr = max(lr * factor, min_lr), then `cooldown` evaluations are ignored.
struct PlateauOptions {
  std::string mode = "min";  // "min" (loss) or "max" (accuracy)
  double factor = 0.1;
  int64_t patience = 10;
  double threshold = 1e-4;
  std::string threshold_mode = "rel";  // "rel" or "abs"
  int64_t cooldown = 0;
  double min_lr = 0;
  double eps = 1e-8;  // reductions smaller than this are skipped
};

class PlateauSchedule : public LrSchedule {
 public:
  PlateauSchedule(double lr, const PlateauOptions& options = {});
  double lr_at(int64_t step) const override { return lr_; }
  void observe(double metric) override;
  // "lr", "best", "num_bad_epochs", "cooldown_counter", "last_epoch"
  std::vector<std::pair<std::string, Tensor>> state() const override;
  void load_state(const std::vector<std::pair<std::string, Tensor>>& state) override;

 private:
  bool is_better(double metric) const;
  PlateauOptions options_;
  double lr_;
  double best_;
  int64_t num_bad_epochs_ = 0, cooldown_counter_ = 0, last_epoch_ = 0;
};

// A schedule from a job file's [schedule] table. kind: constant, step, exponential, warmup_cosine,
// warmup_linear, cosine_restarts, one_cycle, plateau. Fields a kind does not use are ignored.
struct ScheduleConfig {
  std::string kind = "constant";
  double lr = 1e-3;           // base lr (max_lr for one_cycle)
  int64_t total_steps = 0;    // warmup_*, one_cycle
  int64_t warmup_steps = 0;   // warmup_*
  double lr_min = 0;          // warmup_*, cosine_restarts (eta_min)
  int64_t step_size = 1;      // step
  double gamma = 0.1;         // step, exponential
  int64_t t_0 = 1;            // cosine_restarts
  int64_t t_mult = 1;         // cosine_restarts
  double pct_start = 0.3, div_factor = 25, final_div_factor = 1e4;  // one_cycle
  PlateauOptions plateau;     // plateau
};
// Bad values throw InputError naming "schedule.<field>".
std::unique_ptr<LrSchedule> make_schedule(const ScheduleConfig& config);

}  // namespace optim
}  // namespace frugal
