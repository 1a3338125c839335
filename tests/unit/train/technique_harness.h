// Everything a TrainState needs, built from a small job without running the loop, so a test can set
// the state (step, evaluation, gradients, a stop) and call one technique's on() directly: the job and
// its data (RunFixture), a tiny MLP, SGD, a constant schedule, progress lines in a file the test
// reads, a run store and metrics.jsonl in a temp dir, a cost meter, and a write_checkpoint the test
// controls. Limits: no loop runs here, so the event order is the test's business (events_test.cc
// checks the loop's); wall time is real unless a test carries earlier seconds in (carry_wall_seconds).
#pragma once

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "frugal/cost/run_meter.h"
#include "frugal/optim/optimizer.h"
#include "frugal/optim/schedule.h"
#include "frugal/track/run_store.h"
#include "frugal/train/data_setup.h"
#include "frugal/train/job.h"
#include "frugal/train/model_setup.h"
#include "frugal/train/progress.h"
#include "frugal/train/summary.h"
#include "frugal/train/technique.h"
#include "frugal/train/trainer.h"
#include "unit/train/run_fixture.h"

namespace frugal::train::testing {

// 100 rows, 10 for validation: 90 to train, 6 batches of 16 per epoch, 12 steps in 2 epochs.
inline const char* kHarnessSections =
    "[model]\nkind = \"mlp\"\nhidden = [8]\n"
    "[optim]\nkind = \"sgd\"\nlr = 0.1\n"
    "[train]\nepochs = 2\nbatch_size = 16\nlog_every = 3\n";

// A fresh directory per harness: <TempDir>/frugal-technique-<suite>.<test>-<n>.
inline std::string harness_name() {
  static int count = 0;
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = "technique-";
  if (info) name += std::string(info->test_suite_name()) + "." + info->name();
  return name + "-" + std::to_string(count++);
}

inline std::string created_dir(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  return dir.string();
}

class TechniqueHarness {
 public:
  explicit TechniqueHarness(const std::string& sections = kHarnessSections,
                            const std::vector<std::string>& overrides = {})
      : fixture(harness_name(), 100, sections),
        job(fixture.job(overrides)),
        data(prepare_data(job, (fixture.dir() / "cache").string())),
        model(build_model(job, data)),
        optimizer(std::make_unique<optim::SGD>(model->parameters(), sgd_options(job))),
        schedule(constant_schedule(job)),
        out_dir(created_dir(fixture.dir() / "run")),
        checkpoint_dir(created_dir(fixture.dir() / "run" / "checkpoints")),
        progress_file_(std::fopen((fixture.dir() / "progress.txt").string().c_str(), "w")),
        progress(progress_file_, /*bar=*/false, /*quiet=*/false),
        store(job.run.store),
        run_id(store.create_run({job.run.name, job.resolved_toml, out_dir, job.hash})),
        metrics((std::filesystem::path(out_dir) / "metrics.jsonl").string(), 0, &store, run_id),
        meter(cost::price_instance(shipped_catalog_path(), job.cost)),
        state(job, data, *model, *optimizer, *schedule, progress, metrics, meter) {
    const int64_t batches = (data.train.size() + job.train.batch_size - 1) / job.train.batch_size;
    state.batches_per_epoch = batches;
    state.steps_per_epoch = (batches + job.train.grad_accum - 1) / job.train.grad_accum;
    state.total_steps = job.train.steps ? job.train.steps : job.train.epochs * state.steps_per_epoch;
    state.eval_every = job.train.eval_every ? job.train.eval_every : state.steps_per_epoch;
    state.run_id = run_id;
    state.out_dir = out_dir;
    state.checkpoint_dir = checkpoint_dir;
    state.write_checkpoint = [this] { return fake_write(); };
  }
  ~TechniqueHarness() {
    if (progress_file_) std::fclose(progress_file_);
  }
  TechniqueHarness(const TechniqueHarness&) = delete;
  TechniqueHarness& operator=(const TechniqueHarness&) = delete;

  // The run so far took `seconds` of wall time in earlier processes (the meter's resume): wall-time
  // triggers and budgets see it at once. Call once, before anything reads the meter.
  void carry_wall_seconds(double seconds) {
    cost::CarriedMeters carried;
    carried.wall_s = seconds;
    meter.resume(carried, std::nullopt);
  }

  // The lines printed so far (progress lines and messages).
  std::vector<std::string> lines() {
    std::fflush(progress_file_);
    std::ifstream in(fixture.dir() / "progress.txt");
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
  // The printed lines that start with `prefix`.
  std::vector<std::string> lines_starting(const std::string& prefix) {
    std::vector<std::string> out;
    for (const std::string& line : lines())
      if (line.rfind(prefix, 0) == 0) out.push_back(line);
    return out;
  }
  // metrics.jsonl, one parsed row per line.
  std::vector<nlohmann::json> rows() {
    std::ifstream in(std::filesystem::path(out_dir) / "metrics.jsonl");
    std::vector<nlohmann::json> out;
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  }
  std::vector<nlohmann::json> rows_of_kind(const std::string& kind) {
    std::vector<nlohmann::json> out;
    for (const nlohmann::json& row : rows())
      if (row.value("kind", "") == kind) out.push_back(row);
    return out;
  }

  // run_end into a fresh summary, as the loop's finish() does.
  RunSummary end_run(Technique& technique) {
    RunSummary summary;
    state.summary = &summary;
    technique.on(Event::run_end, state);
    state.summary = nullptr;
    return summary;
  }
  // step_end of step `step` (the step just done), with `epoch_done` as the loop sets it.
  void end_step(Technique& technique, int64_t step, bool epoch_done = false) {
    state.step = step;
    state.epoch_done = epoch_done;
    technique.on(Event::step_end, state);
  }

  // Every parameter's gradient set to `value` (f32, the parameter's shape).
  void fill_gradients(double value) {
    for (Tensor& p : state.params) p.set_grad(Tensor::full(p.shape(), value));
  }
  int64_t parameter_count() const {
    int64_t n = 0;
    for (const Tensor& p : state.params) n += p.numel();
    return n;
  }

  RunFixture fixture;
  JobSpec job;
  PreparedData data;
  std::shared_ptr<nn::Module> model;
  std::unique_ptr<optim::Optimizer> optimizer;
  std::unique_ptr<optim::LrSchedule> schedule;
  std::string out_dir, checkpoint_dir;

 private:
  FILE* progress_file_;

 public:
  Progress progress;
  track::RunStore store;
  std::string run_id;
  MetricsLog metrics;
  cost::RunMeter meter;
  TrainState state;

  // The fake checkpoint write: what it reports, the steps it was called at, and the technique (if
  // any) whose save_state it calls, as the loop's pack_checkpoint does; its state lands in `saved`.
  CheckpointWritten next_write{"", 3 * 1048576, 0.25};
  std::vector<int64_t> written_steps;
  Technique* saving = nullptr;
  TechniqueState saved;

 private:
  static optim::SgdOptions sgd_options(const JobSpec& job) {
    optim::SgdOptions options;
    options.lr = job.optim.lr;
    return options;
  }
  static std::unique_ptr<optim::LrSchedule> constant_schedule(const JobSpec& job) {
    optim::ScheduleConfig config;
    config.lr = job.optim.lr;
    return optim::make_schedule(config);
  }
  CheckpointWritten fake_write() {
    written_steps.push_back(state.step);
    CheckpointWritten written = next_write;
    written.path = (std::filesystem::path(checkpoint_dir) / ("ckpt-" + std::to_string(state.step))).string();
    if (saving) {
      saved = TechniqueState(saving->name(), written.path);
      saving->save_state(saved);
    }
    return written;
  }
};

}  // namespace frugal::train::testing
