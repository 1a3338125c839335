// The built-in techniques a job switches on (make_builtin_techniques, builtin.h). Adding one: its
// file in this folder, its line here, its job keys in job.cc and the README's job-file reference.
#include "frugal/train/techniques/builtin.h"

#include "frugal/train/job_alerts.h"

namespace frugal::train {

std::vector<std::unique_ptr<Technique>> make_builtin_techniques(const JobSpec& job, std::optional<double> budget_usd) {
  std::vector<std::unique_ptr<Technique>> out;
  out.push_back(std::make_unique<MetricLogging>());
  if (job.precision.mode == Precision::fp16_mixed) {
    optim::LossScalerOptions scaling;
    scaling.init_scale = job.precision.loss_scale_init;
    scaling.growth_interval = job.precision.loss_scale_growth_interval;
    scaling.growth_factor = job.precision.loss_scale_growth_factor;
    scaling.backoff_factor = job.precision.loss_scale_backoff_factor;
    out.push_back(std::make_unique<LossScaling>(scaling));
  }
  if (job.train.clip_norm > 0) out.push_back(std::make_unique<GradientClipping>(job.train.clip_norm));
  if (job.train.early_stopping.enabled) out.push_back(std::make_unique<EarlyStopping>(job.train.early_stopping));
  if (job.train.max_minutes > 0) out.push_back(std::make_unique<TimeLimit>(job.train.max_minutes));
  cost::BudgetLimits limits{job.budget.max_usd, job.budget.max_kwh, job.budget.max_co2_kg, job.budget.max_hours};
  if (budget_usd) limits.usd = budget_usd;
  if (!limits.empty()) out.push_back(std::make_unique<BudgetGuard>(limits));
  out.push_back(std::make_unique<NonfiniteGuard>());  // passive under a loss scaler
  out.push_back(std::make_unique<Preemption>());
  out.push_back(std::make_unique<Checkpointing>(job.checkpoint));
  if (track::AlertConfig alerts = alert_config(job); !alerts.empty())
    out.push_back(std::make_unique<Alerts>(std::move(alerts)));
  return out;
}

}  // namespace frugal::train
