// `frugal data score`: per-sample scores from a short early run of a job (cli/command.h).
#pragma once

#include "frugal/cli/command.h"

namespace frugal::cli {

// `frugal data score JOB --out scores.safetensors [--epochs E | --steps S] [--kinds el2n,grand,loss,forgetting]
// [--run-out DIR] [--resume auto] [--set K=V]`.
// Adds `score` to the `data` group (cli/data.h).
Command add_score_command(CLI::App& data_group);

}  // namespace frugal::cli
