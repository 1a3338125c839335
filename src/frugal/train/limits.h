// Limits checked against the machine before work starts: the thread count (capped at the cores
// available unless forced) and the memory a model needs (refused with the figures when it cannot
// fit). Limits: the memory figure is an estimate from shapes (f32 parameters, gradients and
// optimizer state, plus the activation estimate of one batch); allocator overhead, data and
// short-lived buffers are left out, so a model just under the figure may still not fit.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "frugal/train/job.h"
#include "frugal/train/model_setup.h"

namespace frugal::train {

// The thread count to use: run.threads, or the cores available (base/machine.h) when it asks for
// more and run.threads_force is false; 0 stays 0 (all available cores). `warning` gets one line
// saying so when the request was capped, else "".
int capped_threads(const JobSpec& job, std::string* warning);
// Sets the kernels' thread count from the job (capped_threads), printing the warning to `log` as
// "frugal: warning: ...".
void apply_threads(const JobSpec& job, FILE* log = stderr);

struct ModelMemory {
  int64_t parameters = 0;          // elements
  int64_t weight_bytes = 0;        // parameters, f32
  int64_t gradient_bytes = 0;      // training: one f32 gradient per trainable parameter
  int64_t optimizer_bytes = 0;     // training: AdamW 2 f32 moments, SGD with momentum 1
  int64_t activation_bytes = 0;    // training: one micro-batch (model_setup's estimate; MLP: its layers' outputs)
  int64_t total() const { return weight_bytes + gradient_bytes + optimizer_bytes + activation_bytes; }
};
// What the planned model needs, for training or (training = false) for inference; all zero for a
// custom model (given by code: unknown until built).
ModelMemory estimate_model_memory(const JobSpec& job, const ModelPlan& plan, bool training);
// InputError naming the figures when the estimate exceeds the memory available (MemAvailable, or
// a cgroup limit), e.g. "job.toml: [model] needs ~24.0 GiB for parameters, gradients and Adam
// state ...; this machine has 23.4 GiB available (of 31.2 GiB)".
void check_model_memory(const JobSpec& job, const ModelPlan& plan, bool training);

}  // namespace frugal::train
