// `frugal dashboard` and `frugal runs export`: each adds its subcommand to the command line and
// returns it with the function that runs it once parsed (cli/command.h).
#pragma once

#include <string>

#include "frugal/cli/command.h"

namespace frugal::cli {

// `frugal dashboard [--port P] [--store DB] [--listen ADDR]`: serves until SIGINT/SIGTERM (exit 0).
Command add_dashboard_command(CLI::App& app, const std::string& default_store);
// `frugal runs export --format mlflow|csv DIR [RUN...]`, under `runs` (sharing its --store value).
Command add_runs_export_command(CLI::App& runs, std::string& store_path);

}  // namespace frugal::cli
