// `frugal data score`: per-sample scores from a short early run of a job (cli/command.h).
#pragma once

#include "frugal/cli/command.h"

namespace frugal::cli {

// `frugal data score JOB --out scores.safetensors [--epochs E | --steps S] [--kinds el2n,grand,loss,forgetting]
// [--run-out DIR] [--resume auto] [--set K=V]`.
Command add_data_command(CLI::App& app);

}  // namespace frugal::cli
