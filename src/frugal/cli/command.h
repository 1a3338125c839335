// A subcommand that registers itself: it adds its options to the command line and returns the
// CLI11 subcommand with the function that runs it once parsed, so main.cc stays a list of commands.
#pragma once

#include <functional>
#include <utility>

#include <CLI/CLI.hpp>

namespace frugal::cli {

using Command = std::pair<CLI::App*, std::function<int()>>;

}  // namespace frugal::cli
