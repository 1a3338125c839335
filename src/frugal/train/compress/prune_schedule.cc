// The pruning schedule of [prune] (see prune_schedule.h).
#include "frugal/train/compress/prune_schedule.h"

#include <algorithm>
#include <cmath>

namespace frugal::train {

PruneSchedule resolve_prune_schedule(const PruneSpec& spec, int64_t total_steps) {
  PruneSchedule s;
  s.gradual = spec.gradual;
  s.initial = spec.gradual ? spec.initial_sparsity : spec.sparsity;
  s.final = spec.sparsity;
  s.start = spec.start_step >= 0 ? spec.start_step : int64_t(std::llround(0.1 * double(total_steps)));
  s.end = !spec.gradual ? s.start
          : spec.end_step >= 0 ? spec.end_step
                               : std::max(s.start, int64_t(std::llround(0.6 * double(total_steps))));
  s.every = spec.every >= 1 ? spec.every : std::max<int64_t>(1, (s.end - s.start) / 10);
  return s;
}

bool is_pruning_step(const PruneSchedule& s, int64_t step) {
  if (step < s.start || step > s.end) return false;
  return step == s.end || (step - s.start) % s.every == 0;
}

double target_sparsity(const PruneSchedule& s, int64_t step) {
  if (step < s.start) return 0;
  if (!s.gradual || step >= s.end) return s.final;
  const double progress = double(step - s.start) / double(s.end - s.start);
  const double left = 1.0 - progress;
  return s.final + (s.initial - s.final) * left * left * left;
}

}  // namespace frugal::train
