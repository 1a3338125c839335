// The summary of one training run, typed: what `frugal train` prints, writes to summary.json and
// records in the run store. to_json gives the documented JSON (README, `--json`) with keys sorted;
// from_json reads it back (summary.json of a finished run). Limits: technique figures beyond the
// built-in ones travel as JSON under "techniques".
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frugal/cost/run_meter.h"

namespace frugal::train {

// Quality at the end of the run. train_loss is the mean of the last logged window (NaN, null in
// JSON, before any step was logged); the others come from the final evaluation.
struct FinalMetrics {
  double train_loss = NAN;
  std::optional<double> val_loss, val_accuracy, val_bits_per_char, test_loss, test_accuracy, test_bits_per_char;
};

// Tensor memory by category, measured by the allocator: peaks since the run started, except
// weights and optimizer state, which only grow (their peak is their size).
struct MemorySummary {
  int64_t weights_bytes = 0, gradients_bytes = 0, optimizer_state_bytes = 0, activations_peak_bytes = 0,
          workspace_peak_bytes = 0, other_peak_bytes = 0, allocator_cached_bytes = 0, peak_total_bytes = 0;
};
MemorySummary measure_memory();  // from Storage's counters now

// Checkpoints and interruptions over every process of the run.
struct CheckpointSummary {
  std::optional<std::string> resumed_from;  // the checkpoint this process went on from
  int64_t interruptions = 0, checkpoints = 0;
  double checkpoint_s = 0, lost_s = 0;
  std::string checkpoint_dir;
  std::optional<double> checkpoint_bytes;    // the last one this process wrote
  std::optional<double> checkpoint_write_s;  // mean seconds per write
  // interval = "auto": the Young/Daly interval chosen, the mtbi it assumed, the expected work lost
  std::optional<double> checkpoint_interval_s, checkpoint_mtbi_s, expected_lost_s_per_interruption;
};

struct RecomputeSummary {
  std::string mode = "none";
  std::vector<int64_t> blocks;
  int64_t estimated_activation_bytes = 0;
};

// [lora]: the adapters of the run (train/compress/lora.h).
struct LoraSummary {
  int64_t rank = 0;
  double alpha = 0, dropout = 0;
  std::vector<std::string> targets;  // the job's patterns
  int64_t modules = 0;               // Linear layers adapted
  int64_t adapter_params = 0;        // elements of lora_a and lora_b over all of them
};

struct LossScalingSummary {
  double final_scale = 0, init_scale = 0;
  int64_t skipped_steps = 0, growth_interval = 0;
};

struct BudgetSummary {
  std::optional<double> max_usd, max_kwh, max_co2_kg, max_hours;
  std::string exceeded;  // which limit was reached, "" when none
};

// [init] of a text model whose file has another vocabulary than the job: counts of characters.
struct InitVocab {
  int64_t shared = 0;   // in both: their rows were loaded
  int64_t added = 0;    // only in the job's text: their rows kept the fresh initialization
  int64_t dropped = 0;  // only in the file: their rows were not used
  // "vocabulary: 62 characters shared, 3 new, 1 dropped"
  std::string describe() const;
};

// [init]: the weights the run started from (train/compress/init.h).
struct InitSummary {
  std::string from;                  // the file read
  std::optional<std::string> run_id;  // the store's run whose model it is, when [init] from named a run
  int64_t loaded = 0;                // model tensors loaded from it
  std::vector<std::string> skipped;  // model tensors left as initialized ([init] skip)
  int64_t unused = 0;                // tensors of the file the model has no tensor for
  std::optional<InitVocab> vocab;    // when both the file and the job have a vocabulary
};

// [distill]: the teacher and what it cost over every process of the run. The teacher's forward
// passes at after_loss are inside phases.forward (teacher_forward_s of it); building the logit
// cache is inside phases.evaluation (cache_build_s), its FLOPs are not in cost.flops.
struct DistillSummary {
  std::string teacher, weights;  // the teacher's job file and weights file
  int64_t teacher_params = 0;
  double alpha = 0, temperature = 0;
  double teacher_forward_s = 0;
  int64_t teacher_forward_batches = 0;  // micro-batches the teacher ran on (0 with the cache)
  bool cache = false;
  // With the cache: its file and size, "built" (this run computed it), "reused" (found valid) or
  // "rebuilt" (a damaged or stale file was replaced), the seconds building it took in this run,
  // and the teacher's forward FLOPs over the training set for the build (estimated; 0 when reused).
  std::string cache_path, cache_status;
  int64_t cache_bytes = 0;
  double cache_build_s = 0;
  std::optional<double> cache_build_flops;
};

struct RunSummary {
  std::string run_id, status, stop_reason;  // status: completed | preempted | stopped_budget | stopped_nonfinite
  double epochs = 0;
  int64_t steps = 0, samples_seen = 0;
  FinalMetrics metrics;
  double train_compute_s = 0, data_wait_s = 0;
  int64_t peak_rss_bytes = 0;
  MemorySummary memory;
  int64_t params = 0;
  int64_t trainable_params = 0;  // parameters (elements) with requires_grad at the end of the run
  int threads = 0;
  std::string out_dir, job_hash;
  CheckpointSummary checkpoint;
  RecomputeSummary recompute;
  std::optional<LossScalingSummary> loss_scaling;  // fp16-mixed
  std::optional<LoraSummary> lora;                 // [lora]
  std::optional<std::string> signal;               // the preemption signal that stopped the run
  std::optional<int64_t> best_step;                // early stopping
  cost::CostSummary cost;                          // wall_s is cost.wall_s
  std::optional<BudgetSummary> budget;
  std::optional<InitSummary> init;  // [init]
  std::optional<DistillSummary> distill;
  std::map<std::string, nlohmann::json> techniques;  // figures of techniques defined outside frugal, by name

  nlohmann::json to_json() const;
  // InputError naming `where` when the JSON lacks a field or has a wrong type.
  static RunSummary from_json(const nlohmann::json& json, const std::string& where);
};

// A figure as every JSON of frugal writes it: {"value": V, "source": "measured" | ...}.
nlohmann::json figure_json(const cost::Figure& f);

}  // namespace frugal::train
