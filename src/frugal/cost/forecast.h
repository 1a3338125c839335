// The forecast of a run's totals at its end (dollars, energy, carbon, wall time), from its running
// totals at logged steps: what is spent so far plus the remaining steps at the recent rate (the cost
// per step between the oldest and newest of the last few observations, so evaluation and checkpoint
// overheads inside that span are in the rate, and start-up costs are not). With one observation
// only (the first row of a process), the whole run's average per step. Limits: assumes the rest of
// the run costs what the recent steps did; per-hour billing makes dollars move in steps.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>

namespace frugal::cost {

struct ForecastTotals {
  double usd = 0, kwh = 0, co2_kg = 0, wall_s = 0;
};

struct RunForecast {
  ForecastTotals at_end;
  std::string method;  // one line: how at_end was computed, e.g. "spent + 500 remaining steps x ..."
};

class CostForecast {
 public:
  // window: how many observations the recent rate spans (>= 2).
  explicit CostForecast(int window = 8) : window_(window < 2 ? 2 : window) {}
  // The run's totals after `step` optimizer steps. Observations at the same or an earlier step than
  // the newest replace nothing and are ignored for the rate (an eval row after the train row).
  void observe(int64_t step, const ForecastTotals& spent);
  // The totals at total_steps; none when total_steps <= 0 or nothing was observed after step 0.
  std::optional<RunForecast> at_end(int64_t total_steps) const;

 private:
  struct Point {
    int64_t step;
    ForecastTotals spent;
  };
  int window_;
  std::deque<Point> points_;
};

}  // namespace frugal::cost
