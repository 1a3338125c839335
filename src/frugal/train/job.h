// The job file: a TOML description of one training run (data, model, optimizer, schedule,
// training loop), validated strictly. Every error names the file, the line, the key, the bad value
// and what is allowed. `--set key=value` overrides are applied before validation.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "frugal/autograd/precision.h"
#include "frugal/cost/run_meter.h"
#include "frugal/nn/zoo.h"

namespace frugal::train {

struct RunSpec {
  std::string name = "run";
  uint64_t seed = 0;
  int threads = 0;  // 0 = the cores available (base/machine.h)
  // More threads than available cores slow every step down (they take turns on the cores): such a
  // request is capped with a warning unless forced (train/limits.h).
  bool threads_force = false;
  std::string store = "runs/frugal.db";
};

enum class DataKind { idx, csv, npy, text, packed };
// custom: the model is given by code (C++: Trainer::set_model), not by the job.
enum class ModelKind { mlp, cnn, gpt, custom };
enum class OptimKind { sgd, adamw };
enum class RecomputeMode { none, blocks, automatic };  // job file: none | blocks | auto
enum class EarlyStopMetric { val_loss, val_accuracy, val_bits_per_char };
enum class MetricMode { min, max };

// The job-file spelling of each value ("idx", "gpt", "adamw", "auto", "val_loss", "min", ...).
const char* name_of(DataKind kind);
const char* name_of(ModelKind kind);
const char* name_of(OptimKind kind);
const char* name_of(RecomputeMode mode);
const char* name_of(EarlyStopMetric metric);
const char* name_of(MetricMode mode);

struct DataSpec {
  DataKind kind = DataKind::idx;
  // idx
  std::string train_images, train_labels, test_images, test_labels;
  // csv / npy / text: one file per split (val and test optional: fractions of train instead)
  std::string train, val, test;
  std::string train_targets, val_targets, test_targets;  // npy
  std::string label_column;                               // csv: by name ...
  int64_t label_index = -1;                               // ... or index (-1 = last)
  std::string header = "detect";                          // csv: detect | yes | no
  int64_t skip_lines = 0;                                 // csv: leading file lines to skip
  std::string comment;                                    // csv: lines starting with it are skipped ("" = none)
  // Classification labels: "integer" class indices 0..K-1 (K = class_count, else the largest training
  // label + 1), or "names" (csv: one sorted mapping of the names over all splits, saved with the model).
  std::string labels = "integer";
  int64_t class_count = 0;  // 0: from the training labels
  std::string source = "file";                            // text: file | bible-kjv | bible-web | bible-rv1909
  double val_fraction = 0.0;
  double test_fraction = 0.0;
  std::string normalize = "scalar";  // none | scalar | per-feature
  int64_t crop_padding = 0;          // image augmentation
  bool flip = false;
  int prefetch = 2;
  // The most bytes one data file may hold, raw or inflated (a gzip bomb is refused once past it);
  // 0: half the memory available, at most 4 GiB (data/file_bytes.h).
  int64_t max_bytes = 0;
  // Subsets of classification data (idx, csv, npy), applied by train/data_setup.cc: the classes kept
  // in every split, renumbered 0..k-1 in the listed order (empty = all), then a seeded choice of the
  // training samples left after the val/test splits (0 = no limit).
  std::vector<int64_t> classes;
  int64_t train_limit = 0;
  int64_t per_class = 0;
  // ---- data selection (issue 21: dedup) ----
  // Text: duplicate units of the training split removed (data/dedup.h): "" none, "exact" (hash),
  // "near" (MinHash over character shingles with LSH bands, Jaccard >= dedup_threshold).
  std::string dedup;
  std::string dedup_unit = "line";  // line | paragraph (blank-line separated)
  double dedup_threshold = 0.8;
  int64_t dedup_shingle = 5;        // characters per shingle
  // ---- packed data (kind = "packed": a directory written by `frugal data pack`, data/packed.h) ----
  std::string path;               // the pack directory
  int64_t shuffle_buffer = 8192;  // samples shuffled together within an epoch (rounded up to whole blocks)
  // Loader threads decoding, converting, normalizing and augmenting batches (any kind; packed data
  // benefits most: decompression runs there). Batches do not depend on it.
  int workers = 1;
};

// The [model] section as written; train/model_setup.h completes it from the data (inputs, classes,
// vocabulary) into the one config the model is built from.
struct ModelSpec {
  ModelKind kind = ModelKind::mlp;
  nn::MlpConfig mlp;
  nn::CnnConfig cnn;
  nn::GptConfig gpt;
};

struct OptimSpec {
  OptimKind kind = OptimKind::adamw;
  double lr = 1e-3;
  double momentum = 0.0, dampening = 0.0;
  bool nesterov = false;
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  // lr_multipliers: glob pattern of parameter names (base/glob.h) -> multiplier of the learning
  // rate; the most specific matching pattern wins (TOML tables have no order); unmatched x1.
  std::vector<std::pair<std::string, double>> lr_multipliers;
};

struct ScheduleSpec {
  std::string kind = "constant";  // constant | step | exponential | warmup_cosine | warmup_linear |
                                  // cosine_restarts | one_cycle | plateau
  int64_t warmup_steps = 0;
  double lr_min = 0.0;
  int64_t step_size = 1;
  double gamma = 0.1;
  int64_t t0 = 1, t_mult = 1;
  double pct_start = 0.3, div_factor = 25.0, final_div_factor = 1e4;
  double factor = 0.1, threshold = 1e-4;
  int64_t patience = 10, cooldown = 0;
  std::string mode = "min";
};

struct EarlyStopSpec {
  bool enabled = false;
  EarlyStopMetric metric = EarlyStopMetric::val_loss;
  MetricMode mode = MetricMode::min;
  int64_t patience = 3;
  double min_delta = 0.0;
  bool restore_best = true;
};

struct TrainSpec {
  int64_t epochs = 0;  // exactly one of epochs / steps is set
  int64_t steps = 0;
  int64_t batch_size = 64;
  int64_t grad_accum = 1;
  double clip_norm = 0.0;  // 0 = off
  int64_t eval_every = 0;  // steps; 0 = at the end of each epoch (or every 10% of steps)
  int64_t log_every = 50;
  double label_smoothing = 0.0;
  int64_t eval_tokens = 0;  // language models: tokens per validation pass (0 = whole split)
  double max_minutes = 0;   // wall-clock limit; 0 = none
  EarlyStopSpec early_stopping;
};

// [checkpoint]: when to save the complete training state, and how many files to keep. Triggers
// change only *when* checkpoints are written, never the math, so they may differ on resume.
struct CheckpointSpec {
  bool enabled = true;        // false: no periodic checkpoints (a preemption signal still writes one)
  int64_t every_steps = 0;    // 0 = off
  double every_seconds = 600; // of wall time since the last checkpoint; 0 = off
  bool every_epoch = false;   // after the last step of each epoch
  int keep = 3;               // newest checkpoints kept (>= 1)
  bool interval_auto = false; // interval = "auto": Young/Daly from the measured write time and mtbi
  double mtbi = 0;            // mean time between interruptions, seconds (with interval = "auto")
  std::string dir;            // "" = <out>/checkpoints
};

// [cost]: which instance the run is priced as, and overrides of its catalog entry. Reporting only:
// these keys never change the weights, so they may differ on resume.
using CostSpec = cost::PriceRequest;

// [budget]: limits that stop the run (checkpoint, exit 3) once reached. Unset = no limit.
struct BudgetSpec {
  std::optional<double> max_usd, max_kwh, max_co2_kg, max_hours;
};

// [precision]: the compute precision of the dense ops (autograd/precision.h). Changes results,
// so it may not differ on resume.
struct PrecisionSpec {
  Precision mode = Precision::fp32;
  // fp16-mixed only: dynamic loss scaling (optim/loss_scaler.h), PyTorch GradScaler's defaults.
  double loss_scale_init = 65536.0;
  int64_t loss_scale_growth_interval = 2000;
  double loss_scale_growth_factor = 2.0;
  double loss_scale_backoff_factor = 0.5;
  // int8-mixed only: glob patterns over weight names ("blocks.*.attn.qkv.weight") whose linear
  // products stay bf16-mixed; unset = the output layer (int8_excluded_weights in model_setup.h).
  std::optional<std::vector<std::string>> int8_exclude;
};

// [memory]: activation recomputation (autograd/recompute.h): "blocks" re-runs every block (GPT
// transformer block, CNN conv block) in backward instead of keeping its activations; "auto" the
// fewest blocks whose estimated activation bytes (nn::estimate_activation_bytes) fit
// max_activation_bytes. Gradients are bit-identical either way: only memory and time change.
struct MemorySpec {
  RecomputeMode recompute = RecomputeMode::none;
  int64_t max_activation_bytes = 0;  // with auto only; > 0
};

// [init]: start from weights someone already paid for (train/compress/init.h). Changes results, so
// it may not differ on resume (a resumed run takes its weights from the checkpoint, not from here).
struct InitSpec {
  std::string from;  // a safetensors file, or a run id (or unique prefix) of the run store; "" = none
  // File tensor-name prefix -> model prefix ("transformer.h" -> "blocks"); the longest that matches
  // a name at a dot wins.
  std::vector<std::pair<std::string, std::string>> map;
  std::vector<std::string> skip;  // glob patterns of model tensors not loaded (they keep their init)
};

// [freeze]: parameters that get no gradient and no optimizer state, and the steps from which some
// train again (train/compress/freeze.h).
struct UnfreezeSpec {
  int64_t step = -1;   // these train from optimizer step `step` on (0-based: after `step` updates) ...
  int64_t epoch = -1;  // ... or after `epoch` epochs (step = epoch x steps per epoch); exactly one is set
  std::vector<std::string> params;  // glob patterns of parameter names
};
struct FreezeSpec {
  std::vector<std::string> params;  // glob patterns of parameter names; empty = no [freeze]
  std::vector<UnfreezeSpec> unfreeze;
};

// [lora]: low-rank adapters (nn::Linear::add_lora) on the Linear layers whose dotted names match
// `targets`; every parameter but the adapters and those matching `train` is frozen (no gradient, no
// optimizer state). Present = enabled. Changes results, so it may not differ on resume.
struct LoraSpec {
  bool enabled = false;              // the job has a [lora] section
  int64_t rank = 8;                  // PEFT's defaults: rank 8, alpha 8 (scale 1)
  double alpha = 8;                  // the adapter's output is scaled by alpha / rank
  double dropout = 0;                // on the adapter's input, in training
  std::vector<std::string> targets;  // glob patterns (`*`: any run of characters) of Linear module names
  std::vector<std::string> train;    // glob patterns of parameter names trained besides the adapters
  std::string adapters;              // a file to start the adapters from ("": A drawn, B zero)
};

// [quantize]: quantization-aware training (train/compress/qat.h): from optimizer step start_step on,
// each Linear's and Conv2d's weight is fake-quantized per output channel and its input per tensor
// with the range an observer keeps (minmax: the largest |x| seen; ema: an exponential moving average
// of each batch's largest |x|, decay 0.99); the run then writes model.int8.safetensors from the
// learned ranges beside model.safetensors. Changes results, so it may not differ on resume.
struct QuantizeSpec {
  bool aware = false;
  int64_t start_step = 0;
  std::string observer = "ema";  // "minmax" | "ema"
  double ema_decay = 0.99;
  // "static" (per-tensor input ranges, the default for mlp and cnn) or "dynamic" (per row at run
  // time: Linear inputs not fake-quantized; the default for gpt). "" = the default.
  std::string activations;
};

// [distill]: knowledge distillation (train/compress/distill.h). The loss becomes
// alpha x T^2 x KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) x the hard-label loss.
// Changes results, so it may not differ on resume.
struct DistillSpec {
  std::string teacher;  // the teacher's job file (its [model]; its [data] must match this job's)
  std::string weights;  // the teacher's weights: a safetensors file, or a run id (prefix) of the run store
  double alpha = 0.5;   // weight of the soft-target loss, (0, 1]
  double temperature = 4.0;
  bool cache = false;   // the teacher's logits of every training sample computed once into a file
};

// [prune]: masks that remove weights, or whole neurons / conv channels / attention heads / GPT MLP
// units, on a schedule (train/compress/prune.h). Present = enabled. Changes results, so it may not
// differ on resume. Steps left at -1 are resolved against the run's length at run_start.
enum class PruneStructure { weights, neurons, channels, heads, mlp };
enum class PruneScore { magnitude, taylor };
struct PruneSpec {
  bool enabled = false;  // the job has a [prune] section
  std::vector<PruneStructure> structures = {PruneStructure::weights};
  double sparsity = 0.5;          // the final fraction removed, in [0, 1)
  double initial_sparsity = 0.0;  // gradual: s_i of the cubic schedule
  bool global = true;             // scope = "global" (one threshold) or "layer" (each layer the same fraction)
  PruneScore score = PruneScore::magnitude;
  bool gradual = true;            // schedule = "gradual" (cubic, Zhu & Gupta 2017) or "oneshot"
  int64_t start_step = -1, end_step = -1, every = -1;  // -1: 10% and 60% of the run, (end - start) / 10
  std::vector<std::string> layers, exclude;  // glob patterns of weight names; empty layers = the default choice
  bool compact = true;            // structured: the run's model.safetensors is the compacted smaller model
};

// [alerts] (job_alerts.cc): where budget warnings and the run's end are sent (a webhook, a command
// hook). Unset keys come from the user config's [alerts] (user_config_path()), then the defaults of
// track::AlertConfig; a key set in the job wins.
struct AlertsSpec {
  std::optional<std::string> webhook, on_alert;
  std::optional<int64_t> retries;
  std::optional<double> backoff_s, timeout_s, command_timeout_s, flush_timeout_s;
};

// ---- Data efficiency, issue 21 part 1 (train/sampling/: seq_warmup, curriculum, selective_backprop,
// importance_sampling). Each present section = enabled; all change results, so a resume refuses a change.

// [seq_warmup]: the GPT trains on shorter contexts first (Composer's SeqLengthWarmup): the length
// grows linearly from `start` to the job's context over the first `steps` steps, in multiples of
// `multiple`. truncate: each window cut to its first L tokens (fewer tokens per step); reshape:
// each window cut into T / L windows of L (the same tokens per step, more sequences).
struct SeqWarmupSpec {
  bool enabled = false;
  int64_t start = 16;       // first length, a multiple of `multiple`, <= context
  int64_t steps = -1;       // steps to reach the full context; -1: fraction x the run's steps
  double fraction = 0.25;   // used when steps = -1
  int64_t multiple = 8;     // lengths are rounded down to a multiple of this (at least `multiple`)
  bool reshape = false;     // mode = "truncate" (false) or "reshape"
};

// [curriculum]: batches of step t are drawn from the g(t) easiest training samples (Wu et al. 2021):
// g(t) = N x min(1, start + (1 - start) x f(t' / (full_at x T'))), f by pacing; t' and T' count from
// the curriculum's first step (after the self-scoring epochs for score = "self").
enum class CurriculumPacing { linear, root, step };
enum class CurriculumOrder { easy, anti, random };  // easiest first; hardest first; a random pool (control)
struct CurriculumSpec {
  bool enabled = false;
  std::string scores;            // a score file (frugal data score, sample_scores.h); "" with score = "self"
  std::string score = "el2n";    // the kind read from it, or "self" (the model's own loss in its first epochs)
  int64_t self_epochs = 1;       // score = "self": epochs on all data recording each sample's loss
  CurriculumPacing pacing = CurriculumPacing::linear;
  double start = 0.2;            // the pool's first fraction of the data, (0, 1]
  double full_at = 0.5;          // fraction of the (curriculum's) steps at which the pool holds all data, (0, 1]
  int64_t stages = 4;            // pacing = "step": the pool grows in this many equal jumps
  CurriculumOrder order = CurriculumOrder::easy;
};

// [selective_backprop] (Jiang et al. 2019, top-k form): a no-grad forward on each micro-batch, then
// forward and backward only on the `keep` fraction with the highest loss, from step start_step on.
struct SelectiveBackpropSpec {
  bool enabled = false;
  double keep = 0.5;        // (0, 1]
  int64_t start_step = 0;   // steps before it on the whole batch
};

// [importance_sampling]: each epoch from start_epoch on draws its samples with probability
// proportional to (the sample's last seen loss + smoothing x the mean loss).
struct ImportanceSamplingSpec {
  bool enabled = false;
  double smoothing = 0.5;   // >= 0; larger is closer to uniform
  int64_t start_epoch = 1;  // >= 1: the epochs before it go through the data once (every loss seen)
  bool reweight = false;    // weigh each sample's loss by 1 / (N p) (unbiased gradient)
};
// ---- end of issue 21 part 1

// ---- beyond one machine (issue 19: train/parallel/) ----
// [dist]: how the ranks of `mpirun -np N frugal train` (or srun) share a step. The job's global batch
// is train.batch_size x train.grad_accum micro-batches whatever the world size; the world splits
// them (micro-batch i of a step goes to rank i % size), so train.grad_accum must be a multiple of
// the world size. Without compression the sum runs in one fixed order and N ranks end bit-identical
// to one process.
enum class Compression { none, bf16, topk, powersgd, local_sgd, sign };
const char* name_of(Compression c);
struct DistSpec {
  std::string backend = "auto";        // auto | local | mpi (dist::open_world)
  Compression compression = Compression::none;
  double bucket_mib = 4;               // exact reduction: gradients sent in buckets of this size
  double topk_ratio = 0.01;            // topk: the share of each gradient's entries sent, (0, 1]
  bool error_feedback = true;          // topk, powersgd, bf16, sign: what was not sent is added next step
  int64_t powersgd_rank = 4;           // powersgd: rank r of the low-rank factors
  int64_t warmup_steps = 0;            // compressed methods: exact sums for the first steps
  int64_t local_sgd_every = 8;         // local_sgd: parameters averaged every H steps
};

// [federated] (present = on): federated averaging over `clients` simulated clients, or over the
// ranks of an MPI world (clients spread over ranks), each round a sample of clients trains
// local_epochs on its own shard and the server averages their weights (weighted by shard size).
enum class FederatedAlgorithm { fedavg, fedprox };
enum class FederatedSplit { iid, dirichlet };
struct FederatedSpec {
  bool enabled = false;
  FederatedAlgorithm algorithm = FederatedAlgorithm::fedavg;
  int64_t clients = 10;
  int64_t clients_per_round = 10;  // <= clients
  int64_t rounds = 50;
  int64_t local_epochs = 1;
  FederatedSplit split = FederatedSplit::iid;
  double alpha = 0.3;              // dirichlet: concentration of each class over clients
  double mu = 0.01;                // fedprox: weight of the proximal term mu/2 ||w - w_global||^2
  double target_accuracy = 0;      // > 0: report the round (and bytes) it is first reached
};
// ---- end of issue 19

// ---- data selection (issue 21: data pruning) ----
// [data_pruning] (train/sampling/data_pruning.h): train on a fraction of the training rows chosen by a
// per-sample score file of `frugal data score`. Present = enabled.
enum class DataPruningKeep { hardest, easiest, balanced, random };
const char* name_of(DataPruningKeep keep);
struct DataPruningSpec {
  bool enabled = false;
  std::string scores;          // the score file (resolved path)
  std::string score = "el2n";  // the kind in it
  double fraction = 0.6;       // kept, in (0, 1]
  DataPruningKeep keep = DataPruningKeep::hardest;
};

struct JobSpec {
  std::string path;  // the job file as given
  RunSpec run;
  DataSpec data;
  ModelSpec model;
  OptimSpec optim;
  ScheduleSpec schedule;
  TrainSpec train;
  CheckpointSpec checkpoint;
  CostSpec cost;
  BudgetSpec budget;
  PrecisionSpec precision;
  MemorySpec memory;
  InitSpec init;
  FreezeSpec freeze;
  LoraSpec lora;
  PruneSpec prune;
  QuantizeSpec quantize;
  std::optional<DistillSpec> distill;  // [distill] present
  DataPruningSpec data_pruning;        // [data_pruning] (issue 21)
  AlertsSpec alerts;
  // Data efficiency, issue 21 part 1 (train/sampling/).
  SeqWarmupSpec seq_warmup;
  CurriculumSpec curriculum;
  SelectiveBackpropSpec selective_backprop;
  ImportanceSamplingSpec importance_sampling;
  // Beyond one machine, issue 19 (train/parallel/, job_dist.h).
  DistSpec dist;
  FederatedSpec federated;
  // Path keys as resolved by load_job (job_paths.h): "data.train" -> the path used; and each such
  // path -> where it came from, for a not-found message ("[data] train = "x.csv" in job.toml,
  // resolved against the job file's directory /home/me/jobs").
  std::map<std::string, std::string> paths, path_origins;
  std::string resolved_toml;  // the job after overrides, as TOML (paths as written)
  std::string hash;           // of resolved_toml (hex)
};

// True for a system directory a run must not write into ("/", "/usr", "/etc", "/tmp"... itself, or
// anything under /proc, /sys or /dev); the path is made absolute and normalized first.
bool is_system_directory(const std::string& path);

// Reads and validates `path`, applying `overrides` ("section.key=value", value in TOML syntax or a
// bare string). Throws InputError on any problem.
JobSpec load_job(const std::string& path, const std::vector<std::string>& overrides = {});

// The same for a job's text already in memory; `path` names it in messages (and is the job's path).
JobSpec parse_job(std::string_view text, const std::string& path, const std::vector<std::string>& overrides = {});

// Every leaf of a resolved job as "section.key" -> its value in TOML syntax (arrays are leaves), for
// comparing two runs' jobs. `what` names the text in the InputError when it is not valid TOML.
std::map<std::string, std::string> job_keys(const std::string& resolved_toml, const std::string& what);

}  // namespace frugal::train
