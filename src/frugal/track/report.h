// `frugal report`: one self-contained HTML page (inline SVG and CSS, no script, no network) that
// shows one or more recorded runs side by side: curves against steps, wall time and dollars,
// throughput, phases, memory, the cost table with sources and, for two or more runs, the savings
// ledger (the `frugal compare` result of each later run against the first). The dashboard serves
// the same page for a finished run. Limits: reads what the run store holds; a run's curves are as
// dense as its logged rows.
#pragma once

#include <string>
#include <vector>

#include "frugal/track/run_store.h"

namespace frugal::track {

// One run to show: its record (job, status, summary JSON) and its metric rows in step order.
struct ReportRun {
  RunRecord record;
  std::vector<MetricRow> metrics;
};

struct ReportOptions {
  std::string title;  // "" = the runs' ids
  // The `frugal compare --json` object of runs[i + 1] against runs[0], one per later run (the
  // caller computes them: compare lives in cli/); empty = no ledger.
  std::vector<std::string> comparisons_json;
  // true: only the page's body content (no <html>/<head>), for the dashboard to embed and refresh:
  // a <style> block (every rule scoped to .frugal-report) then <div class="frugal-report">.
  bool fragment = false;
};

// The page. Everything the page shows is escaped; it references no file and no URL.
std::string report_html(const std::vector<ReportRun>& runs, const ReportOptions& options);

}  // namespace frugal::track
