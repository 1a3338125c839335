// `frugal report RUN... [--html FILE]`: the report page of one or more runs (track/report.h), or a
// short text report on stdout without --html (cli/report.cc).
#pragma once

#include <string>
#include <vector>

#include "frugal/cli/command.h"

namespace frugal::cli {

// `frugal report RUN... [--html FILE] [--store DB]` (the store shared with the other commands'
// --store value), run by cmd_report.
Command add_report_command(CLI::App& app, std::string& store_path);

// Each ref is a run id (or unique prefix) of the store at store_path, or a run directory. With
// html_path "" prints per run its status, quality, cost and phases; else writes the page there
// (atomically). Returns the exit code (0); InputError for an unknown run or an unwritable path.
int cmd_report(const std::vector<std::string>& refs, const std::string& html_path, const std::string& store_path);

}  // namespace frugal::cli
