// Checkpointing on its own (technique_harness.h, whose write_checkpoint is a fake that reports 3 MiB
// in 0.25 s): which step boundaries write (every_steps, every_epoch, every_seconds, interval =
// "auto", a stop that asks for one even with enabled = false; never at the last step or after a
// stop without one), the heartbeat at every boundary the run goes on from, the summary's checkpoint
// figures, and the count it saves. Limits: the time triggers sleep (under a second in all).
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "frugal/base/error.h"
#include "frugal/io/checkpoint.h"
#include "frugal/train/resume.h"
#include "frugal/train/techniques/builtin.h"
#include "test_util.h"
#include "unit/train/technique_harness.h"

namespace frugal::train {
namespace {

using testing::TechniqueHarness;

CheckpointSpec periodic(int64_t every_steps, bool every_epoch = false, double every_seconds = 0) {
  CheckpointSpec spec;
  spec.every_steps = every_steps;
  spec.every_epoch = every_epoch;
  spec.every_seconds = every_seconds;
  return spec;
}

// step_end of steps [from, to], epochs of 6 steps (the harness's 12-step job).
void run_steps(TechniqueHarness& h, Checkpointing& checkpointing, int64_t from, int64_t to) {
  for (int64_t step = from; step <= to; ++step) h.end_step(checkpointing, step, step % 6 == 0);
}

void sleep_seconds(double seconds) { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); }

TEST(Checkpointing, EveryStepsWritesAtItsMultiplesButNotAtTheLastStep) {
  TechniqueHarness h;  // 12 steps
  Checkpointing checkpointing(periodic(4));
  checkpointing.on(Event::run_start, h.state);
  run_steps(h, checkpointing, 1, 12);
  EXPECT_EQ(h.written_steps, (std::vector<int64_t>{4, 8}));
  std::vector<std::string> lines = h.lines_starting("checkpoint step");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "checkpoint step 4: 3.00 MiB in 0.250 s -> " + h.checkpoint_dir + "/ckpt-4");
}

TEST(Checkpointing, EveryEpochWritesWhereAnEpochEnds) {
  TechniqueHarness h;
  Checkpointing checkpointing(periodic(0, /*every_epoch=*/true));
  checkpointing.on(Event::run_start, h.state);
  run_steps(h, checkpointing, 1, 12);
  EXPECT_EQ(h.written_steps, (std::vector<int64_t>{6})) << "12 ends an epoch and the run";
}

TEST(Checkpointing, EverySecondsWritesOnceThatMuchWallTimePassed) {
  TechniqueHarness h;
  Checkpointing checkpointing(periodic(0, false, 0.3));
  checkpointing.on(Event::run_start, h.state);
  h.end_step(checkpointing, 1);
  EXPECT_TRUE(h.written_steps.empty());
  sleep_seconds(0.35);
  h.end_step(checkpointing, 2);
  h.end_step(checkpointing, 3);  // the clock starts again at a write
  EXPECT_EQ(h.written_steps, (std::vector<int64_t>{2}));
  sleep_seconds(0.35);
  h.end_step(checkpointing, 12);  // but never at the last step
  EXPECT_EQ(h.written_steps, (std::vector<int64_t>{2}));
}

TEST(Checkpointing, AutoIntervalWritesAtTheFirstBoundaryThenEveryYoungDalyInterval) {
  TechniqueHarness h;
  CheckpointSpec spec = periodic(0);
  spec.interval_auto = true;
  spec.mtbi = 100;
  Checkpointing checkpointing(spec);
  checkpointing.on(Event::run_start, h.state);
  h.next_write.seconds = 1e-4;  // Young/Daly: about 0.14 s of work between checkpoints
  const double interval = io::young_daly_interval(1e-4, 100);
  ASSERT_GT(interval, 0.1);
  ASSERT_LT(interval, 0.2);
  h.end_step(checkpointing, 1);  // measures the write cost
  h.end_step(checkpointing, 2);
  EXPECT_EQ(h.written_steps, (std::vector<int64_t>{1}));
  std::vector<std::string> lines = h.lines_starting("checkpoint interval auto");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("checkpoint interval auto: write 0.0001 s, mtbi 100 s -> every " +
                               Progress::fixed(interval, 2) + " s of work (Young/Daly)",
                           0),
            0u)
      << lines[0];
  sleep_seconds(0.25);
  h.end_step(checkpointing, 3);
  EXPECT_EQ(h.written_steps, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(h.lines_starting("checkpoint interval auto").size(), 1u) << "announced once";

  RunSummary summary = h.end_run(checkpointing);
  const CheckpointSummary& c = summary.checkpoint;
  EXPECT_EQ(c.checkpoints, 2);
  ASSERT_TRUE(c.checkpoint_interval_s && c.checkpoint_mtbi_s && c.expected_lost_s_per_interruption);
  EXPECT_EQ(*c.checkpoint_interval_s, interval);
  EXPECT_EQ(*c.checkpoint_mtbi_s, 100.0);
  EXPECT_EQ(*c.expected_lost_s_per_interruption, io::expected_lost_seconds_per_interruption(interval, 1e-4));
}

TEST(Checkpointing, AStopThatAsksForACheckpointWritesEvenWhenDisabled) {
  TechniqueHarness h;
  CheckpointSpec spec = periodic(1);
  spec.enabled = false;
  Checkpointing checkpointing(spec);
  checkpointing.on(Event::run_start, h.state);
  run_steps(h, checkpointing, 1, 4);
  EXPECT_TRUE(h.written_steps.empty()) << "disabled: no periodic checkpoint";
  h.state.stop = StopRequest{"preempted", "preempted", 75, true, "m"};
  h.end_step(checkpointing, 5);
  EXPECT_EQ(h.written_steps, (std::vector<int64_t>{5}));
  std::optional<HeartbeatRecord> beat = read_heartbeat(heartbeat_path(h.checkpoint_dir));
  ASSERT_TRUE(beat);
  EXPECT_EQ(beat->step, 5);
}

TEST(Checkpointing, NothingAfterAStopWithoutACheckpoint) {
  TechniqueHarness h;
  Checkpointing checkpointing(periodic(1));
  checkpointing.on(Event::run_start, h.state);
  run_steps(h, checkpointing, 1, 3);
  EXPECT_EQ(h.written_steps, (std::vector<int64_t>{1, 2, 3}));
  h.state.stop = StopRequest{"completed", "early_stopping", 0, false, ""};
  h.end_step(checkpointing, 4);
  EXPECT_EQ(h.written_steps, (std::vector<int64_t>{1, 2, 3}));
  std::optional<HeartbeatRecord> beat = read_heartbeat(heartbeat_path(h.checkpoint_dir));
  ASSERT_TRUE(beat);
  EXPECT_EQ(beat->step, 3) << "the run does not go on from step 4: no heartbeat";
}

TEST(Checkpointing, TheHeartbeatMarksEveryBoundaryTheRunGoesOnFromWithTheWritesIncluded) {
  TechniqueHarness h;
  Checkpointing checkpointing(periodic(4));
  checkpointing.on(Event::run_start, h.state);
  EXPECT_FALSE(read_heartbeat(heartbeat_path(h.checkpoint_dir))) << "no beat before the first step";
  h.end_step(checkpointing, 1);
  std::optional<HeartbeatRecord> beat = read_heartbeat(heartbeat_path(h.checkpoint_dir));
  ASSERT_TRUE(beat);
  EXPECT_EQ(beat->run_id, h.run_id);
  EXPECT_EQ(beat->step, 1);
  EXPECT_GT(beat->wall_s, 0);
  EXPECT_EQ(beat->checkpoint_s, 0);
  run_steps(h, checkpointing, 2, 4);
  beat = read_heartbeat(heartbeat_path(h.checkpoint_dir));
  ASSERT_TRUE(beat);
  EXPECT_EQ(beat->step, 4);
  EXPECT_EQ(beat->checkpoint_s, 0.25) << "beaten again after the write, which it counts";
  EXPECT_LE(beat->wall_s, h.meter.wall_s());
  run_steps(h, checkpointing, 5, 11);
  EXPECT_EQ(read_heartbeat(heartbeat_path(h.checkpoint_dir))->step, 11);
  h.end_step(checkpointing, 12);
  EXPECT_EQ(read_heartbeat(heartbeat_path(h.checkpoint_dir))->step, 11) << "none at the last step";
}

TEST(Checkpointing, TheSummarysCheckpointFigures) {
  TechniqueHarness h;
  Checkpointing checkpointing(periodic(4));
  checkpointing.on(Event::run_start, h.state);
  EXPECT_EQ(h.end_run(checkpointing).checkpoint.checkpoint_write_s, std::nullopt) << "none written";
  run_steps(h, checkpointing, 1, 5);
  h.next_write = {"", 1000, 0.5};
  run_steps(h, checkpointing, 6, 12);
  RunSummary summary = h.end_run(checkpointing);
  const CheckpointSummary& c = summary.checkpoint;
  EXPECT_EQ(c.checkpoints, 2);
  EXPECT_EQ(c.checkpoint_s, 0.75);
  EXPECT_EQ(c.checkpoint_write_s, std::optional<double>(0.375));
  EXPECT_EQ(c.checkpoint_bytes, std::optional<double>(1000)) << "the last one";
  EXPECT_EQ(c.checkpoint_dir, h.checkpoint_dir);
  EXPECT_EQ(c.interruptions, 0);
  EXPECT_EQ(c.lost_s, 0);
  EXPECT_EQ(c.resumed_from, std::nullopt);
  EXPECT_FALSE(c.checkpoint_interval_s || c.checkpoint_mtbi_s || c.expected_lost_s_per_interruption);
}

TEST(Checkpointing, AResumedProcessCountsTheEarlierCheckpointsAndItsOwnBytesOnly) {
  TechniqueHarness h;
  cost::CarriedMeters carried;
  carried.wall_s = 100;
  carried.checkpoint_s = 2;
  carried.lost_s = 3;
  h.meter.resume(carried, std::nullopt);
  h.state.resumed_from = "runs/x/checkpoints/checkpoint-6.fck";
  Checkpointing checkpointing(periodic(4));
  TechniqueState in("checkpointing", h.state.resumed_from);
  in.put("checkpoints_written", int64_t(3));
  checkpointing.load_state(in);
  checkpointing.on(Event::run_start, h.state);
  h.end_step(checkpointing, 7);
  RunSummary summary = h.end_run(checkpointing);
  const CheckpointSummary& c = summary.checkpoint;
  EXPECT_EQ(c.checkpoints, 3);
  EXPECT_EQ(c.checkpoint_bytes, std::nullopt) << "this process wrote none";
  EXPECT_EQ(c.checkpoint_s, 2.0);
  EXPECT_EQ(c.checkpoint_write_s, std::optional<double>(2.0 / 3.0));
  EXPECT_EQ(c.interruptions, 1);
  EXPECT_EQ(c.lost_s, 3.0);
  EXPECT_EQ(c.resumed_from, std::optional<std::string>("runs/x/checkpoints/checkpoint-6.fck"));
  h.end_step(checkpointing, 8);
  EXPECT_EQ(h.end_run(checkpointing).checkpoint.checkpoints, 4);
  EXPECT_EQ(h.end_run(checkpointing).checkpoint.checkpoint_s, 2.25);
}

TEST(Checkpointing, SaveStateCountsTheCheckpointBeingWritten) {
  TechniqueHarness h;
  Checkpointing checkpointing(periodic(4));
  h.saving = &checkpointing;
  checkpointing.on(Event::run_start, h.state);
  run_steps(h, checkpointing, 1, 4);
  EXPECT_EQ(h.saved.integer("checkpoints_written"), 1);
  run_steps(h, checkpointing, 5, 8);
  EXPECT_EQ(h.saved.integer("checkpoints_written"), 2);

  Checkpointing resumed(periodic(3));  // triggers may change on resume
  resumed.load_state(h.saved);
  h.saving = &resumed;
  resumed.on(Event::run_start, h.state);
  h.end_step(resumed, 9);
  EXPECT_EQ(h.saved.integer("checkpoints_written"), 3);
  EXPECT_EQ(h.end_run(resumed).checkpoint.checkpoints, 3);
}

TEST(Checkpointing, LoadingAnEmptyStateIsAnInputError) {
  Checkpointing checkpointing(periodic(4));
  EXPECT_INPUT_ERROR(checkpointing.load_state(TechniqueState("checkpointing", "ckpt-4.fck")), "ckpt-4.fck",
                     "technique 'checkpointing'");
}

}  // namespace
}  // namespace frugal::train
