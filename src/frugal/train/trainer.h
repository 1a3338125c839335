// `frugal train` as a library call. A Trainer wires a job into a run — data, model (the job's, or
// one given by code), optimizer, schedule, the built-in techniques the job switches on and any the
// caller adds, the run directory, the run store, a checkpoint to go on from — and hands them to the
// training loop (loop.h). The run directory gets job.toml, metrics.jsonl, model.safetensors,
// summary.json and checkpoints/. Spot-safe: checkpoints at step boundaries, exit 75 after a
// preemption signal, bit-exact resume (same binary, job, techniques and thread count).
#pragma once

#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "frugal/dist/communicator.h"
#include "frugal/nn/module.h"
#include "frugal/train/data_setup.h"
#include "frugal/train/job.h"
#include "frugal/train/model_setup.h"
#include "frugal/train/summary.h"
#include "frugal/train/technique.h"

namespace frugal::train {

struct TrainOptions {
  std::string out_dir;        // empty: runs/<name>-<timestamp>
  bool quiet = false;         // no progress output
  bool progress_bar = false;  // redraw one line (a terminal); else plain log lines
  FILE* log = stdout;         // where progress and log lines go
  // "" = a fresh run (refused when the checkpoint directory already holds checkpoints); "auto" = go on
  // from the newest good checkpoint of the run directory, or start fresh when there is none; anything
  // else = the checkpoint file to go on from (the run directory defaults to the one it was written for).
  std::string resume;
  // --budget-usd: a dollar limit that replaces [budget] max_usd (the other limits stay).
  std::optional<double> budget_usd;
  // Rows of the prepared training split to train on, in this order (active learning's labelled set):
  // applied after prepare_data, like [data_pruning], so epochs and steps are those of the subset.
  std::optional<std::vector<int64_t>> train_rows;
  // A technique of the caller's sees the full prepared data before the subset (the unlabelled pool).
  std::function<void(const PreparedData& full)> on_prepared;
  // The ranks to train with (dist/communicator.h); null: the job's [dist] backend (auto: MPI when
  // started by mpirun or srun, else one process).
  std::shared_ptr<dist::Communicator> world;
};

struct TrainOutcome {
  int exit_code = 0;  // 0, kExitPreempted (75) after a preemption signal, kExitBudget (3) at a budget limit
  RunSummary summary;  // also in summary.json and the run store
};

// A model made by code for a job whose [model] kind = "custom", from the prepared data (its sample
// shape, classes or vocabulary); flops_per_sample: its forward FLOPs per sample, when known (the
// cost summary's FLOPs and MFU; unknown otherwise). Initialize it deterministically from the job's
// seed (nn::init_parameters) so that runs and resumes repeat.
struct CustomModel {
  std::shared_ptr<nn::Module> model;
  std::optional<int64_t> flops_per_sample;
};
using ModelFactory = std::function<CustomModel(const PreparedData& data)>;

class Trainer {
 public:
  explicit Trainer(JobSpec job, TrainOptions options = {});

  void set_model(ModelFactory make_model);
  // A technique of the caller's, acting beside the built-in ones (technique.h). Its name must be
  // unique in the run; a checkpoint holding its state resumes only with it added again.
  void add_technique(std::unique_ptr<Technique> technique);

  // Trains (or goes on from a checkpoint) to the end or a stop. InputError for bad input, before
  // anything is written; a failure during training records the run as failed and rethrows. In a
  // world of several ranks an error on any rank ends every rank (MPI_Abort) with exit code 2 for bad
  // input, 1 otherwise, after printing it with the rank.
  TrainOutcome run();

 private:
  TrainOutcome run_in(dist::Communicator& world);
  // The job's model (or the one given by code, whose FLOPs go into `plan`).
  std::shared_ptr<nn::Module> make_model(ModelPlan& plan, const PreparedData& data) const;

  JobSpec job_;
  TrainOptions options_;
  ModelFactory make_model_;
  std::vector<std::unique_ptr<Technique>> techniques_;
};

// Trainer(job, options).run(): `frugal train`.
TrainOutcome run_training(const JobSpec& job, const TrainOptions& options);

// Where the shipped catalog is: $FRUGAL_CATALOG, else the first that exists of <dir of the binary>/
// ../catalog/instances.toml (the build tree), <dir of the binary>/../share/frugal/catalog/instances.toml
// (installed), <install prefix>/share/frugal/catalog/instances.toml and the source tree's
// catalog/instances.toml. InputError naming the places tried.
std::string shipped_catalog_path();

}  // namespace frugal::train
