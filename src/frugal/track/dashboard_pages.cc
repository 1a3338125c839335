// The dashboard's pages, CSS and JS (see dashboard_pages.h). The JS only polls same-origin URLs
// and swaps server-escaped HTML in; it never builds markup from data itself.
#include "frugal/track/dashboard_pages.h"

#include <algorithm>

#include "frugal/base/units.h"
#include "frugal/track/svg.h"  // html_escape

namespace frugal::track::dashboard {

const char* const kCss = R"css(
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #fafbfc; }
header { padding: 10px 18px; background: #1d2330; color: #e8ebf0; }
header a { color: #fff; font-weight: 600; text-decoration: none; }
header .store { color: #a9b1c0; margin-left: 12px; }
main { padding: 14px 18px; }
table { border-collapse: collapse; background: #fff; }
/* The runs table scrolls sideways inside the page when it is wider than the window (a phone). */
table.runs { display: block; max-width: 100%; overflow-x: auto; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e3e6eb; text-align: left; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status { padding: 1px 6px; border-radius: 3px; background: #e3e6eb; }
.status.running { background: #cfe8ff; } .status.completed { background: #d6f5dd; }
.status.failed, .status.interrupted { background: #ffd9d6; }
.source { color: #6b7385; font-size: 12px; }
.note { color: #6b7385; font-size: 12px; }
)css";

// Elements with data-poll="URL" are replaced by the URL's HTML every data-every ms; polling stops
// once the answer says the run is final (X-Frugal-Final: 1).
const char* const kJs = R"js(
"use strict";
for (const el of document.querySelectorAll("[data-poll]")) {
  const url = el.dataset.poll, every = Number(el.dataset.every) || 3000;
  const tick = async () => {
    try {
      const r = await fetch(url, {cache: "no-store", credentials: "same-origin"});
      if (r.ok) {
        el.innerHTML = await r.text();
        if (r.headers.get("X-Frugal-Final") === "1") return;
      }
    } catch (e) { /* the server may be restarting: try again */ }
    setTimeout(tick, every);
  };
  setTimeout(tick, every);
}
)js";

namespace {

std::string sourced(const std::optional<SourcedValue>& v, std::string (*text)(double)) {
  if (!v) return "-";
  return html_escape(text(v->value)) + (v->source.empty() ? "" : " <span class=\"source\">" + html_escape(v->source) + "</span>");
}

std::string quality_text(const RunFigures& f) {
  if (!f.quality) return "-";
  const bool percent = f.quality_key.find("accuracy") != std::string::npos;
  std::string value = percent ? significant_text(100 * *f.quality, 4) + "%" : significant_text(*f.quality, 4);
  return html_escape(value) + " <span class=\"source\">" + html_escape(f.quality_key) + "</span>";
}

}  // namespace

std::string runs_table(const std::vector<ListedRun>& runs) {
  std::string out = "<table class=\"runs\"><thead><tr><th>run</th><th>name</th><th>status</th><th>started</th>"
                    "<th>wall</th><th>step</th><th>cost</th><th>energy</th><th>carbon</th><th>quality</th></tr></thead>"
                    "<tbody>\n";
  for (const ListedRun& r : runs) {
    const RunFigures& f = r.figures;
    const std::string id = html_escape(r.record.run_id);
    out += "<tr><td><a href=\"/runs/" + id + "\">" + id + "</a></td><td>" + html_escape(r.record.name) +
           "</td><td><span class=\"status " + html_escape(r.record.status) + "\">" + html_escape(r.record.status) +
           "</span></td><td>" + html_escape(r.record.started_at) + "</td><td class=\"num\">" +
           (f.wall_s ? html_escape(duration_text(*f.wall_s)) : "-") + "</td><td class=\"num\">" +
           (f.step ? std::to_string(*f.step) : "-") + "</td><td class=\"num\">" + sourced(f.usd, usd_text) +
           "</td><td class=\"num\">" + sourced(f.kwh, energy_text) + "</td><td class=\"num\">" +
           sourced(f.co2_kg, carbon_text) + "</td><td class=\"num\">" + quality_text(f) + "</td></tr>\n";
  }
  out += "</tbody></table>\n<p class=\"note\">" + std::to_string(runs.size()) +
         " runs, running ones first; this table refreshes every 3 s.</p>\n";
  return out;
}

std::string page(const std::string& title, const std::string& store_path, const std::string& body) {
  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>" +
         html_escape(title) +
         "</title><link rel=\"stylesheet\" href=\"/static/dashboard.css\">"
         "<script src=\"/static/dashboard.js\" defer></script></head>\n<body><header><a href=\"/\">frugal</a> "
         "dashboard<span class=\"store\">" +
         html_escape(store_path) + " (read-only)</span></header>\n<main>\n" + body + "</main></body></html>\n";
}

std::string live_run_page(const RunRecord& run, const std::string& store_path, const std::string& fragment) {
  const std::string id = html_escape(run.run_id);
  return page(run.run_id + " (running)", store_path,
              "<p class=\"note\">run " + id + " is running: this page refreshes every 2 s.</p>\n"
              "<div data-poll=\"/runs/" + id + "/fragment\" data-every=\"2000\">\n" + fragment + "</div>\n");
}

std::string not_found_page(const std::string& store_path, const std::string& what) {
  return page("not found", store_path, "<h1>Not found</h1>\n<p>" + html_escape(what) + "</p>\n<p><a href=\"/\">all runs</a></p>\n");
}

}  // namespace frugal::track::dashboard
