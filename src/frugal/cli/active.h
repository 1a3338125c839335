// `frugal active`: pool-based active learning over a job (train/active.h; cli/command.h).
#pragma once

#include "frugal/cli/command.h"

namespace frugal::cli {

// `frugal active JOB --budget N --initial N0 --batch K --strategy S [--seeds 3] [--target-accuracy A]
// [--out DIR] [--json FILE] [--set K=V]`.
Command add_active_command(CLI::App& app);

}  // namespace frugal::cli
