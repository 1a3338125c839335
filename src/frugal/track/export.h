// `frugal runs export`: recorded runs as an MLflow file store (mlflow ui / MlflowClient read it) or
// as two CSV files (runs.csv, metrics.csv in long format, RFC 4180 quoting). Limits: metrics are
// the numbers of the rows and the summary (strings such as sources go to tags or CSV columns);
// no artifacts are copied (the artifact_uri names the run directory's place in the export only).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "frugal/track/run_store.h"

namespace frugal::track {

struct ExportRun {
  RunRecord record;
  std::vector<MetricRow> metrics;
  std::map<std::string, std::string> params;  // flattened job keys ("optimizer.lr" -> "0.001")
};

struct ExportCounts {
  int64_t runs = 0, metric_values = 0, files = 0;
};

// Writes into dir (created when missing): refuses (InputError) a non-empty dir that is not an
// export of the same kind; writing the same runs again gives the same files (idempotent).
// MLflow: experiment 0 "Default" and 1 "frugal", one run directory per run under 1/, its id a
// 32-hex digest of the frugal run id (stable across exports).
ExportCounts export_mlflow(const std::vector<ExportRun>& runs, const std::string& dir);
ExportCounts export_csv(const std::vector<ExportRun>& runs, const std::string& dir);

// The MLflow run id of a frugal run (32 lowercase hex digits).
std::string mlflow_run_id(const std::string& frugal_run_id);
// MLflow's RunStatus number: RUNNING 1, FINISHED 3, FAILED 4, KILLED 5 (stopped, preempted, interrupted).
int mlflow_status(const std::string& frugal_status);
// One CSV field quoted per RFC 4180 when it holds a comma, quote, CR or LF.
std::string csv_field(const std::string& text);

// A row's or summary's numbers as flat keys: nested objects joined with '.', a {"value", "source"}
// figure as its value under the object's key ("cost.usd"); strings and booleans left out.
std::map<std::string, double> flat_numbers(const std::string& json_object);

}  // namespace frugal::track
