// The techniques every `frugal train` run is made of besides the bare loop, each switched on by its
// job keys: metric logging and progress, gradient clipping (train.clip_norm), fp16 loss scaling
// ([precision] mode = "fp16-mixed"), early stopping ([train.early_stopping]), a time limit
// (train.max_minutes), budgets ([budget], --budget-usd), preemption signals and checkpoints
// ([checkpoint]); always, a guard against a non-finite loss. One file each in this folder;
// positions within an event: technique.h's kOrder*.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "frugal/base/timer.h"
#include "frugal/cost/budget.h"
#include "frugal/cost/forecast.h"
#include "frugal/optim/loss_scaler.h"
#include "frugal/track/alert_sender.h"
#include "frugal/train/resume.h"
#include "frugal/train/technique.h"

namespace frugal::train {

// The built-in techniques the job switches on (the checkpoint techniques always: a preemption
// signal writes a checkpoint even with [checkpoint] enabled = false). InputError for bad limits
// or loss-scaling options, before anything is written. budget_usd replaces [budget] max_usd.
std::vector<std::unique_ptr<Technique>> make_builtin_techniques(const JobSpec& job, std::optional<double> budget_usd);

// metrics.jsonl rows and the progress line: a "train" row every train.log_every steps and at the
// last (mean loss of the micro-batches since the previous row, lr, throughput), an "eval" row and
// line per evaluation; the summary's train_loss. Its state: the loss window.
class MetricLogging : public Technique {
 public:
  std::string name() const override { return "logging"; }
  int order() const override { return kOrderLogging; }
  EventSet events() const override;
  void on(Event event, TrainState& state) override;
  void save_state(TechniqueState& out) const override;
  void load_state(const TechniqueState& in) override;

 private:
  double last_train_loss_ = NAN, loss_window_ = 0;
  int64_t loss_window_count_ = 0;
  Timer throughput_timer_;  // since the last train row (or the start of this process)
  int64_t throughput_samples_ = 0;
  // Not checkpointed: a resumed process forecasts from its own rows (the first from the whole
  // run's average), and the cost fields are wall-clock figures outside bit-exact resume anyway.
  cost::CostForecast forecast_;
  std::optional<cost::ForecastTotals> last_forecast_;

  void add_cost(nlohmann::json& row, TrainState& state);
  std::string cost_text(TrainState& state) const;
};

// Scales the global gradient norm down to max_norm (before_optimizer_step; not on skipped steps).
class GradientClipping : public Technique {
 public:
  explicit GradientClipping(double max_norm) : max_norm_(max_norm) {}
  std::string name() const override { return "clip"; }
  int order() const override { return kOrderClipping; }
  EventSet events() const override { return event_set({Event::before_optimizer_step}); }
  void on(Event event, TrainState& state) override;

 private:
  double max_norm_;
};

// A NaN or inf loss (any micro-batch) or gradient norm (when clipping computed it): the step is not
// applied, a checkpoint of the weights before it is written, and the run stops with exit 4
// (kExitNonfinite). Passive when a loss scaler owns non-finite steps (fp16-mixed skips them).
class NonfiniteGuard : public Technique {
 public:
  std::string name() const override { return "nonfinite_guard"; }
  int order() const override { return kOrderNonfiniteGuard; }
  EventSet events() const override;
  void on(Event event, TrainState& state) override;

 private:
  bool passive_ = false;
  std::optional<double> bad_loss_;  // the first non-finite loss of this step's micro-batches
};

// fp16-mixed: dynamic loss scaling as PyTorch's GradScaler (optim/loss_scaler.h): scales the loss,
// unscales the gradients before anything reads them, skips a step with inf/NaN gradients.
class LossScaling : public Technique {
 public:
  explicit LossScaling(const optim::LossScalerOptions& options) : scaler_(options) {}
  std::string name() const override { return "loss_scaler"; }
  int order() const override { return kOrderLossScaling; }
  EventSet events() const override;
  void on(Event event, TrainState& state) override;
  void save_state(TechniqueState& out) const override;
  void load_state(const TechniqueState& in) override;

 private:
  optim::DynamicLossScaler scaler_;
  int overflow_lines_ = 0;  // printed by this process (the first few; the summary counts all)
};

// Stops when the watched validation metric has not improved for `patience` evaluations; keeps the
// best weights and restores them at fit_end when restore_best.
class EarlyStopping : public Technique {
 public:
  explicit EarlyStopping(const EarlyStopSpec& spec) : spec_(spec) {}
  std::string name() const override { return "early_stopping"; }
  int order() const override { return kOrderEarlyStopping; }
  EventSet events() const override;
  void on(Event event, TrainState& state) override;
  void save_state(TechniqueState& out) const override;
  void load_state(const TechniqueState& in) override;

 private:
  EarlyStopSpec spec_;
  double best_metric_ = NAN;
  int64_t best_step_ = -1, evals_without_improvement_ = 0;
  std::vector<std::pair<std::string, Tensor>> best_state_;  // copies of the model's state at best_step_
};

// Stops the run (completed, stop_reason "time_limit") once its wall time passes the limit.
class TimeLimit : public Technique {
 public:
  explicit TimeLimit(double max_minutes) : max_minutes_(max_minutes) {}
  std::string name() const override { return "time_limit"; }
  int order() const override { return kOrderTimeLimit; }
  EventSet events() const override { return event_set({Event::step_end}); }
  void on(Event event, TrainState& state) override;

 private:
  double max_minutes_;
};

// SIGTERM, SIGINT or SIGUSR1 (base/signals.h): a checkpoint at this step boundary, then exit 75.
class Preemption : public Technique {
 public:
  std::string name() const override { return "preemption"; }
  int order() const override { return kOrderPreemption; }
  EventSet events() const override { return event_set({Event::step_end, Event::run_end}); }
  void on(Event event, TrainState& state) override;

 private:
  bool stopped_ = false;
};

// [budget]: warnings at 50/80/100% and on a forecast overrun (metrics rows and lines); at a limit,
// a checkpoint and exit 3. Its state: which warnings fired, so a resumed run does not repeat them.
class BudgetGuard : public Technique {
 public:
  explicit BudgetGuard(const cost::BudgetLimits& limits) : budget_(limits) {}
  std::string name() const override { return "budget"; }
  int order() const override { return kOrderBudget; }
  EventSet events() const override { return event_set({Event::step_end, Event::run_end}); }
  void on(Event event, TrainState& state) override;
  void save_state(TechniqueState& out) const override;
  void load_state(const TechniqueState& in) override;

 private:
  cost::Budget budget_;
};

// [alerts] (job_alerts.h; the user config's too): the budget's warnings of each step (threshold,
// forecast, exceeded: state.budget_events, set by BudgetGuard before it) and the run's end with its
// status (run_end: completed, preempted, stopped_budget, ...; run_failed: failed), as a JSON payload
// to a webhook and/or a command hook, delivered off the training thread (track/alert_sender.h). No
// state of its own: a warning sent before a checkpoint does not fire again after a resume because
// the budget's fired warnings are in the checkpoint; one fired after it fires again for work redone.
class Alerts : public Technique {
 public:
  explicit Alerts(track::AlertConfig config);
  std::string name() const override { return "alerts"; }
  int order() const override { return kOrderAlerts; }
  EventSet events() const override { return event_set({Event::step_end, Event::run_end, Event::run_failed}); }
  void on(Event event, TrainState& state) override;

 private:
  void send(TrainState& state, const std::string& event, const std::string& status, const std::string& message,
            const nlohmann::json& extra);
  std::unique_ptr<track::AlertSender> sender_;
};

// [checkpoint]: when to write one (every N steps, each epoch, every T seconds or Young/Daly's
// interval), and on every stop that asks for one; the heartbeat that measures lost work; the
// summary's checkpoint figures. Its state: the number of checkpoints written.
class Checkpointing : public Technique {
 public:
  explicit Checkpointing(const CheckpointSpec& spec) : spec_(spec) {}
  std::string name() const override { return "checkpointing"; }
  int order() const override { return kOrderCheckpointing; }
  EventSet events() const override { return event_set({Event::run_start, Event::step_end, Event::run_end}); }
  void on(Event event, TrainState& state) override;
  void save_state(TechniqueState& out) const override;
  void load_state(const TechniqueState& in) override;

 private:
  bool due(const TrainState& state) const;
  bool agreed_due(const TrainState& state) const;
  void write(TrainState& state);

  CheckpointSpec spec_;
  Heartbeat heartbeat_;
  int64_t written_ = 0, written_this_process_ = 0;  // all processes / this one
  double last_bytes_ = 0;
  double auto_interval_s_ = -1;  // interval = "auto": seconds of work between checkpoints, once measured
  Timer since_checkpoint_;
};

}  // namespace frugal::train
