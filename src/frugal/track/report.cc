// TEMPORARY placeholder: replaced by the report branch at merge
// A minimal report_html (a plain table of each run's rows) so the dashboard branch builds and its
// tests run; the report branch's track/report.cc is the real page.
#include "frugal/track/report.h"

#include <string>

namespace frugal::track {
namespace {

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

std::string report_html(const std::vector<ReportRun>& runs, const ReportOptions& options) {
  std::string body;
  for (const ReportRun& run : runs) {
    body += "<h2>" + escape(run.record.run_id) + " (" + escape(run.record.status) + ")</h2>\n<table>\n";
    body += "<tr><th>step</th><th>kind</th><th>time_s</th><th>row</th></tr>\n";
    for (const MetricRow& row : run.metrics)
      body += "<tr><td>" + std::to_string(row.step) + "</td><td>" + escape(row.kind) + "</td><td>" +
              std::to_string(row.time_s) + "</td><td>" + escape(row.json) + "</td></tr>\n";
    body += "</table>\n";
  }
  if (options.fragment) return body;
  std::string title = options.title;
  if (title.empty())
    for (const ReportRun& run : runs) title += (title.empty() ? "" : ", ") + run.record.run_id;
  return "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + escape(title) + "</title></head><body>\n" +
         body + "</body></html>\n";
}

}  // namespace frugal::track
