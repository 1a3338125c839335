// Preemption on its own (technique_harness.h): after SIGUSR1 (with base/signals.h's handlers
// installed for the test), step_end asks for a checkpoint and exit 75 with the documented message,
// only while the run goes on; the summary names the signal only when it stopped the run.
#include <csignal>

#include <gtest/gtest.h>

#include "frugal/base/signals.h"
#include "frugal/train/techniques/builtin.h"
#include "unit/train/technique_harness.h"

namespace frugal::train {
namespace {

using testing::TechniqueHarness;

// The handlers for the test's length, and no pending request before or after it.
struct PreemptionHandlers {
  PreemptionHandlers() {
    clear_preemption();
    install_preemption_handlers();
  }
  ~PreemptionHandlers() {
    uninstall_preemption_handlers();
    clear_preemption();
  }
};

TEST(Preemption, ASignalStopsTheRunWithACheckpointAndExit75) {
  PreemptionHandlers handlers;
  TechniqueHarness h;  // 12 steps
  Preemption preemption;
  h.end_step(preemption, 4);
  EXPECT_FALSE(h.state.stop) << "no signal yet";
  std::raise(SIGUSR1);
  ASSERT_TRUE(preemption_requested());
  h.end_step(preemption, 5);
  ASSERT_TRUE(h.state.stop);
  EXPECT_EQ(h.state.stop->status, "preempted");
  EXPECT_EQ(h.state.stop->reason, "preempted");
  EXPECT_EQ(h.state.stop->exit_code, kExitPreempted);
  EXPECT_EQ(h.state.stop->exit_code, 75);
  EXPECT_TRUE(h.state.stop->checkpoint);
  EXPECT_EQ(h.state.stop->message,
            "SIGUSR1: checkpoint written at step 5; stopping (exit 75); continue with --resume auto");
  EXPECT_EQ(h.end_run(preemption).signal, std::optional<std::string>("SIGUSR1"));
}

TEST(Preemption, NothingWithoutASignal) {
  PreemptionHandlers handlers;
  TechniqueHarness h;
  Preemption preemption;
  for (int64_t step = 1; step <= 12; ++step) h.end_step(preemption, step);
  EXPECT_FALSE(h.state.stop);
  EXPECT_EQ(h.end_run(preemption).signal, std::nullopt);
}

TEST(Preemption, NothingAtTheLastStepOrOverAnotherStopAndThenNoSignalInTheSummary) {
  PreemptionHandlers handlers;
  std::raise(SIGUSR1);
  ASSERT_TRUE(preemption_requested());
  {
    TechniqueHarness h;
    Preemption preemption;
    h.end_step(preemption, 12);  // the last step: the run completes
    EXPECT_FALSE(h.state.stop);
    EXPECT_EQ(h.end_run(preemption).signal, std::nullopt);
  }
  TechniqueHarness h;
  Preemption preemption;
  h.state.stop = StopRequest{"completed", "early_stopping", 0, false, ""};
  h.end_step(preemption, 6);
  EXPECT_EQ(h.state.stop->reason, "early_stopping");
  EXPECT_EQ(h.end_run(preemption).signal, std::nullopt);
}

}  // namespace
}  // namespace frugal::train
