// GET /metrics: the run store in the Prometheus text format 0.0.4. Totals sum finished runs'
// summaries and running runs' latest rows (rows without a "cost" object add nothing); per running
// run its step, loss, throughput and cost so far. Limits: reads every run of the store per scrape
// (fine for thousands of runs; a scrape interval of seconds is assumed).
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>

#include "frugal/track/dashboard.h"
#include "frugal/track/run_figures.h"

namespace frugal::track {
namespace {

constexpr int64_t kMaxRuns = 100000;

std::string number_text(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buffer[40];  // the shortest text that reads back as the same double
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
  return std::string(buffer, ec == std::errc() ? end : buffer);
}

void family(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

std::string prometheus_label_value(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string prometheus_text(RunStore& store) {
  std::map<std::string, int64_t> by_status = {{"running", 0}, {"completed", 0}};
  double usd = 0, kwh = 0, co2_kg = 0;
  struct Live {
    std::string labels;
    RunFigures figures;
  };
  std::vector<Live> live;
  for (const RunRecord& run : store.list_runs(kMaxRuns)) {
    ++by_status[run.status];
    RunFigures f;
    if (run.status == "running") {
      f = run_figures(run, store.last_metric(run.run_id, "train"), store.last_metric(run.run_id, "eval"));
      live.push_back({"run_id=\"" + prometheus_label_value(run.run_id) + "\",name=\"" +
                          prometheus_label_value(run.name) + "\"",
                      f});
    } else {
      f = run_figures(run, std::nullopt, std::nullopt);
    }
    if (f.usd) usd += f.usd->value;
    if (f.kwh) kwh += f.kwh->value;
    if (f.co2_kg) co2_kg += f.co2_kg->value;
  }
  std::string out;
  family(out, "frugal_runs", "gauge", "Runs in the store by status (interrupted: running with its process gone).");
  for (const auto& [status, count] : by_status)
    out += "frugal_runs{status=\"" + prometheus_label_value(status) + "\"} " + std::to_string(count) + "\n";
  family(out, "frugal_cost_usd_total", "counter", "Dollars of all runs: finished runs' totals plus running runs' so far.");
  out += "frugal_cost_usd_total " + number_text(usd) + "\n";
  family(out, "frugal_energy_kwh_total", "counter", "Energy of all runs in kWh (finished plus running so far).");
  out += "frugal_energy_kwh_total " + number_text(kwh) + "\n";
  family(out, "frugal_carbon_kg_total", "counter", "Carbon of all runs in kg CO2e (finished plus running so far).");
  out += "frugal_carbon_kg_total " + number_text(co2_kg) + "\n";
  using Getter = std::optional<double> (*)(const RunFigures&);
  const std::tuple<const char*, const char*, Getter> per_run[] = {
      {"frugal_run_step", "The latest logged step of a running run.",
       [](const RunFigures& f) { return f.step ? std::optional<double>(double(*f.step)) : std::nullopt; }},
      {"frugal_run_loss", "The latest logged training loss of a running run.",
       [](const RunFigures& f) { return f.loss; }},
      {"frugal_run_samples_per_second", "Training throughput of a running run (samples per second).",
       [](const RunFigures& f) { return f.samples_per_s; }},
      {"frugal_run_tokens_per_second", "Training throughput of a running text run (tokens per second).",
       [](const RunFigures& f) { return f.tokens_per_s; }},
      {"frugal_run_cost_usd", "Dollars a running run has cost so far (from its latest row).",
       [](const RunFigures& f) { return f.usd ? std::optional<double>(f.usd->value) : std::nullopt; }},
  };
  for (const auto& [name, help, get] : per_run) {
    family(out, name, "gauge", help);
    for (const Live& l : live)
      if (std::optional<double> v = get(l.figures)) out += std::string(name) + "{" + l.labels + "} " + number_text(*v) + "\n";
  }
  return out;
}

}  // namespace frugal::track
