// `frugal dashboard`: adds its subcommand to the command line and
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

}  // namespace frugal::cli
