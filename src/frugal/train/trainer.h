// The training loop behind `frugal train`: builds data, model, optimizer and schedule from a job,
// trains with gradient accumulation, clipping, periodic evaluation and early stopping, and writes
// the run directory (job.toml, metrics.jsonl, model.safetensors, summary.json) and the run store.
// Spot-safe: checkpoints at step boundaries ([checkpoint]), stops with exit 75 on SIGTERM/SIGINT/
// SIGUSR1 after a checkpoint, and resumes bit-exactly (same binary, job and thread count).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "frugal/nn/module.h"
#include "frugal/train/data_setup.h"
#include "frugal/train/job.h"

namespace frugal::train {

struct TrainOptions {
  std::string out_dir;   // empty: runs/<name>-<timestamp>
  bool quiet = false;    // no progress output
  bool progress_bar = false;  // redraw one line (a terminal); else plain log lines
  FILE* log = stdout;    // where progress and log lines go
  // "" = a fresh run (refused when the checkpoint directory already holds checkpoints); "auto" = go on
  // from the newest good checkpoint of the run directory, or start fresh when there is none; anything
  // else = the checkpoint file to go on from (the run directory defaults to the one it was written for).
  std::string resume;
  // --budget-usd: a dollar limit that replaces [budget] max_usd (the other limits stay).
  std::optional<double> budget_usd;
};

// Exit code of a run stopped by a [budget] limit, after its checkpoint (status "stopped_budget").
inline constexpr int kExitBudget = 3;

struct TrainOutcome {
  int exit_code = 0;  // 0, kExitPreempted (75) after a preemption signal, kExitBudget (3) at a budget limit
  std::string summary_json;  // the object also written to summary.json
};

TrainOutcome run_training(const JobSpec& job, const TrainOptions& options);

// Where the shipped catalog is: $FRUGAL_CATALOG, else <dir of the binary>/../catalog/instances.toml, else
// the source tree's catalog/instances.toml; the first that exists. InputError naming the places tried.
std::string shipped_catalog_path();

// Forward FLOPs of one sample of the job's model on data of this shape (nn::count_flops_per_sample).
int64_t model_flops_per_sample(const JobSpec& job, const PreparedData& data);

// Builds the model of the job for data of this shape (classes or vocabulary from `data`).
std::shared_ptr<nn::Module> build_model(const JobSpec& job, const PreparedData& data);

struct EvalMetrics {
  double loss = 0;
  double accuracy = -1;        // classification only
  double bits_per_char = -1;   // text only
  int64_t samples = 0;
};

// Mean cross-entropy (and accuracy) over a classification split, batch by batch, in eval mode.
EvalMetrics evaluate_classifier(nn::Module& model, const data::Dataset& split, int64_t batch_size);
// Mean per-character loss and bits per character over a token stream, in order, in eval mode.
EvalMetrics evaluate_language_model(nn::Module& model, const Tensor& tokens, int64_t batch, int64_t context,
                                    int64_t max_tokens);

// Loads weights saved by frugal (or PyTorch, with the same names) into the job's model.
std::shared_ptr<nn::Module> load_model(const JobSpec& job, const PreparedData& data, const std::string& weights);

// Generates `tokens` characters after `prompt` with temperature sampling keyed by `seed`.
std::string sample_text(nn::Module& model, const data::CharVocab& vocab, int64_t context, const std::string& prompt,
                        int64_t tokens, double temperature, uint64_t seed);

int64_t peak_rss_bytes();

}  // namespace frugal::train
