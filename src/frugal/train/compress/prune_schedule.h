// When [prune] prunes and how much: one-shot at start_step, or the cubic schedule of Zhu & Gupta
// (2017), s_t = s_f + (s_i - s_f)(1 - (t - t0) / (t1 - t0))^3, at t0, t0 + every, ... and t1.
// Steps count optimizer steps done (pruning acts after the t-th update). Limits: pure arithmetic.
#pragma once

#include <cstdint>

#include "frugal/train/job.h"

namespace frugal::train {

struct PruneSchedule {
  bool gradual = true;
  double initial = 0, final = 0;  // s_i, s_f
  int64_t start = 0, end = 0, every = 1;
};

// The spec's steps, with those left unset (-1) resolved against the run's length: start at 10% and
// end at 60% of total_steps (so the rest fine-tunes), every (end - start) / 10 steps (at least 1).
PruneSchedule resolve_prune_schedule(const PruneSpec& spec, int64_t total_steps);

// True when masks are recomputed once `step` optimizer steps are done.
bool is_pruning_step(const PruneSchedule& schedule, int64_t step);

// The fraction removed as of `step` steps done (0 before start; s_f from end on; oneshot: s_f from start).
double target_sparsity(const PruneSchedule& schedule, int64_t step);

}  // namespace frugal::train
