// Budgets on the loop's events (BudgetGuard, builtin.h): the run's cost totals are checked after every
// step; warnings go to the progress output and metrics.jsonl; at a limit before the last step, a
// checkpoint and exit 3 (status stopped_budget), to be resumed with a larger budget.
#include "frugal/train/techniques/builtin.h"

namespace frugal::train {

void BudgetGuard::on(Event event, TrainState& state) {
  if (event == Event::run_end) {
    const cost::BudgetLimits& limits = budget_.limits();
    state.summary->budget = BudgetSummary{limits.usd, limits.kwh, limits.co2_kg, limits.hours,
                                          budget_.exceeded() ? budget_.exceeded_message() : std::string()};
    return;
  }
  const cost::CostTotals c = state.meter.totals();  // sampled by the loop before step_end
  const double done = state.total_steps > 0 ? double(state.step) / double(state.total_steps) : -1.0;
  state.budget_events = budget_.update({c.usd.value, c.kwh.value, c.co2_kg.value, c.hours.value}, done);
  for (const cost::BudgetEvent& e : state.budget_events) {
    state.progress.line(e.message);  // "budget: 50% of ...", "budget exceeded: ...", "budget forecast: ..."
    state.metrics.write({{"kind", "budget"},
                         {"step", state.step},
                         {"event", e.kind == cost::BudgetEvent::Kind::forecast ? "forecast" : "threshold"},
                         {"limit", e.limit},
                         {"threshold", e.threshold},
                         {"value", e.value},
                         {"forecast", e.forecast},
                         {"message", e.message},
                         {"time_s", state.wall_s()}});
  }
  // At the last step the run is done anyway; before it, stop at this step boundary.
  if (!budget_.exceeded() || !state.continuing()) return;
  StopRequest stop{"stopped_budget", "budget", kExitBudget, /*checkpoint=*/true,
                   budget_.exceeded_message() + "; checkpoint written at step " + std::to_string(state.step) +
                 "; stopping (exit " + std::to_string(kExitBudget) + "); continue with --resume auto and a larger budget"};
  state.request_stop(stop);
}

void BudgetGuard::save_state(TechniqueState& out) const {
  for (const cost::Budget::Fired& f : budget_.fired()) {
    out.put(f.key + ".limit", f.limit);
    out.put(f.key + ".thresholds_done", int64_t(f.thresholds_done));
    out.put(f.key + ".forecast_done", int64_t(f.forecast_done));
  }
}

void BudgetGuard::load_state(const TechniqueState& in) {
  // Absent in checkpoints written before budgets kept their state: warnings may then repeat.
  std::vector<cost::Budget::Fired> fired;
  for (const char* key : {"max_usd", "max_kwh", "max_co2_kg", "max_hours"}) {
    const std::string k = key;
    if (!in.has(k + ".limit")) continue;
    fired.push_back({k, in.real(k + ".limit"), int(in.integer(k + ".thresholds_done")),
                     in.integer(k + ".forecast_done") != 0});
  }
  budget_.restore_fired(fired);
}

}  // namespace frugal::train
