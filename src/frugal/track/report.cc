// The report page (report.h): the runs' headers, curves, throughput, phases, memory, cost table and
// savings ledger as one HTML document with inline CSS and SVG. Limits: reads the summary and row
// JSON leniently (a missing or mistyped key shows as "n/a", never an exception); no script.
#include "frugal/track/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "frugal/base/units.h"
#include "frugal/track/svg.h"

namespace frugal::track {
namespace {

using json = nlohmann::json;

const char* kCss = R"(
.frugal-report{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b;max-width:1320px;margin:0 auto;padding:12px}
.frugal-report h1{font-size:1.4em;margin:.2em 0 .6em}
.frugal-report h2{font-size:1.15em;margin:1.4em 0 .5em;border-bottom:1px solid #ccc;padding-bottom:.2em}
.frugal-report .runs,.frugal-report .charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:12px}
.frugal-report .charts{grid-template-columns:repeat(auto-fill,minmax(480px,1fr))}
.frugal-report .run{border:1px solid #ccc;border-left:6px solid var(--c);border-radius:4px;padding:8px 10px;overflow-wrap:anywhere}
.frugal-report .run h3{margin:0 0 .3em;font-size:1em}
.frugal-report dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 10px;margin:0}
.frugal-report dt{color:#555}.frugal-report dd{margin:0}
.frugal-report figure{margin:0;border:1px solid #e2e2e2;border-radius:4px;padding:4px;break-inside:avoid}
.frugal-report svg{width:100%;height:auto;display:block}
.frugal-report svg text{font:11px system-ui,sans-serif;fill:#222}
.frugal-report svg .chart-title{font-size:13px;font-weight:600}
.frugal-report svg .axis-label{font-size:12px}
.frugal-report svg .grid{stroke:#e6e6e6}
.frugal-report svg .frame{fill:none;stroke:#888}
.frugal-report figcaption{font-size:12px;color:#555;padding:2px 6px}
.frugal-report .table-wrap{overflow-x:auto}
.frugal-report table{border-collapse:collapse;margin:.3em 0 1em;font-size:13px}
.frugal-report th,.frugal-report td{border:1px solid #d4d4d4;padding:3px 8px;text-align:left;vertical-align:top}
.frugal-report th{background:#f3f3f3}
.frugal-report td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.frugal-report td.method{min-width:22em;font-size:12px;color:#444}
.frugal-report .source{color:#666;font-size:11px;margin-left:4px}
.frugal-report .status-running{color:#b36b00}.frugal-report .status-failed{color:#b00020}
.frugal-report .verdict{font-weight:600}
.frugal-report .empty{color:#777;font-style:italic}
@media (max-width:600px){.frugal-report{padding:6px;font-size:13px}.frugal-report .runs,.frugal-report .charts{grid-template-columns:1fr}
.frugal-report svg text{font-size:17px}.frugal-report svg .chart-title{font-size:19px}.frugal-report svg .axis-label{font-size:17px}}
@media print{.frugal-report{max-width:none;padding:0;font-size:11px}.frugal-report .charts{grid-template-columns:1fr 1fr}
.frugal-report h2{break-after:avoid}.frugal-report figure,.frugal-report table,.frugal-report .run{break-inside:avoid}
.frugal-report .table-wrap{overflow:visible}.frugal-report figcaption{font-size:9px}
.frugal-report svg text{font-size:15px}.frugal-report svg .chart-title{font-size:17px}.frugal-report svg .axis-label{font-size:15px}}
)";

std::string e(const std::string& s) { return html_escape(s); }

// Lenient readers: a number or NaN, a string or "".
double number_at(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return NAN;
  return j[key].get<double>();
}
std::string string_at(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return "";
  return j[key].get<std::string>();
}
// A {value, source} figure's value (NaN when absent) and source.
double figure_value(const json& j, const char* key) { return j.is_object() && j.contains(key) ? number_at(j[key], "value") : NAN; }
std::string figure_source(const json& j, const char* key) { return j.is_object() && j.contains(key) ? string_at(j[key], "source") : ""; }

std::string bytes_text(double bytes) {
  if (!std::isfinite(bytes)) return "n/a";
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) bytes /= 1024, ++u;
  return significant_text(bytes, 3) + " " + units[u];
}

std::string or_na(double v, std::string (*text)(double)) { return std::isfinite(v) ? text(v) : "n/a"; }

// One run as the page uses it: parsed summary and rows, and what the curves plot.
struct View {
  const ReportRun* run;
  json summary;  // {} when the run has none yet
  std::vector<json> train, eval;
  int style = 0;
};

// The validation metric the curves show: the first of these that any run's eval rows hold.
struct Quality {
  const char* key;
  const char* label;
  double scale;  // 100 for a percentage
};
Quality pick_quality(const std::vector<View>& views) {
  const Quality choices[] = {{"val_accuracy", "Validation accuracy (%)", 100},
                             {"val_bits_per_char", "Validation bits per char", 1},
                             {"val_loss", "Validation loss", 1}};
  for (const Quality& q : choices)
    for (const View& v : views)
      for (const json& row : v.eval)
        if (std::isfinite(number_at(row, q.key))) return q;
  return choices[2];
}

// The dollars of a row: its "cost" (the live-cost rows) or, for older rows, time_s x the summary's
// price per hour; *derived says which.
double row_usd(const json& row, const View& v, bool* derived) {
  if (row.contains("cost") && row["cost"].is_object()) {
    double usd = figure_value(row["cost"], "usd");
    if (std::isfinite(usd)) return usd;
  }
  *derived = true;
  const double per_hour = v.summary.contains("cost") ? number_at(v.summary["cost"], "usd_per_hour") : NAN;
  return number_at(row, "time_s") * per_hour / 3600;  // NaN without a price (no summary yet): not plotted
}

// The energy of a row in Wh, from its "cost" (live-cost rows); NaN for older rows (not plotted).
double row_wh(const json& row) {
  if (row.contains("cost") && row["cost"].is_object()) return figure_value(row["cost"], "kwh") * 1000;
  return NAN;
}

// Whether the cost panels plot energy instead of dollars: when no run has a price (every run on a
// free instance, e.g. "local", where a dollars axis is all zeros, as `frugal compare` compares
// energy then) and the rows carry energy figures.
bool energy_instead_of_dollars(const std::vector<View>& views) {
  bool energy = false;
  for (const View& v : views) {
    if (v.summary.contains("cost") && number_at(v.summary["cost"], "usd_per_hour") > 0) return false;
    for (const json& row : v.train) {
      if (!row.contains("cost") || !row["cost"].is_object()) continue;
      if (figure_value(row["cost"], "usd") > 0) return false;
      energy = energy || std::isfinite(figure_value(row["cost"], "kwh"));
    }
  }
  return energy;
}

enum class XAxis { step, time, usd, energy };

// One overlaid chart of `key` (train or eval rows) against the x axis; rows whose y is not finite
// are skipped and counted in a note.
LineChart curve(const std::vector<View>& views, bool eval, const char* key, double scale, XAxis x_axis,
                const std::string& id, const std::string& title, const std::string& y_label) {
  LineChart chart;
  chart.id = id;
  chart.title = title;
  chart.y_label = y_label;
  chart.x_label = x_axis == XAxis::step     ? "Step"
                 : x_axis == XAxis::time   ? "Wall time (s)"
                 : x_axis == XAxis::energy ? "Energy (Wh)"
                                           : "Cost (USD)";
  std::vector<std::string> derived_runs;
  bool downsampled = false;
  for (const View& v : views) {
    Series s{v.run->record.run_id, v.run->record.run_id, v.style, {}};
    size_t skipped = 0, unplaced = 0;
    bool derived = false;
    for (const json& row : eval ? v.eval : v.train) {
      const double y = number_at(row, key) * scale;
      if (!std::isfinite(y)) {
        ++skipped;
        continue;
      }
      const double x = x_axis == XAxis::step ? number_at(row, "step")
                       : x_axis == XAxis::time   ? number_at(row, "time_s")
                       : x_axis == XAxis::energy ? row_wh(row)
                                                 : row_usd(row, v, &derived);
      if (std::isfinite(x)) s.points.push_back({x, y});
      else ++unplaced;
    }
    if (unplaced)
      chart.notes.push_back(v.run->record.run_id + ": " + std::to_string(unplaced) + " row(s) without " +
                            (x_axis == XAxis::usd      ? "a cost figure or a known price"
                             : x_axis == XAxis::energy ? "an energy figure"
                                                       : "an x value") + " not plotted.");
    if (skipped)
      chart.notes.push_back(v.run->record.run_id + ": " + std::to_string(skipped) + " row(s) without a finite " + key +
                            " skipped.");
    if (derived && !s.points.empty()) derived_runs.push_back(v.run->record.run_id);
    downsampled = downsampled || s.points.size() > kMaxPlotPoints;
    chart.series.push_back(std::move(s));
  }
  if (!derived_runs.empty()) {
    chart.x_label = "Cost (USD, estimated from wall time x price)";
    std::string list;
    for (const std::string& r : derived_runs) list += (list.empty() ? "" : ", ") + r;
    chart.notes.push_back("Dollars estimated from wall time x the instance's price per hour for " + list +
                          " (rows without a cost figure; the billing minimum is not applied).");
  }
  if (downsampled)
    chart.notes.push_back("Series of more than " + std::to_string(kMaxPlotPoints) +
                          " points downsampled to each bucket's minimum and maximum.");
  return chart;
}

std::string run_header(const View& v) {
  const RunRecord& r = v.run->record;
  const json& s = v.summary;
  const json cost = s.value("cost", json::object());
  std::string status = r.status.empty() ? string_at(s, "status") : r.status;
  std::string out = "<article class=\"run\" data-run=\"" + e(r.run_id) + "\" style=\"--c:" + series_colour(v.style) +
                    "\"><h3>" + e(r.run_id) + "</h3><dl><dt>name</dt><dd>" + e(r.name) + "</dd><dt>status</dt><dd class=\"status-" +
                    e(status) + "\">" + e(status);
  if (status == "running") out += " (partial: the run is still going)";
  out += "</dd>";
  if (!string_at(cost, "instance").empty())
    out += "<dt>instance</dt><dd>" + e(string_at(cost, "instance")) + ", " + e(string_at(cost, "pricing")) + " (" +
           or_na(number_at(cost, "usd_per_hour"), usd_text) + "/h)</dd>";
  if (s.contains("steps")) out += "<dt>steps</dt><dd>" + std::to_string(s.value("steps", int64_t(0))) + "</dd>";
  if (std::isfinite(number_at(s, "wall_s"))) out += "<dt>wall time</dt><dd>" + duration_text(number_at(s, "wall_s")) + "</dd>";
  const json metrics = s.value("metrics", json::object());
  for (const char* key : {"val_accuracy", "test_accuracy"})
    if (std::isfinite(number_at(metrics, key)))
      out += std::string("<dt>") + key + "</dt><dd>" + significant_text(100 * number_at(metrics, key), 3) + "%</dd>";
  for (const char* key : {"val_bits_per_char", "val_loss", "train_loss"})
    if (std::isfinite(number_at(metrics, key)))
      out += std::string("<dt>") + key + "</dt><dd>" + significant_text(number_at(metrics, key), 4) + "</dd>";
  if (cost.contains("usd")) out += "<dt>cost</dt><dd>" + or_na(figure_value(cost, "usd"), usd_text) + "</dd>";
  out += "<dt>rows</dt><dd>" + std::to_string(v.train.size()) + " train, " + std::to_string(v.eval.size()) + " eval</dd>";
  if (s.empty()) out += "<dt>summary</dt><dd class=\"empty\">none yet</dd>";
  return out + "</dl></article>";
}

// Phases: one stacked horizontal bar per run (share of its wall time) and the seconds in a table.
std::string phases_section(const std::vector<View>& views) {
  static const char* colours[] = {"#8da0cb", "#1f5fa8", "#c4461c", "#2a8a3e", "#b8860b", "#7b3fa0", "#999999"};
  std::vector<std::string> names;
  for (const View& v : views)
    if (v.summary.contains("phases") && v.summary["phases"].is_object())
      for (auto& [name, value] : v.summary["phases"].items())
        if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  if (names.empty()) return "<p class=\"empty\">No phase times (no run has a summary yet).</p>";
  const double width = 640, left = 10, bar_w = 620, row_h = 34;
  char buffer[256];
  std::snprintf(buffer, sizeof buffer, "<figure class=\"chart\" data-chart=\"phases\"><svg viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"Phases\"><title>Phases: share of wall time</title>",
                width, row_h * double(views.size()) + 46);
  std::string out = std::string("<div class=\"charts\">") + buffer;
  for (size_t r = 0; r < views.size(); ++r) {
    const json phases = views[r].summary.value("phases", json::object());
    double total = 0;
    for (const std::string& n : names) total += std::max(0.0, std::isfinite(number_at(phases, n.c_str())) ? number_at(phases, n.c_str()) : 0);
    const double y = row_h * double(r);
    out += "<g class=\"phase-bar\" data-run=\"" + e(views[r].run->record.run_id) + "\"><text x=\"" + std::to_string(int(left)) +
           "\" y=\"" + std::to_string(int(y + 12)) + "\">" + e(views[r].run->record.run_id) + "</text>";
    double x = left;
    for (size_t p = 0; p < names.size() && total > 0; ++p) {
      const double sec = number_at(phases, names[p].c_str()), w = std::isfinite(sec) && sec > 0 ? sec / total * bar_w : 0;
      std::snprintf(buffer, sizeof buffer, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"14\" fill=\"%s\"><title>", x,
                    y + 16, w, colours[p % 7]);
      out += buffer + e(names[p]) + "</title></rect>";
      x += w;
    }
    out += "</g>";
  }
  const double ly = row_h * double(views.size()) + 14;
  for (size_t p = 0; p < names.size(); ++p) {
    const double lx = left + double(p % 7) * 88;
    std::snprintf(buffer, sizeof buffer, "<rect x=\"%.0f\" y=\"%.0f\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%.0f\" y=\"%.0f\">",
                  lx, ly + 14 * double(p / 7), colours[p % 7], lx + 14, ly + 9 + 14 * double(p / 7));
    out += buffer + e(names[p]) + "</text>";
  }
  out += "</svg></figure><div class=\"table-wrap\"><table class=\"phases\"><tr><th>phase</th>";
  for (const View& v : views) out += "<th>" + e(v.run->record.run_id) + "</th>";
  out += "</tr>";
  for (const std::string& n : names) {
    out += "<tr><td>" + e(n) + "</td>";
    for (const View& v : views) {
      const json phases = v.summary.value("phases", json::object());
      double total = 0;
      for (auto& [k, value] : phases.items()) total += value.is_number() ? value.get<double>() : 0;
      const double sec = number_at(phases, n.c_str());
      out += "<td class=\"num\">" +
             (std::isfinite(sec) ? duration_text(sec) + " (" + significant_text(total > 0 ? 100 * sec / total : 0, 2) + "%)"
                                 : std::string("n/a")) +
             "</td>";
    }
    out += "</tr>";
  }
  return out + "</table></div></div>";
}

std::string memory_section(const std::vector<View>& views) {
  static const std::pair<const char*, const char*> categories[] = {
      {"weights_bytes", "weights"},           {"gradients_bytes", "gradients"},
      {"optimizer_state_bytes", "optimizer state"}, {"activations_peak_bytes", "activations (peak)"},
      {"workspace_peak_bytes", "workspace (peak)"}, {"other_peak_bytes", "other (peak)"},
      {"allocator_cached_bytes", "allocator cache"}, {"peak_total_bytes", "total (peak)"}};
  BarChart chart;
  chart.id = "memory";
  chart.title = "Memory by category";
  double largest = 0;
  for (const View& v : views)
    if (v.summary.contains("memory")) largest = std::max(largest, number_at(v.summary["memory"], "peak_total_bytes"));
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int unit = 0;
  double scale = 1;
  while (unit < 3 && largest >= scale * 1024 * 2) scale *= 1024, ++unit;
  chart.unit_label = units[unit];
  bool any = false;
  for (const View& v : views) chart.runs.push_back({v.run->record.run_id, v.run->record.run_id, v.style, {}});
  for (auto [key, label] : categories) {
    chart.categories.push_back(label);
    chart.values.emplace_back();
    chart.value_texts.emplace_back();
    for (const View& v : views) {
      const double bytes = v.summary.contains("memory") ? number_at(v.summary["memory"], key) : NAN;
      any = any || std::isfinite(bytes);
      chart.values.back().push_back(bytes / scale);
      chart.value_texts.back().push_back(bytes_text(bytes));
    }
  }
  if (!any) return "<p class=\"empty\">No memory figures (no run has a summary yet).</p>";
  return "<div class=\"charts\">" + bar_chart_svg(chart) + "</div>";
}

std::string figure_cell(const json& cost, const char* key, std::string (*text)(double)) {
  const double v = figure_value(cost, key);
  const std::string source = figure_source(cost, key);
  return "<td class=\"num\">" + or_na(v, text) + (source.empty() ? "" : "<span class=\"source\">" + e(source) + "</span>") +
         "</td>";
}

std::string hours_text(double hours) { return duration_text(hours * 3600); }

// The cost figures of a run: its summary's, or for a run still going (no summary yet) its latest
// row's so far (the live-cost rows), with that row's forecast at the end under "forecast".
json cost_of(const View& v) {
  if (v.summary.contains("cost") && v.summary["cost"].is_object()) return v.summary["cost"];
  for (auto rows : {&v.train, &v.eval})
    for (auto it = rows->rbegin(); it != rows->rend(); ++it)
      if (it->contains("cost") && (*it)["cost"].is_object()) {
        json c = (*it)["cost"];
        if (it->contains("forecast")) c["forecast"] = (*it)["forecast"];
        c["so_far_step"] = it->value("step", json());
        return c;
      }
  return json::object();
}

std::string cost_section(const std::vector<View>& views) {
  std::string out = "<div class=\"table-wrap\"><table class=\"cost\"><tr><th></th>";
  for (const View& v : views) out += "<th>" + e(v.run->record.run_id) + "</th>";
  out += "</tr>";
  const std::pair<const char*, const char*> rows[] = {{"usd", "dollars"}, {"kwh", "energy"}, {"co2_kg", "carbon"}, {"hours", "billed time"}};
  std::string (*texts[])(double) = {usd_text, energy_text, carbon_text, hours_text};
  for (size_t i = 0; i < 4; ++i) {
    out += std::string("<tr><th>") + rows[i].second + "</th>";
    for (const View& v : views) out += figure_cell(cost_of(v), rows[i].first, texts[i]);
    out += "</tr>";
  }
  bool going = false;
  for (const View& v : views) going = going || cost_of(v).contains("so_far_step");
  if (going) {  // runs still going: their figures are so far; the forecast is the row's
    out += "<tr><th>so far</th>";
    for (const View& v : views) {
      const json c = cost_of(v);
      std::string cell = c.contains("so_far_step") ? "at step " + e(c["so_far_step"].dump()) : "final";
      if (c.contains("forecast") && c["forecast"].is_object())
        cell += "; forecast at the end " + or_na(number_at(c["forecast"], "usd"), usd_text) + ", " +
                or_na(number_at(c["forecast"], "kwh"), energy_text) + " (estimated)";
      out += "<td>" + cell + "</td>";
    }
    out += "</tr>";
  }
  auto text_row = [&](const char* label, auto cell) {
    out += std::string("<tr><th>") + label + "</th>";
    for (const View& v : views) out += "<td>" + cell(v.summary.value("cost", json::object()), v.summary) + "</td>";
    out += "</tr>";
  };
  text_row("wall time", [](const json&, const json& s) { return or_na(number_at(s, "wall_s"), duration_text); });
  text_row("instance", [](const json& c, const json&) { return e(string_at(c, "instance")) + " " + e(string_at(c, "pricing")); });
  text_row("price", [](const json& c, const json&) { return or_na(number_at(c, "usd_per_hour"), usd_text) + "/h"; });
  text_row("billing", [](const json& c, const json&) { return e(string_at(c, "billing")); });
  text_row("energy method", [](const json& c, const json&) { return e(string_at(c, "energy_method")); });
  text_row("grid carbon", [](const json& c, const json&) {
    return std::isfinite(number_at(c, "carbon_g_per_kwh")) ? significant_text(number_at(c, "carbon_g_per_kwh"), 3) + " g/kWh" : "n/a";
  });
  text_row("catalog", [](const json& c, const json&) { return e(string_at(c, "catalog")); });
  out += "</table></div>";
  // Projections: what each run would have cost on the other instances its summary priced.
  for (const View& v : views) {
    const json p = v.summary.value("projections", json::array());
    if (!p.is_array() || p.empty()) continue;
    out += "<h3>Projections for " + e(v.run->record.run_id) + "</h3><div class=\"table-wrap\"><table class=\"projections\">"
           "<tr><th>instance</th><th>precision</th><th>time</th><th>dollars</th><th>energy</th><th>carbon</th><th>method</th></tr>";
    for (const json& q : p) {
      out += "<tr><td>" + e(string_at(q, "instance")) + "</td><td>" + e(string_at(q, "precision")) + "</td>" +
             figure_cell(q, "hours", hours_text) + figure_cell(q, "usd", usd_text) + figure_cell(q, "kwh", energy_text) +
             figure_cell(q, "co2_kg", carbon_text) + "<td class=\"method\">" + e(string_at(q, "method")) + "</td></tr>";
    }
    out += "</table></div>";
  }
  return out;
}

std::string value_cell(const json& v) {
  if (v.is_null()) return "<td class=\"empty\">(not set)</td>";
  return "<td>" + e(v.is_string() ? v.get<std::string>() : v.dump()) + "</td>";
}

// The savings ledger: each later run against the first, from `frugal compare --json`.
std::string ledger_section(const std::vector<View>& views, const std::vector<std::string>& comparisons) {
  std::string out;
  for (size_t i = 0; i < comparisons.size(); ++i) {
    json c = json::parse(comparisons[i], nullptr, false);
    if (!c.is_object()) {
      out += "<p class=\"empty\">Comparison " + std::to_string(i + 1) + " is not a JSON object.</p>";
      continue;
    }
    // Headed by run ids (compare labels a run directory by its path; its verdict keeps that label).
    const std::string a = views.empty() ? string_at(c, "a") : views[0].run->record.run_id;
    const std::string b = i + 1 < views.size() ? views[i + 1].run->record.run_id : string_at(c, "b");
    out += "<div class=\"comparison\" data-a=\"" + e(a) + "\" data-b=\"" + e(b) + "\"><h3>" + e(b) + " against " + e(a) +
           "</h3><p class=\"verdict\">" + e(string_at(c, "verdict")) + "</p>";
    if (c.contains("b_reached_a") && c["b_reached_a"].is_object()) {
      const json& r = c["b_reached_a"];
      out += "<p>Reached the baseline's final " + e(string_at(r, "metric")) + " at step " +
             std::to_string(r.value("step", int64_t(0))) + ", " + or_na(number_at(r, "time_s"), duration_text) + " into the run";
      if (std::isfinite(number_at(r, "share_of_a")))
        out += " (about " + significant_text(100 * number_at(r, "share_of_a"), 2) + "% of the baseline's cost, estimated)";
      out += ".</p>";
    }
    out += "<div class=\"table-wrap\"><table class=\"ledger\"><tr><th></th><th>baseline</th><th>this run</th><th>saved</th><th>change</th></tr>";
    struct LedgerRow { const char* key; const char* label; std::string (*text)(double); };
    const LedgerRow rows[] = {
        {"usd", "dollars", usd_text}, {"kwh", "energy", energy_text}, {"co2_kg", "carbon", carbon_text}, {"hours", "billed time", hours_text}};
    for (auto [key, label, text] : rows) {
      if (!c.contains(key)) continue;
      const json& r = c[key];
      const double change = number_at(r, "change");
      out += std::string("<tr><th>") + label + "</th><td class=\"num\">" + or_na(number_at(r, "a"), text) +
             "<span class=\"source\">" + e(string_at(r, "a_source")) + "</span></td><td class=\"num\">" +
             or_na(number_at(r, "b"), text) + "<span class=\"source\">" + e(string_at(r, "b_source")) +
             "</span></td><td class=\"num\">" + or_na(-number_at(r, "difference"), text) + "</td><td class=\"num\">" +
             (std::isfinite(change) ? significant_text(100 * change, 2) + "%" : std::string("n/a")) + "</td></tr>";
    }
    if (c.contains("metric") && c["metric"].is_object()) {
      const json& m = c["metric"];
      const bool percent = string_at(m, "name").find("accuracy") != std::string::npos;
      auto q = [&](const char* k) {
        const double v = number_at(m, k);
        return std::isfinite(v) ? (percent ? significant_text(100 * v, 3) + "%" : significant_text(v, 4)) : "n/a";
      };
      out += "<tr><th>" + e(string_at(m, "name")) + "</th><td class=\"num\">" + q("a") + "</td><td class=\"num\">" + q("b") +
             "</td><td></td><td></td></tr>";
    }
    out += "</table></div><p>Job keys that differ:</p>";
    const json diffs = c.value("job_differences", json::array());
    if (diffs.empty()) out += "<p class=\"empty\">none</p>";
    else {
      out += "<div class=\"table-wrap\"><table class=\"differences\"><tr><th>key</th><th>baseline</th><th>this run</th></tr>";
      for (const json& d : diffs)
        out += "<tr><td>" + e(string_at(d, "key")) + "</td>" + value_cell(d.value("a", json())) + value_cell(d.value("b", json())) + "</tr>";
      out += "</table></div>";
    }
    out += "</div>";
  }
  return out;
}

std::vector<View> make_views(const std::vector<ReportRun>& runs) {
  std::vector<View> views;
  for (size_t i = 0; i < runs.size(); ++i) {
    View v;
    v.run = &runs[i];
    v.style = int(i);
    json s = runs[i].record.summary_json.empty() ? json::object() : json::parse(runs[i].record.summary_json, nullptr, false);
    v.summary = s.is_object() ? s : json::object();
    for (const MetricRow& row : runs[i].metrics) {
      json j = json::parse(row.json, nullptr, false);
      if (!j.is_object()) continue;
      if (!j.contains("step")) j["step"] = row.step;
      if (!j.contains("time_s")) j["time_s"] = row.time_s;
      (row.kind == "eval" ? v.eval : v.train).push_back(std::move(j));
    }
    views.push_back(std::move(v));
  }
  return views;
}

}  // namespace

std::string report_html(const std::vector<ReportRun>& runs, const ReportOptions& options) {
  const std::vector<View> views = make_views(runs);
  std::string title = options.title;
  if (title.empty()) {
    title = "frugal report:";
    for (const ReportRun& r : runs) title += " " + r.record.run_id;
  }
  std::string body = "<style>" + std::string(kCss) + "</style><div class=\"frugal-report\"><h1>" + e(title) + "</h1>";
  body += "<section id=\"runs\"><h2>Runs</h2><div class=\"runs\">";
  for (const View& v : views) body += run_header(v);
  body += "</div></section>";
  if (runs.empty()) body += "<p class=\"empty\">No runs.</p>";

  const Quality q = pick_quality(views);
  const std::string metric_title = std::string(q.label).substr(0, std::string(q.label).find(" ("));
  body += "<section id=\"curves\"><h2>Curves</h2><div class=\"charts\">";
  // Free runs (no price anywhere) plot against energy instead of an all-zero dollars axis.
  const bool priced = !energy_instead_of_dollars(views);
  const std::pair<XAxis, const char*> axes[] = {
      {XAxis::step, "step"}, {XAxis::time, "time"}, {priced ? XAxis::usd : XAxis::energy, priced ? "usd" : "energy"}};
  const char* against[] = {"step", "wall time", priced ? "dollars" : "energy (no run has a price)"};
  for (size_t a = 0; a < 3; ++a)
    body += line_chart_svg(curve(views, false, "loss", 1, axes[a].first, std::string("loss-") + axes[a].second,
                                 std::string("Training loss against ") + against[a], "Training loss"));
  for (size_t a = 0; a < 3; ++a)
    body += line_chart_svg(curve(views, true, q.key, q.scale, axes[a].first, std::string("quality-") + axes[a].second,
                                 metric_title + " against " + against[a], q.label));
  body += "</div></section><section id=\"throughput\"><h2>Throughput</h2><div class=\"charts\">";
  bool tokens = false;
  for (const View& v : views)
    for (const json& row : v.train) tokens = tokens || row.contains("tokens_per_s");
  body += line_chart_svg(curve(views, false, tokens ? "tokens_per_s" : "samples_per_s", 1, XAxis::step, "throughput-step",
                               "Throughput against step", tokens ? "Tokens per second" : "Samples per second"));
  body += "</div></section><section id=\"phases\"><h2>Phases</h2>" + phases_section(views) + "</section>";
  body += "<section id=\"memory\"><h2>Memory by category</h2>" + memory_section(views) + "</section>";
  body += "<section id=\"cost\"><h2>Cost</h2>" + cost_section(views) + "</section>";
  if (runs.size() >= 2) {
    body += "<section id=\"ledger\"><h2>Savings ledger</h2>";
    body += options.comparisons_json.empty() ? "<p class=\"empty\">No comparisons given.</p>"
                                             : ledger_section(views, options.comparisons_json);
    body += "</section>";
  }
  body += "<footer><p class=\"source\">Figures carry their source: measured (a counter on the machine), estimated (a "
          "model), catalog (a price list), user (the job file).</p></footer></div>";
  if (options.fragment) return body;
  return "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
         "content=\"width=device-width, initial-scale=1\">"
         // Nothing may load from anywhere: the page is one file.
         "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\"><title>" +
         e(title) + "</title></head><body>" + body + "</body></html>\n";
}

}  // namespace frugal::track
