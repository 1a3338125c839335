// The few figures a run listing shows (cost, energy, carbon with their sources, wall time, quality,
// the latest step, loss and throughput), read from a finished run's summary or, while it runs, from
// its latest rows. Shared by the dashboard, /metrics and the exports. Limits: tolerates rows and
// summaries without these keys (older runs): a missing figure stays empty, never a guess.
#pragma once

#include <optional>
#include <string>

#include "frugal/track/run_store.h"

namespace frugal::track {

struct SourcedValue {
  double value = 0;
  std::string source;  // measured | estimated | catalog | user
};

struct RunFigures {
  std::optional<SourcedValue> usd, kwh, co2_kg;
  std::optional<double> wall_s;
  std::string quality_key;  // val_accuracy, test_accuracy, val_bits_per_char, ... ("" = none)
  std::optional<double> quality;
  std::optional<int64_t> step;
  std::optional<double> loss, samples_per_s, tokens_per_s;
};

// A finished run's figures come from its summary; a running run's from its latest train and eval
// rows (the "cost" object the rows carry, "time_s", "loss", "samples_per_s", "tokens_per_s").
RunFigures run_figures(const RunRecord& run, const std::optional<MetricRow>& last_train,
                       const std::optional<MetricRow>& last_eval);

// True when the status is final (not "running").
inline bool is_final_status(const std::string& status) { return status != "running"; }

}  // namespace frugal::track
