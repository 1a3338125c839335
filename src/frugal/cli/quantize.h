// `frugal quantize JOB --weights W`: post-training int8 quantization into a quantized model file
// (train/compress/quantize.h) that `frugal eval` and `frugal sample` run.
#pragma once

#include "frugal/cli/command.h"

namespace frugal::cli {

Command add_quantize_command(CLI::App& app);

}  // namespace frugal::cli
