// `frugal data ...`: commands that work on a job's data set rather than on a model (cli/command.h).
// The group holds `pack` (cli/data.cc); `score` (per-sample scores, train/sampling) joins it here.
#pragma once

#include <vector>

#include "frugal/cli/command.h"

namespace frugal::cli {

// Adds the `data` group to `app` and returns its subcommands (each dispatched when parsed).
std::vector<Command> add_data_commands(CLI::App& app);

}  // namespace frugal::cli
