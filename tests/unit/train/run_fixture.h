// A small classification job for tests that run the training loop in-process: a 4-class CSV made
// by a fixed LCG, written with a job file into a fresh directory, and run through Trainer with the
// techniques a test adds. Limits: MLP on 16 features; a run takes well under a second.
#pragma once

#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "csv_data.h"
#include "frugal/train/job.h"
#include "frugal/train/technique.h"
#include "frugal/train/trainer.h"

namespace frugal::train::testing {

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A scratch directory with data.csv and job.toml; `sections` is appended to the job (TOML).
// Raises SIGUSR1 after optimizer step `step` (a preemption: the run checkpoints there and exits 75),
// for the tests that resume a run and expect it to end bit-identical.
class PreemptAt : public Technique {
 public:
  explicit PreemptAt(int64_t step) : step_(step) {}
  std::string name() const override { return "preempt_at"; }
  EventSet events() const override { return event_set({Event::after_optimizer_step}); }
  void on(Event, TrainState& state) override {
    if (state.step == step_) std::raise(SIGUSR1);
  }

 private:
  int64_t step_;
};

class RunFixture {
 public:
  RunFixture(const std::string& name, int rows, const std::string& sections)
      : dir_(std::filesystem::path(::testing::TempDir()) / ("frugal-" + name)) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / "data.csv") << frugal::testing::four_class_csv(rows);
    std::ofstream(dir_ / "job.toml") << "[run]\nname = \"t\"\nseed = 3\nthreads = 1\nstore = \"" +
                                            (dir_ / "runs.db").string() + "\"\n" +
                                            "[data]\nkind = \"csv\"\ntrain = \"" + (dir_ / "data.csv").string() +
                                            "\"\nval_fraction = 0.1\n" + sections;
  }
  const std::filesystem::path& dir() const { return dir_; }
  JobSpec job(const std::vector<std::string>& overrides = {}) const {
    return load_job((dir_ / "job.toml").string(), overrides);
  }
  // Options for a quiet run into dir/<out>.
  TrainOptions options(const std::string& out, const std::string& resume = "") const {
    TrainOptions o;
    o.out_dir = (dir_ / out).string();
    o.quiet = true;
    o.resume = resume;
    return o;
  }

 private:
  std::filesystem::path dir_;
};

}  // namespace frugal::train::testing
