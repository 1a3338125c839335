// Budgets: limits on dollars, energy, carbon and hours, checked against a run's running totals at
// each step. Warns once per limit at 50%, 80% and 100%, warns once when the current rate is on
// course to exceed a limit by the end, and reports exceeded() from 100% on. Limits: the forecast
// is linear in progress (total / fraction done), so one-off start-up costs make it pessimistic.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace frugal::cost {

struct BudgetLimits {
  std::optional<double> usd, kwh, co2_kg, hours;
  bool empty() const { return !usd && !kwh && !co2_kg && !hours; }
};

struct BudgetTotals {
  double usd = 0, kwh = 0, co2_kg = 0, hours = 0;
};

struct BudgetEvent {
  enum class Kind { threshold, forecast };
  Kind kind = Kind::threshold;
  std::string limit;       // "max_usd", "max_kwh", "max_co2_kg", "max_hours"
  double threshold = 0;    // 0.5, 0.8 or 1.0 for a threshold event; 1.0 for a forecast
  double value = 0;        // the running total now
  double forecast = 0;     // the total forecast at the end (0 when progress is unknown)
  std::string message;     // one line naming the limit, the value and the forecast
};

class Budget {
 public:
  // Each limit must be finite and > 0: InputError naming the key ([budget] max_usd ...).
  // Forecasts start once `forecast_after` of the run is done, when the rate means something.
  explicit Budget(BudgetLimits limits, double forecast_after = 0.05);

  // Feed the running totals and the fraction of the run done (0..1; <= 0 if unknown). Returns the
  // warnings that fire now; each (limit, threshold) and each limit's forecast fires at most once.
  // When one update crosses several thresholds only the highest is reported.
  std::vector<BudgetEvent> update(const BudgetTotals& totals, double progress);

  bool exceeded() const { return !exceeded_message_.empty(); }
  // Which limit was reached first, and by how much; empty while within budget.
  const std::string& exceeded_message() const { return exceeded_message_; }
  const BudgetLimits& limits() const { return limits_; }

  // Which warnings have fired, per limit, so a resumed run does not repeat them (a checkpoint
  // carries this). restore_fired takes back the entries whose key and limit are unchanged; a limit
  // that changed (a run resumed with a larger budget) starts its warnings afresh.
  struct Fired {
    std::string key;  // "max_usd", ...
    double limit = 0;
    int thresholds_done = 0;  // how many of 50%, 80%, 100% have fired
    bool forecast_done = false;
  };
  std::vector<Fired> fired() const;
  void restore_fired(const std::vector<Fired>& fired);

 private:
  struct Track {
    std::string key, unit;
    double limit = 0;
    int thresholds_done = 0;  // how many of 50%, 80%, 100% have fired
    bool forecast_done = false;
  };
  BudgetLimits limits_;
  double forecast_after_;
  std::vector<Track> tracks_;
  std::string exceeded_message_;
};

}  // namespace frugal::cost
