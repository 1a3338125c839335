// The dashboard's HTML pages and compiled-in assets (track/ internal, used by dashboard.cc).
// Limits: every value shown is escaped; pages load only /static/ assets from the same server.
#pragma once

#include <string>
#include <vector>

#include "frugal/track/run_figures.h"
#include "frugal/track/run_store.h"

namespace frugal::track::dashboard {

// A run as listed: its record and figures.
struct ListedRun {
  RunRecord record;
  RunFigures figures;
};

extern const char* const kCss;
extern const char* const kJs;

// The runs table (the part / refreshes).
std::string runs_table(const std::vector<ListedRun>& runs);
// A whole page around `body`: header with the store, the CSS and JS links.
std::string page(const std::string& title, const std::string& store_path, const std::string& body);
// The page of a running run: `fragment` refreshed every 2 s from /runs/<id>/fragment.
std::string live_run_page(const RunRecord& run, const std::string& store_path, const std::string& fragment);
std::string not_found_page(const std::string& store_path, const std::string& what);

}  // namespace frugal::track::dashboard
