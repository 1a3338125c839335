// `frugal prune`: one-shot pruning of a trained model (cli/command.h).
#pragma once

#include "frugal/cli/command.h"

namespace frugal::cli {

// `frugal prune JOB --weights W --sparsity S [--structure ...] [--score ...] [--scope ...] [--layers ...]
// [--exclude ...] [--batches N] [--out DIR] [--set K=V]`.
Command add_prune_command(CLI::App& app);

}  // namespace frugal::cli
