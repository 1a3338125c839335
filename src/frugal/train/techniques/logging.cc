// Metric logging and progress (MetricLogging, builtin.h): train and eval rows in metrics.jsonl and
// the run store, with the run's cost so far and its forecast at the end (cost/forecast.h), the
// progress bar or lines, and the summary's train_loss. The energy meter is sampled at row time only
// (the loop samples it again before step_end), so the cost fields cost nothing on other steps.
#include <cmath>

#include "frugal/base/units.h"
#include "frugal/train/techniques/builtin.h"

namespace frugal::train {

// The row contract (README, "metrics.jsonl"): "cost" holds the whole run's totals so far, earlier
// processes included; "forecast" the estimated totals at the end, when the run length is known.
void MetricLogging::add_cost(nlohmann::json& row, TrainState& state) {
  state.meter.sample();  // energy up to now, not to the previous step_end
  const cost::CostTotals c = state.meter.totals();
  row["cost"] = {{"usd", figure_json(c.usd)}, {"kwh", figure_json(c.kwh)}, {"co2_kg", figure_json(c.co2_kg)}};
  forecast_.observe(state.step, {c.usd.value, c.kwh.value, c.co2_kg.value, c.wall_s});
  if (std::optional<cost::RunForecast> f = forecast_.at_end(state.total_steps)) {
    row["forecast"] = {{"usd", f->at_end.usd},       {"kwh", f->at_end.kwh},       {"co2_kg", f->at_end.co2_kg},
                       {"wall_s", f->at_end.wall_s}, {"method", f->method}};
    last_forecast_ = f->at_end;
  }
}

// "$0.0031->$0.0062 0.41 Wh": dollars so far and at the end, and the energy so far; on a free
// instance the energy so far and at the end. Short: the progress line stays within 100 columns.
std::string MetricLogging::cost_text(TrainState& state) const {
  const cost::CostTotals c = state.meter.totals();
  if (last_forecast_ && last_forecast_->usd > 0)
    return usd_text(c.usd.value) + "->" + usd_text(last_forecast_->usd) + " " + energy_text(c.kwh.value);
  if (c.usd.value > 0) return usd_text(c.usd.value) + " " + energy_text(c.kwh.value);
  if (last_forecast_) return energy_text(c.kwh.value) + "->" + energy_text(last_forecast_->kwh);
  return energy_text(c.kwh.value);
}

EventSet MetricLogging::events() const {
  return train::event_set(
      {Event::run_start, Event::after_backward, Event::after_optimizer_step, Event::evaluation_done, Event::run_end});
}

void MetricLogging::on(Event event, TrainState& state) {
  const bool text = state.data.is_text;
  const double tokens_per_sample = text ? double(state.job.model.gpt.context) : 1.0;
  switch (event) {
    case Event::run_start:
      throughput_timer_.reset();  // the first row's rate counts training, not the set-up before it
      break;
    case Event::after_backward:
      // fp16-mixed: a non-finite loss belongs to a skipped step and stays out of the mean.
      if (std::isfinite(state.loss_value)) {
        loss_window_ += state.loss_value;
        ++loss_window_count_;
      }
      throughput_samples_ += state.batch.inputs.size(0);
      break;
    case Event::after_optimizer_step: {
      const int64_t step = state.step;
      if (step % state.job.train.log_every == 0 || step == state.total_steps) {
        double elapsed = throughput_timer_.seconds();
        double rate = elapsed > 0 ? double(throughput_samples_) / elapsed : 0;
        if (loss_window_count_) last_train_loss_ = loss_window_ / double(loss_window_count_);
        nlohmann::json row = {{"kind", "train"}, {"step", step},
                              {"epoch", state.epoch}, {"loss", last_train_loss_},
                              {"lr", state.optimizer.lr()}, {"samples_per_s", rate},
                              {"time_s", state.wall_s()}};
        if (text) row["tokens_per_s"] = rate * tokens_per_sample;
        add_cost(row, state);
        state.metrics.write(row);
        loss_window_ = 0;
        loss_window_count_ = 0;
        throughput_timer_.reset();
        throughput_samples_ = 0;
      }
      const double wall_s = state.wall_s();
      if (!state.progress.due(step, state.total_steps, wall_s)) break;  // nothing drawn: nothing computed
      double seconds = throughput_timer_.seconds();
      state.progress.update(state.epoch, state.job.train.epochs, step, state.total_steps, last_train_loss_,
                            text ? "tok/s" : "samples/s",
                            seconds > 0 ? double(throughput_samples_) * tokens_per_sample / seconds : 0, wall_s,
                            cost_text(state));
      break;
    }
    case Event::evaluation_done: {
      const EvalMetrics& m = state.eval;
      nlohmann::json row = {{"kind", "eval"},      {"step", state.step},  {"epoch", state.epoch},
                            {"val_loss", m.loss}, {"time_s", state.wall_s()}};
      if (m.accuracy >= 0) row["val_accuracy"] = m.accuracy;
      if (m.bits_per_char >= 0) row["val_bits_per_char"] = m.bits_per_char;
      add_cost(row, state);
      state.metrics.write(row);
      std::string line = "eval step " + std::to_string(state.step) + ": val_loss " + Progress::fixed(m.loss, 4);
      if (m.accuracy >= 0) line += ", val_accuracy " + Progress::fixed(100 * m.accuracy, 2) + "%";
      if (m.bits_per_char >= 0) line += ", val_bits_per_char " + Progress::fixed(m.bits_per_char, 3);
      state.progress.line(line);
      break;
    }
    case Event::run_end:
      state.summary->metrics.train_loss = last_train_loss_;
      break;
    default:
      break;
  }
}

void MetricLogging::save_state(TechniqueState& out) const {
  out.put("last_train_loss", last_train_loss_);
  out.put("loss_window", loss_window_);
  out.put("loss_window_count", loss_window_count_);
}

void MetricLogging::load_state(const TechniqueState& in) {
  if (in.empty()) in.fail("missing (the checkpoint has no logged-loss window)");
  last_train_loss_ = in.real("last_train_loss");
  loss_window_ = in.real("loss_window");
  loss_window_count_ = in.integer("loss_window_count");
}

}  // namespace frugal::train
