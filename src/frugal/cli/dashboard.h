// `frugal dashboard` and `frugal runs export`: each adds its subcommand to the command line and
// returns it with the function that runs it once parsed (main.cc stays a list of commands).
#pragma once

#include <functional>
#include <string>
#include <utility>

#include <CLI/CLI.hpp>

namespace frugal::cli {

using Command = std::pair<CLI::App*, std::function<int()>>;

// `frugal dashboard [--port P] [--store DB] [--listen ADDR]`: serves until SIGINT/SIGTERM (exit 0).
Command add_dashboard_command(CLI::App& app, const std::string& default_store);
// `frugal runs export --format mlflow|csv DIR [RUN...]`, under `runs` (sharing its --store value).
Command add_runs_export_command(CLI::App& runs, std::string& store_path);

}  // namespace frugal::cli
