// Checkpoint triggers and writes (Checkpointing, builtin.h). At the end of each step, last of all
// techniques: a checkpoint is due every N steps, after an epoch, every T seconds of wall time (or
// Young/Daly's interval from the measured write cost), and whenever a stop asks for one. The
// heartbeat, rewritten at every step boundary, lets the next process measure the work lost.
#include "frugal/train/techniques/builtin.h"

#include "frugal/dist/communicator.h"

namespace frugal::train {

bool Checkpointing::due(const TrainState& state) const {
  if (state.stop && state.stop->checkpoint) return true;
  if (!spec_.enabled || !state.continuing()) return false;
  if (spec_.every_steps > 0 && state.step % spec_.every_steps == 0) return true;
  if (spec_.every_epoch && state.epoch_done) return true;
  // Wall time decides when, never what. The first auto checkpoint measures the write cost.
  if (spec_.interval_auto) return auto_interval_s_ < 0 || since_checkpoint_.seconds() >= auto_interval_s_;
  return spec_.every_seconds > 0 && since_checkpoint_.seconds() >= spec_.every_seconds;
}

// In a world of several ranks, rank 0's clock decides (every rank packs the checkpoint together).
bool Checkpointing::agreed_due(const TrainState& state) const {
  uint8_t now = due(state) ? 1 : 0;
  if (state.world_size() > 1) state.world->broadcast(&now, 1, 0);
  return now != 0;
}

void Checkpointing::write(TrainState& state) {
  auto in_phase = state.meter.phase(cost::Phase::checkpoint);
  const CheckpointWritten written = state.write_checkpoint();
  state.meter.add_checkpoint_write(written.seconds);
  ++written_;
  ++written_this_process_;
  last_bytes_ = double(written.bytes);
  if (state.rank() == 0) heartbeat_.beat({state.run_id, state.step, state.wall_s(), state.meter.checkpoint_s()});
  state.progress.line("checkpoint step " + std::to_string(state.step) + ": " +
                      Progress::fixed(double(written.bytes) / 1048576.0, 2) + " MiB in " +
                      Progress::fixed(written.seconds, 3) + " s -> " + written.path);
  if (spec_.interval_auto) {
    const double mean_write_s = state.meter.checkpoint_s() / double(written_);
    const double interval = io::young_daly_interval(mean_write_s, spec_.mtbi);
    if (auto_interval_s_ < 0)
      state.progress.line("checkpoint interval auto: write " + Progress::fixed(mean_write_s, 4) + " s, mtbi " +
                          Progress::fixed(spec_.mtbi, 0) + " s -> every " + Progress::fixed(interval, 2) +
                          " s of work (Young/Daly); expected work lost per interruption " +
                          Progress::fixed(io::expected_lost_seconds_per_interruption(interval, mean_write_s), 2) +
                          " s");
    auto_interval_s_ = interval;
  }
  since_checkpoint_.reset();
}

void Checkpointing::on(Event event, TrainState& state) {
  switch (event) {
    case Event::run_start:
      if (state.rank() == 0) heartbeat_.open(heartbeat_path(state.checkpoint_dir));  // rank 0 writes
      since_checkpoint_.reset();  // every_seconds counts training time, not the set-up before it
      break;
    case Event::step_end:
      // Every boundary the run goes on from, or stops at to be resumed from.
      if (!state.continuing() && !(state.stop && state.stop->checkpoint)) break;
      if (state.rank() == 0) heartbeat_.beat({state.run_id, state.step, state.wall_s(), state.meter.checkpoint_s()});
      if (agreed_due(state)) write(state);
      break;
    case Event::run_end: {
      CheckpointSummary& c = state.summary->checkpoint;
      if (!state.resumed_from.empty()) c.resumed_from = state.resumed_from;
      c.interruptions = state.meter.interruptions();
      c.checkpoints = written_;
      c.checkpoint_s = state.meter.checkpoint_s();
      c.lost_s = state.meter.lost_s();
      c.checkpoint_dir = state.checkpoint_dir;
      if (written_this_process_ > 0) c.checkpoint_bytes = last_bytes_;
      if (written_ > 0) c.checkpoint_write_s = state.meter.checkpoint_s() / double(written_);
      if (spec_.interval_auto && auto_interval_s_ >= 0) {
        c.checkpoint_interval_s = auto_interval_s_;
        c.checkpoint_mtbi_s = spec_.mtbi;
        c.expected_lost_s_per_interruption =
            io::expected_lost_seconds_per_interruption(auto_interval_s_, state.meter.checkpoint_s() / double(written_));
      }
      break;
    }
    default:
      break;
  }
}

// The count includes the checkpoint being written, once its file exists.
void Checkpointing::save_state(TechniqueState& out) const { out.put("checkpoints_written", written_ + 1); }

void Checkpointing::load_state(const TechniqueState& in) {
  if (in.empty()) in.fail("missing (the checkpoint has no checkpoint count)");
  written_ = in.integer("checkpoints_written");
}

}  // namespace frugal::train
