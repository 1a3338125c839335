// Closed forms of PyTorch's LR schedulers (see schedule.h for each formula) and ReduceLROnPlateau.
#include "frugal/optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace frugal {
namespace optim {

namespace {
void require(bool ok, const std::string& message) {
  if (!ok) throw InputError(message);
}
void require_lr(double lr, const std::string& field) {
  require(std::isfinite(lr) && lr >= 0, field + " must be a finite non-negative number, got " + std::to_string(lr));
}
double cos_anneal(double start, double end, double pct) {
  return end + (start - end) / 2.0 * (std::cos(std::numbers::pi * pct) + 1.0);
}
}  // namespace

void LrSchedule::load_state(const std::vector<std::pair<std::string, Tensor>>& state) {
  if (!state.empty()) throw InputError("lr schedule state: unexpected key '" + state.front().first + "'");
}

ConstantSchedule::ConstantSchedule(double lr) : lr_(lr) { require_lr(lr, "schedule.lr"); }

StepSchedule::StepSchedule(double lr, int64_t step_size, double gamma) : lr_(lr), step_size_(step_size), gamma_(gamma) {
  require_lr(lr, "schedule.lr");
  require(step_size > 0, "schedule.step_size must be positive, got " + std::to_string(step_size));
  require_lr(gamma, "schedule.gamma");
}

double StepSchedule::lr_at(int64_t step) const { return lr_ * std::pow(gamma_, double(step / step_size_)); }

ExponentialSchedule::ExponentialSchedule(double lr, double gamma) : lr_(lr), gamma_(gamma) {
  require_lr(lr, "schedule.lr");
  require_lr(gamma, "schedule.gamma");
}

double ExponentialSchedule::lr_at(int64_t step) const { return lr_ * std::pow(gamma_, double(step)); }

WarmupDecaySchedule::WarmupDecaySchedule(double lr, int64_t warmup_steps, int64_t total_steps, double lr_min,
                                         Decay decay)
    : lr_(lr), warmup_steps_(warmup_steps), total_steps_(total_steps), lr_min_(lr_min), decay_(decay) {
  require_lr(lr, "schedule.lr");
  require_lr(lr_min, "schedule.lr_min");
  require(warmup_steps >= 0, "schedule.warmup_steps must be >= 0, got " + std::to_string(warmup_steps));
  require(total_steps > warmup_steps, "schedule.total_steps (" + std::to_string(total_steps) +
                                          ") must exceed schedule.warmup_steps (" + std::to_string(warmup_steps) + ")");
}

double WarmupDecaySchedule::lr_at(int64_t step) const {
  const double s = double(step), w = double(warmup_steps_);
  if (step < warmup_steps_) return lr_ * (1.0 / w + (1.0 - 1.0 / w) * s / w);
  if (step >= total_steps_) return lr_min_;
  const double progress = (s - w) / double(total_steps_ - warmup_steps_);
  if (decay_ == Decay::cosine) return lr_min_ + (lr_ - lr_min_) * (1.0 + std::cos(std::numbers::pi * progress)) / 2.0;
  return lr_ + (lr_min_ - lr_) * progress;
}

CosineRestartsSchedule::CosineRestartsSchedule(double lr, int64_t t_0, int64_t t_mult, double eta_min)
    : lr_(lr), t_0_(t_0), t_mult_(t_mult), eta_min_(eta_min) {
  require_lr(lr, "schedule.lr");
  require_lr(eta_min, "schedule.lr_min");
  require(t_0 >= 1, "schedule.t_0 must be >= 1, got " + std::to_string(t_0));
  require(t_mult >= 1, "schedule.t_mult must be >= 1, got " + std::to_string(t_mult));
}

double CosineRestartsSchedule::lr_at(int64_t step) const {
  // Integer cycle arithmetic: exact where PyTorch's log-based form can round at cycle edges.
  int64_t t_cur = step, t_i = t_0_;
  if (t_mult_ == 1) {
    t_cur = step % t_0_;
  } else {
    while (t_cur >= t_i) {
      t_cur -= t_i;
      t_i *= t_mult_;
    }
  }
  return eta_min_ + (lr_ - eta_min_) * (1.0 + std::cos(std::numbers::pi * double(t_cur) / double(t_i))) / 2.0;
}

OneCycleSchedule::OneCycleSchedule(double max_lr, int64_t total_steps, double pct_start, double div_factor,
                                   double final_div_factor)
    : max_lr_(max_lr), total_steps_(total_steps) {
  require_lr(max_lr, "schedule.lr");
  require(total_steps >= 2, "schedule.total_steps must be >= 2, got " + std::to_string(total_steps));
  require(pct_start > 0 && pct_start < 1, "schedule.pct_start must be in (0, 1), got " + std::to_string(pct_start));
  require(div_factor > 0, "schedule.div_factor must be positive");
  require(final_div_factor > 0, "schedule.final_div_factor must be positive");
  phase1_end_ = pct_start * double(total_steps) - 1.0;
  require(phase1_end_ > 0, "schedule.pct_start * schedule.total_steps must exceed 1 (the warmup phase is empty)");
  initial_lr_ = max_lr / div_factor;
  final_lr_ = initial_lr_ / final_div_factor;
}

double OneCycleSchedule::lr_at(int64_t step) const {
  if (step >= total_steps_ - 1) return final_lr_;
  const double s = double(step);
  if (s <= phase1_end_) return cos_anneal(initial_lr_, max_lr_, s / phase1_end_);
  return cos_anneal(max_lr_, final_lr_, (s - phase1_end_) / (double(total_steps_ - 1) - phase1_end_));
}

PlateauSchedule::PlateauSchedule(double lr, const PlateauOptions& options) : options_(options), lr_(lr) {
  require_lr(lr, "schedule.lr");
  require(options.mode == "min" || options.mode == "max",
          "schedule.mode must be \"min\" or \"max\", got \"" + options.mode + "\"");
  require(options.threshold_mode == "rel" || options.threshold_mode == "abs",
          "schedule.threshold_mode must be \"rel\" or \"abs\", got \"" + options.threshold_mode + "\"");
  require(options.factor >= 0 && options.factor < 1, "schedule.factor must be in [0, 1), got " +
                                                         std::to_string(options.factor));
  require(options.patience >= 0, "schedule.patience must be >= 0");
  require(options.cooldown >= 0, "schedule.cooldown must be >= 0");
  require_lr(options.min_lr, "schedule.min_lr");
  best_ = options.mode == "min" ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
}

bool PlateauSchedule::is_better(double a) const {
  const double t = options_.threshold;
  const bool rel = options_.threshold_mode == "rel";
  if (options_.mode == "min") return rel ? a < best_ * (1.0 - t) : a < best_ - t;
  return rel ? a > best_ * (t + 1.0) : a > best_ + t;
}

void PlateauSchedule::observe(double metric) {
  ++last_epoch_;
  if (is_better(metric)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    ++num_bad_epochs_;
  }
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    num_bad_epochs_ = 0;  // bad epochs during cooldown do not count
  }
  if (num_bad_epochs_ > options_.patience) {
    const double reduced = std::max(lr_ * options_.factor, options_.min_lr);
    if (lr_ - reduced > options_.eps) lr_ = reduced;
    cooldown_counter_ = options_.cooldown;
    num_bad_epochs_ = 0;
  }
}

std::vector<std::pair<std::string, Tensor>> PlateauSchedule::state() const {
  auto scalar = [](double v) { return Tensor::full({}, v, DType::f64); };
  return {{"lr", scalar(lr_)},
          {"best", scalar(best_)},
          {"num_bad_epochs", scalar(double(num_bad_epochs_))},
          {"cooldown_counter", scalar(double(cooldown_counter_))},
          {"last_epoch", scalar(double(last_epoch_))}};
}

void PlateauSchedule::load_state(const std::vector<std::pair<std::string, Tensor>>& state) {
  double lr = lr_, best = best_;
  int64_t bad = num_bad_epochs_, cooldown = cooldown_counter_, epoch = last_epoch_;
  for (const auto& [key, t] : state) {
    if (!t.defined() || t.numel() != 1)
      throw InputError("lr schedule state: '" + key + "' should be a scalar, got " +
                       (t.defined() ? shape_str(t.shape()) : std::string("no tensor")));
    const double v = t.item();
    if (key == "lr") lr = v;
    else if (key == "best") best = v;
    else if (key == "num_bad_epochs") bad = int64_t(v);
    else if (key == "cooldown_counter") cooldown = int64_t(v);
    else if (key == "last_epoch") epoch = int64_t(v);
    else throw InputError("lr schedule state: unexpected key '" + key + "'");
  }
  lr_ = lr, best_ = best, num_bad_epochs_ = bad, cooldown_counter_ = cooldown, last_epoch_ = epoch;
}

std::unique_ptr<LrSchedule> make_schedule(const ScheduleConfig& c) {
  if (c.kind == "constant") return std::make_unique<ConstantSchedule>(c.lr);
  if (c.kind == "step") return std::make_unique<StepSchedule>(c.lr, c.step_size, c.gamma);
  if (c.kind == "exponential") return std::make_unique<ExponentialSchedule>(c.lr, c.gamma);
  if (c.kind == "warmup_cosine")
    return std::make_unique<WarmupDecaySchedule>(c.lr, c.warmup_steps, c.total_steps, c.lr_min,
                                                 WarmupDecaySchedule::Decay::cosine);
  if (c.kind == "warmup_linear")
    return std::make_unique<WarmupDecaySchedule>(c.lr, c.warmup_steps, c.total_steps, c.lr_min,
                                                 WarmupDecaySchedule::Decay::linear);
  if (c.kind == "cosine_restarts") return std::make_unique<CosineRestartsSchedule>(c.lr, c.t_0, c.t_mult, c.lr_min);
  if (c.kind == "one_cycle")
    return std::make_unique<OneCycleSchedule>(c.lr, c.total_steps, c.pct_start, c.div_factor, c.final_div_factor);
  if (c.kind == "plateau") return std::make_unique<PlateauSchedule>(c.lr, c.plateau);
  throw InputError("schedule.kind: unknown schedule '" + c.kind +
                   "' (expected constant, step, exponential, warmup_cosine, warmup_linear, cosine_restarts, "
                   "one_cycle or plateau)");
}

}  // namespace optim
}  // namespace frugal
