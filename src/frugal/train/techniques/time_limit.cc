// A wall-time limit (TimeLimit, builtin.h): a run that reaches train.max_minutes stops at the step
// boundary as completed, stop_reason "time_limit". Wall time decides when, never what.
#include "frugal/train/techniques/builtin.h"

namespace frugal::train {

void TimeLimit::on(Event event, TrainState& state) {
  if (state.continuing() && state.wall_s() > max_minutes_ * 60) state.request_stop({"completed", "time_limit", 0, false, ""});
}

}  // namespace frugal::train
