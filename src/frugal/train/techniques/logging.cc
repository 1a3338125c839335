// Metric logging and progress (MetricLogging, builtin.h): train and eval rows in metrics.jsonl and
// the run store, the progress bar or lines, and the summary's train_loss.
#include <cmath>

#include "frugal/train/techniques/builtin.h"

namespace frugal::train {

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
        state.metrics.write(row);
        loss_window_ = 0;
        loss_window_count_ = 0;
        throughput_timer_.reset();
        throughput_samples_ = 0;
      }
      double seconds = throughput_timer_.seconds();
      state.progress.update(state.epoch, state.job.train.epochs, step, state.total_steps, last_train_loss_,
                            text ? "tok/s" : "samples/s",
                            seconds > 0 ? double(throughput_samples_) * tokens_per_sample / seconds : 0, state.wall_s());
      break;
    }
    case Event::evaluation_done: {
      const EvalMetrics& m = state.eval;
      nlohmann::json row = {{"kind", "eval"},      {"step", state.step},  {"epoch", state.epoch},
                            {"val_loss", m.loss}, {"time_s", state.wall_s()}};
      if (m.accuracy >= 0) row["val_accuracy"] = m.accuracy;
      if (m.bits_per_char >= 0) row["val_bits_per_char"] = m.bits_per_char;
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
