// Preemption (Preemption, builtin.h): after SIGTERM, SIGINT or SIGUSR1 the run writes a checkpoint at
// the next step boundary and stops with exit 75 (EX_TEMPFAIL), to be resumed with --resume auto.
#include "frugal/base/signals.h"
#include "frugal/train/techniques/builtin.h"

namespace frugal::train {

void Preemption::on(Event event, TrainState& state) {
  if (event == Event::run_end) {
    if (stopped_) state.summary->signal = preemption_signal_name(preemption_signal());
    return;
  }
  if (!state.continuing() || !preemption_requested()) return;
  StopRequest stop{"preempted", "preempted", kExitPreempted, /*checkpoint=*/true,
                   std::string(preemption_signal_name(preemption_signal())) + ": checkpoint written at step " +
                 std::to_string(state.step) + "; stopping (exit " + std::to_string(kExitPreempted) +
                 "); continue with --resume auto"};
  stopped_ = state.request_stop(stop);
}

}  // namespace frugal::train
