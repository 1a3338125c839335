// The end-of-run forecast; see forecast.h.
#include "frugal/cost/forecast.h"

namespace frugal::cost {

void CostForecast::observe(int64_t step, const ForecastTotals& spent) {
  if (!points_.empty() && step <= points_.back().step) {
    points_.back().spent = spent;  // the same step later (an evaluation): the newest totals count
    return;
  }
  points_.push_back({step, spent});
  while (int(points_.size()) > window_) points_.pop_front();
}

std::optional<RunForecast> CostForecast::at_end(int64_t total_steps) const {
  if (total_steps <= 0 || points_.empty() || points_.back().step <= 0) return std::nullopt;
  const Point& last = points_.back();
  const int64_t remaining = total_steps > last.step ? total_steps - last.step : 0;
  // The rate: the recent span when there is one, else the whole run's average from step 0.
  const bool recent = points_.size() >= 2;
  const Point from = recent ? points_.front() : Point{0, {}};
  const double steps = double(last.step - from.step);
  auto project = [&](double now, double then) { return now + double(remaining) * (now - then) / steps; };
  RunForecast f;
  f.at_end.usd = project(last.spent.usd, from.spent.usd);
  f.at_end.kwh = project(last.spent.kwh, from.spent.kwh);
  f.at_end.co2_kg = project(last.spent.co2_kg, from.spent.co2_kg);
  f.at_end.wall_s = project(last.spent.wall_s, from.spent.wall_s);
  f.method = "spent so far + " + std::to_string(remaining) + " remaining steps at the cost per step of " +
             (recent ? "steps " + std::to_string(from.step) + "-" + std::to_string(last.step) + " (recent rate)"
                     : "the run so far (" + std::to_string(last.step) + " steps)");
  return f;
}

}  // namespace frugal::cost
