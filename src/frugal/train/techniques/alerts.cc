// Alerts on the loop's events (Alerts, builtin.h): budget warnings at step_end (after BudgetGuard),
// the run's end at run_end and run_failed, each as one JSON payload queued on the alert sender
// (track/alert_sender.h), which delivers it off the training thread.
#include <ctime>

#include "frugal/base/format.h"
#include "frugal/train/techniques/builtin.h"

namespace frugal::train {

namespace {

const char* budget_event_name(const cost::BudgetEvent& e) {
  if (e.kind == cost::BudgetEvent::Kind::forecast) return "budget_forecast";
  return e.threshold >= 1.0 ? "budget_exceeded" : "budget_threshold";
}

}  // namespace

Alerts::Alerts(track::AlertConfig config) : sender_(std::make_unique<track::AlertSender>(std::move(config))) {}

// The payload (README, "[alerts]"): event, run_id, job, status, step, total_steps, the cost so far
// with its sources, a message, the time (UTC), and the event's own fields.
void Alerts::send(TrainState& state, const std::string& event, const std::string& status, const std::string& message,
                  const nlohmann::json& extra) {
  const cost::CostTotals c = state.meter.totals();
  nlohmann::json payload = {{"event", event},
                            {"run_id", state.run_id},
                            {"job", state.job.run.name},
                            {"status", status},
                            {"step", state.step},
                            {"total_steps", state.total_steps},
                            {"cost", {{"usd", figure_json(c.usd)}, {"kwh", figure_json(c.kwh)}, {"co2_kg", figure_json(c.co2_kg)},
                                      {"hours", figure_json(c.hours)}}},
                            {"message", message},
                            {"time", utc_time(double(std::time(nullptr)), "%Y-%m-%dT%H:%M:%SZ")}};
  for (const auto& [key, value] : extra.items()) payload[key] = value;
  sender_->send({event, state.run_id, status, payload.dump()});
}

void Alerts::on(Event event, TrainState& state) {
  switch (event) {
    case Event::step_end:
      for (const cost::BudgetEvent& e : state.budget_events)
        send(state, budget_event_name(e), "running", e.message,
             {{"budget", {{"limit", e.limit}, {"threshold", e.threshold}, {"value", e.value}, {"forecast", e.forecast}}}});
      break;
    case Event::run_end: {
      const RunSummary& s = *state.summary;
      std::string message = "run " + s.status + " (" + s.stop_reason + ") at step " + std::to_string(s.steps) + " of " +
                            std::to_string(state.total_steps);
      if (state.stop && !state.stop->message.empty()) message += ": " + state.stop->message;
      send(state, "run_end", s.status, message, {{"stop_reason", s.stop_reason}});
      break;
    }
    case Event::run_failed:
      send(state, "run_end", "failed", "run failed at step " + std::to_string(state.step) + ": " + state.error,
           {{"stop_reason", "error"}, {"error", state.error}});
      break;
    default:
      break;
  }
}

}  // namespace frugal::train
