// Trainer: a job wired into a run and handed to the training loop (see trainer.h). Everything that
// can be wrong with the input (catalog, budget, data, model, a refused resume) is found before the
// first file is written; a resumed process restores model, optimizer, schedule, position, meters and
// every technique's state from its checkpoint before the loop starts.
#include "frugal/train/trainer.h"

#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>

#include "frugal/autograd/precision.h"
#include "frugal/base/format.h"
#include "frugal/base/parallel.h"
#include "frugal/base/signals.h"
#include "frugal/data/loader.h"
#include "frugal/io/checkpoint.h"
#include "frugal/optim/optimizer.h"
#include "frugal/optim/schedule.h"
#include "frugal/track/run_store.h"
#include "frugal/train/compress/compress.h"
#include "frugal/train/compress/lora.h"
#include "frugal/train/compress/distill.h"
#include "frugal/train/sampling/sampling.h"
#include "frugal/train/limits.h"
#include "frugal/train/job_paths.h"
#include "frugal/train/loop.h"
#include "frugal/train/model_setup.h"
#include "frugal/train/resume.h"
#include "frugal/train/sampling/data_pruning.h"
#include "frugal/train/techniques/builtin.h"
#include "frugal/train/techniques/packed_data.h"
#include "frugal/train/parallel/data_parallel.h"

namespace frugal::train {

namespace fs = std::filesystem;

std::string shipped_catalog_path() {
  if (const char* env = std::getenv("FRUGAL_CATALOG"); env && *env) {
    if (!fs::is_regular_file(env)) throw InputError(std::string("FRUGAL_CATALOG=") + env + ": no such file");
    return env;
  }
  std::vector<fs::path> tried;
  std::error_code error;
  fs::path exe = fs::read_symlink("/proc/self/exe", error);
  if (!error) tried.push_back(exe.parent_path() / ".." / "catalog" / "instances.toml");
  if (!error) tried.push_back(exe.parent_path() / FRUGAL_INSTALLED_CATALOG);  // installed: ../share/frugal/catalog/
  tried.push_back(FRUGAL_PREFIX_CATALOG);  // a program linked against the installed libfrugal
  tried.push_back(fs::path(FRUGAL_SOURCE_DIR) / "catalog" / "instances.toml");
  std::string places;
  for (const fs::path& p : tried) {
    if (fs::is_regular_file(p, error)) return p.lexically_normal().string();
    places += (places.empty() ? "" : ", ") + p.lexically_normal().string();
  }
  throw InputError("cannot find the instance catalog (looked in " + places +
                   "): set FRUGAL_CATALOG to the path of catalog/instances.toml");
}

namespace {

void warn(const std::string& text) {
  std::fflush(stdout);
  std::fprintf(stderr, "frugal: warning: %s\n", text.c_str());
}

// Restores the preemption handlers that were in place before the run, whatever way it ends.
struct PreemptionScope {
  PreemptionScope() {
    clear_preemption();
    install_preemption_handlers();
  }
  ~PreemptionScope() { uninstall_preemption_handlers(); }
};

// The parameter groups: decay / no_decay, split by [optim] lr_multipliers when given.
std::unique_ptr<optim::Optimizer> make_optimizer(const JobSpec& job, nn::Module& model) {
  const OptimSpec& o = job.optim;
  std::vector<optim::ParamGroup> groups;
  try {
    groups = optim::param_groups_by_lr(model, o.weight_decay, o.lr_multipliers);
  } catch (const InputError& e) {
    throw InputError(job.path + ": [optim] lr_multipliers: " + e.what());
  }
  if (o.kind == OptimKind::sgd) {
    optim::SgdOptions options;
    options.lr = o.lr;
    options.momentum = o.momentum;
    options.dampening = o.dampening;
    options.nesterov = o.nesterov;
    options.weight_decay = o.weight_decay;
    return std::make_unique<optim::SGD>(groups, options);
  }
  optim::AdamWOptions options;
  options.lr = o.lr;
  options.beta1 = o.beta1;
  options.beta2 = o.beta2;
  options.eps = o.eps;
  options.weight_decay = o.weight_decay;
  return std::make_unique<optim::AdamW>(groups, options);
}

std::unique_ptr<optim::LrSchedule> make_schedule(const ScheduleSpec& spec, double lr, int64_t total_steps) {
  optim::ScheduleConfig c;
  c.kind = spec.kind;
  c.lr = lr;
  c.total_steps = total_steps;
  c.warmup_steps = spec.warmup_steps;
  c.lr_min = spec.lr_min;
  c.step_size = spec.step_size;
  c.gamma = spec.gamma;
  c.t_0 = spec.t0;
  c.t_mult = spec.t_mult;
  c.pct_start = spec.pct_start;
  c.div_factor = spec.div_factor;
  c.final_div_factor = spec.final_div_factor;
  c.plateau.mode = spec.mode;
  c.plateau.factor = spec.factor;
  c.plateau.patience = spec.patience;
  c.plateau.threshold = spec.threshold;
  c.plateau.cooldown = spec.cooldown;
  c.plateau.min_lr = spec.lr_min;
  return optim::make_schedule(c);
}

// The micro-batches of the run and its length in optimizer steps. Classification counts epochs of
// micro-batches (the last step of an epoch may have fewer than grad_accum); text, random windows.
struct Batches {
  std::optional<data::Loader> loader;
  std::optional<data::TokenLoader> tokens;
  int64_t steps_per_epoch = 0, total_steps = 0, batches_per_epoch = 0;
  BatchSource source() { return {loader ? &*loader : nullptr, tokens ? &*tokens : nullptr}; }
};

void make_batches(const JobSpec& job, const PreparedData& data, Batches& out) {
  const TrainSpec& t = job.train;
  if (data.is_text) {
    const int64_t context = job.model.gpt.context;
    out.tokens.emplace(data.train_tokens, t.batch_size, context, job.run.seed, job.data.prefetch);
    out.steps_per_epoch = std::max<int64_t>(1, data.train_tokens.numel() / (t.batch_size * context * t.grad_accum));
  } else {
    data::LoaderOptions lo;
    lo.batch_size = t.batch_size;
    lo.shuffle = true;
    lo.seed = job.run.seed;
    lo.augment.crop_padding = job.data.crop_padding;
    lo.augment.horizontal_flip = job.data.flip;
    lo.prefetch = job.data.prefetch;
    lo.workers = job.data.workers;
    if (data.train_packed) out.loader.emplace(data.train_packed, lo);  // streamed from the shards
    else out.loader.emplace(data.train, lo);
    out.batches_per_epoch = out.loader->batches_per_epoch();
    out.steps_per_epoch = (out.batches_per_epoch + t.grad_accum - 1) / t.grad_accum;
  }
  out.total_steps = t.steps ? t.steps : t.epochs * out.steps_per_epoch;
}

// The checkpoint to go on from and the run directory, found and checked before anything is written:
// a refused or impossible resume (exit 2) leaves the directory, its checkpoints and the store untouched.
struct ResumePoint {
  std::optional<io::CheckpointState> checkpoint;
  std::string path, out_dir, checkpoint_dir;
};

ResumePoint find_resume_point(const JobSpec& job, const TrainOptions& options) {
  ResumePoint r;
  if (!options.resume.empty() && options.resume != "auto") {
    r.checkpoint = io::read_checkpoint(options.resume);
    r.path = options.resume;
  }
  r.out_dir = options.out_dir;
  if (r.out_dir.empty() && r.checkpoint) {
    auto it = r.checkpoint->values.find("out_dir");
    if (it != r.checkpoint->values.end()) r.out_dir = it->second;
  }
  if (r.out_dir.empty()) {
    if (options.resume == "auto") throw InputError("--resume auto needs --out DIR, the run directory to continue");
    r.out_dir = (fs::path("runs") / (job.run.name + "-" + utc_time(double(std::time(nullptr)), "%Y%m%d-%H%M%S"))).string();
  }
  if (is_system_directory(r.out_dir))
    throw InputError("--out " + r.out_dir + ": a system directory; give the run a directory of its own");
  r.checkpoint_dir = job.checkpoint.dir.empty() ? (fs::path(r.out_dir) / "checkpoints").string() : job.checkpoint.dir;
  if (options.resume == "auto") {
    if (std::optional<io::LatestCheckpoint> latest = io::load_latest_checkpoint(r.checkpoint_dir)) {
      for (const std::string& w : latest->warnings) warn(w);
      r.checkpoint = std::move(latest->state);
      r.path = latest->path;
    }
  } else if (!r.checkpoint && has_checkpoint_files(r.checkpoint_dir)) {
    throw InputError(r.checkpoint_dir + " already holds checkpoints of an earlier run: continue it with --resume auto, "
                     "or start a new run in another --out directory (or [checkpoint] dir)");
  }
  if (r.checkpoint) {
    check_resumable(*r.checkpoint, r.path, job);
    upgrade_checkpoint(*r.checkpoint);
  }
  return r;
}

// Restores model, optimizer, schedule, position, meters and every technique's state from the
// checkpoint of `resume`, then frees its buffer. The heartbeat tells how far the interrupted process
// got after the checkpoint: that work is lost.
LoopPosition restore_checkpoint(ResumePoint& resume, nn::Module& model, optim::Optimizer& optimizer,
                                optim::LrSchedule& schedule, const std::vector<std::unique_ptr<Technique>>& techniques,
                                cost::RunMeter& meter, int64_t total_steps) {
  LoopPosition position = unpack_checkpoint(*resume.checkpoint, resume.path, model, optimizer, schedule, techniques);
  std::optional<cost::LastBeat> beat;
  std::optional<HeartbeatRecord> heartbeat = read_heartbeat(heartbeat_path(resume.checkpoint_dir));
  if (heartbeat && heartbeat->run_id == position.run_id && heartbeat->step >= position.step)
    beat = cost::LastBeat{heartbeat->wall_s, heartbeat->checkpoint_s};
  meter.resume(cost::read_carried_meters(resume.checkpoint->values, resume.path), beat);
  resume.checkpoint.reset();  // the weights were copied; free the file's buffer
  if (position.step > total_steps)
    throw InputError(resume.path + ": checkpoint of step " + std::to_string(position.step) + " is past the job's " +
                     std::to_string(total_steps) + " steps");
  if (position.threads != num_threads())
    warn("the checkpoint was written with " + std::to_string(position.threads) + " threads, this run has " +
         std::to_string(num_threads()) + ": weights are bit-exact only for the same thread count (set [run] threads)");
  return position;
}

// ---- data selection (issue 21) ----
// [data_pruning] and TrainOptions::train_rows subset the training split before the loader is built,
// so epochs, steps and the schedule are those of the rows trained on.
void select_training_rows(const JobSpec& job, const TrainOptions& options, PreparedData& data,
                          std::vector<std::unique_ptr<Technique>>& techniques, RunSummary& summary) {
  if (options.on_prepared) options.on_prepared(data);
  if (data.dedup) summary.techniques["dedup"] = *data.dedup;
  if (job.data_pruning.enabled && options.train_rows)
    throw InputError(job.path + ": [data_pruning] does not combine with a given list of training rows (active learning)");
  if (job.data_pruning.enabled) techniques.push_back(std::make_unique<DataPruningReport>(apply_data_pruning(job, data)));
  if (!options.train_rows) return;
  if (data.is_text) throw InputError(job.path + ": a list of training rows is for classification data");
  if (data.train_packed)
    throw InputError(job.path + ": a list of training rows (active learning) needs the training split in memory; packed "
                     "data streams it (use the job that reads the raw files)");
  const int64_t of = data.train.size();
  for (int64_t row : *options.train_rows)
    if (row < 0 || row >= of)
      throw InputError("training row " + std::to_string(row) + " is outside the training split's " + std::to_string(of));
  if (options.train_rows->empty()) throw InputError("the list of training rows is empty");
  data.train = data::take(data.train, *options.train_rows);
  data.describe += "; training on " + std::to_string(options.train_rows->size()) + " given rows of " + std::to_string(of);
  summary.techniques["train_rows"] = {{"rows", int64_t(options.train_rows->size())}, {"of", of}};
}
// ---- end of data selection ----

void check_unique_names(const std::vector<std::unique_ptr<Technique>>& techniques) {
  std::set<std::string> names;
  for (const auto& technique : techniques)
    if (!names.insert(technique->name()).second)
      throw InputError("two techniques are named '" + technique->name() + "': names must be unique in a run");
}

// `--resume auto` on a run that already completed: nothing to redo; its summary.
std::optional<RunSummary> completed_run(const std::string& out_dir) {
  const fs::path summary_path = fs::path(out_dir) / "summary.json";
  std::ifstream in(summary_path);
  nlohmann::json done = in ? nlohmann::json::parse(in, nullptr, false) : nlohmann::json();
  if (!done.is_object() || done.value("status", "") != "completed" || !fs::exists(fs::path(out_dir) / "model.safetensors"))
    return std::nullopt;
  return RunSummary::from_json(done, summary_path.string());
}

// The first lines of a run's output: what it trains, and on what.
void announce(TrainState& state, const ModelPlan& plan, int64_t batch_size, const std::optional<LoraReport>& lora) {
  Progress& out = state.progress;
  out.line("run " + state.run_id + ": " + state.data.describe + "; model " + name_of(plan.kind) + " with " +
           std::to_string(state.model.num_parameters()) + " parameters; " + std::to_string(num_threads()) + " threads");
  if (lora) {
    const LoraSummary& l = lora->summary;
    out.line("lora: rank " + std::to_string(l.rank) + ", alpha " + number_text(l.alpha) + " on " +
             std::to_string(l.modules) + " Linear layers (" + std::to_string(l.adapter_params) +
             " adapter parameters); trainable " + std::to_string(state.model.num_trainable_parameters()) + " of " +
             std::to_string(state.model.num_parameters()) + " parameters" +
             (state.job.lora.adapters.empty() ? "" : "; adapters from " + state.job.lora.adapters));
  }
  if (plan.recompute != RecomputeMode::none) {
    auto mib = [](int64_t bytes) { return Progress::fixed(double(bytes) / 1048576.0, 1) + " MiB"; };
    std::string blocks;
    for (int64_t b : plan.recompute_blocks) blocks += (blocks.empty() ? "" : ", ") + std::to_string(b);
    out.line(std::string("recompute ") + name_of(plan.recompute) + ": blocks [" + blocks + "] of " +
             std::to_string(plan.block_count) + "; estimated activations " + mib(plan.estimated_activation_bytes) +
             " per micro-batch of " + std::to_string(batch_size));
    if (!plan.fits)
      out.line("recompute auto: no choice of blocks brings the estimate within max_activation_bytes " +
               std::to_string(state.job.memory.max_activation_bytes) + "; recomputing the blocks with the lowest (" +
               std::to_string(plan.estimated_activation_bytes) + " bytes)");
    if (plan.recompute == RecomputeMode::blocks && int64_t(plan.recompute_blocks.size()) < plan.block_count)
      out.line("recompute blocks: warning: re-running the other blocks would raise the estimated activation peak (" +
               mib(plan.plain_activation_bytes) + " with none recomputed, " + mib(plan.all_blocks_activation_bytes) +
               " with all: a re-run holds its block's activations, output and output gradient at once); they run plainly");
  }
  if (!state.resumed_from.empty())
    out.line("resumed from " + state.resumed_from + " at step " + std::to_string(state.step) + " (interruption " +
             std::to_string(state.meter.interruptions()) + ", work lost so far " +
             Progress::fixed(state.meter.lost_s(), 1) + " s)");
}

// ---- data parallel (issue 19) ----
// A world of several ranks: what the job must allow, checked on every rank before anything is written.
void check_world(const JobSpec& job, const dist::Communicator& world) {
  const int N = world.size();
  if (job.train.grad_accum % N != 0)
    throw InputError(job.path + ": [train] grad_accum = " + std::to_string(job.train.grad_accum) + " does not split over " +
                     std::to_string(N) + " ranks: a step's micro-batches are shared by the ranks (the global batch "
                     "stays batch_size x grad_accum), so grad_accum must be a multiple of the world size, e.g. " +
                     std::to_string(N * ((job.train.grad_accum + N - 1) / N)));
  if (job.importance_sampling.enabled)
    throw InputError(job.path + ": [importance_sampling] learns from the losses its process sees; with " +
                     std::to_string(N) + " ranks each sees part of them: run it in one process");
  if (job.curriculum.enabled && job.curriculum.scores.empty())
    throw InputError(job.path + ": [curriculum] score = \"self\" scores samples by the losses its process sees; with " +
                     std::to_string(N) + " ranks give it a score file (frugal data score) instead");
}

// Rank 0's text on every rank (the run directory's timestamped name, the run id).
std::string from_rank0(dist::Communicator& world, std::string text) {
  int64_t length = int64_t(text.size());
  world.broadcast(&length, sizeof(length), 0);
  text.resize(size_t(length));
  world.broadcast(text.data(), size_t(length), 0);
  return text;
}
// ---- end of data parallel ----

}  // namespace

Trainer::Trainer(JobSpec job, TrainOptions options) : job_(std::move(job)), options_(std::move(options)) {}

void Trainer::set_model(ModelFactory make_model) {
  if (job_.model.kind != ModelKind::custom)
    throw InputError(job_.path + ": a model given by code needs [model] kind = \"custom\" (the job says \"" +
                     name_of(job_.model.kind) + "\")");
  make_model_ = std::move(make_model);
}

std::shared_ptr<nn::Module> Trainer::make_model(ModelPlan& plan, const PreparedData& data) const {
  if (!make_model_) return build_model(plan, job_.run.seed);
  CustomModel custom = make_model_(data);
  if (!custom.model) throw InputError(job_.path + ": the model factory given by code returned no model");
  plan.flops_per_sample = custom.flops_per_sample;
  return custom.model;
}

void Trainer::add_technique(std::unique_ptr<Technique> technique) { techniques_.push_back(std::move(technique)); }

TrainOutcome Trainer::run() {
  // The ranks of the job (mpirun, srun) or one process; rank 0 writes the run directory and store.
  std::shared_ptr<dist::Communicator> world = options_.world ? options_.world : dist::open_world(job_.dist.backend);
  if (world->size() == 1) return run_in(*world);
  try {
    return run_in(*world);
  } catch (const std::exception& e) {
    // The other ranks wait in a collective for this one: end them all now, not at a timeout.
    std::fflush(stdout);
    std::fprintf(stderr, "frugal: rank %d of %d: error: %s\n", world->rank(), world->size(), e.what());
    std::fflush(stderr);
    world->abort(dynamic_cast<const InputError*>(&e) ? 2 : 1);
  }
}

TrainOutcome Trainer::run_in(dist::Communicator& world_ref) {
  const JobSpec& job = job_;
  dist::Communicator* world = &world_ref;
  // Input errors surface here, before anything is written: the catalog and the priced instance,
  // budget limits, loss-scaling options, data files and shapes, the model, a refused resume, the
  // weights to start from and the name patterns of [init], [freeze] and lr_multipliers.
  require_job_file(job, job.cost.user_catalog);  // a missing one named with where it was looked for
  require_job_file(job, job.lora.adapters);
  cost::RunMeter meter(cost::price_instance(shipped_catalog_path(), job.cost));
  const bool writer = world->rank() == 0;
  if (world->size() > 1) check_world(job, *world);
  for (auto& technique : make_builtin_techniques(job, options_.budget_usd)) techniques_.push_back(std::move(technique));
  if (job.model.kind == ModelKind::custom && !make_model_)
    throw InputError(job.path + ": [model] kind = \"custom\" needs a model given by code (C++: Trainer::set_model)");
  PreemptionScope preemption;  // from here SIGTERM, SIGINT and SIGUSR1 only ask for a checkpoint
  apply_threads(job);  // capped at the cores available, with a warning, unless forced
  PrecisionGuard precision(job.precision.mode);  // every dense op of the run, on this thread
  PreparedData data = prepare_data(job, "runs/cache");
  for (const std::string& w : data.warnings) warn(w);
  RunSummary summary;
  select_training_rows(job, options_, data, techniques_, summary);
  ModelPlan plan = plan_model(job, data);
  check_model_memory(job, plan, /*training=*/true);  // a refusal with the figures, not a bad_alloc
  std::shared_ptr<nn::Module> model = make_model(plan, data);
  ResumePoint resume = find_resume_point(job, options_);
  if (world->size() > 1 && options_.out_dir.empty()) {  // rank 0's timestamp names the run directory
    resume.out_dir = from_rank0(*world, resume.out_dir);
    if (job.checkpoint.dir.empty()) resume.checkpoint_dir = (fs::path(resume.out_dir) / "checkpoints").string();
  }
  if (options_.resume == "auto") {
    if (std::optional<RunSummary> done = completed_run(resume.out_dir)) {
      if (!options_.quiet) std::fprintf(options_.log, "%s already completed; nothing to resume\n", resume.out_dir.c_str());
      return {0, *done};
    }
  }
  // A fresh run would replace the weights an earlier run left there.
  const fs::path earlier_model = fs::path(resume.out_dir) / "model.safetensors";
  if (!resume.checkpoint && fs::exists(earlier_model))
    throw InputError(earlier_model.string() + ": --out already holds the model of an earlier run, which a fresh run "
                     "would overwrite: choose another --out, or move the model away first (--resume auto continues a "
                     "run from its checkpoints)");
  // [init] loads its weights here in a fresh run, before the optimizer sees the model.
  for (auto& technique : make_compress_techniques(job, *model, !resume.checkpoint, data.is_text ? &data.vocab : nullptr))
    techniques_.push_back(std::move(technique));
  // Techniques that need the prepared data: their input (a teacher's job and weights) is checked
  // and loaded here, still before anything is written.
  if (job.distill) techniques_.push_back(std::make_unique<Distillation>(job, data));
  // Which data to train on (issue 21): a score file is read and checked against the data here.
  for (auto& technique : make_sampling_techniques(job, data)) techniques_.push_back(std::move(technique));
  if (data.train_packed)  // its fingerprint guards a resume; its figures go to the summary
    techniques_.push_back(std::make_unique<PackedDataRecord>(data.train_packed, job.data.path, data.pack_fingerprint,
                                                             job.data.shuffle_buffer, job.data.workers));
  // Then [lora] adapts the model as loaded: adapters added (or loaded), every other parameter frozen,
  // before the optimizer is built, so frozen parameters get neither gradients nor optimizer state. A
  // resumed run's adapters and their optimizer state come from the checkpoint, as every parameter's do.
  std::optional<LoraReport> lora;
  if (job.lora.enabled) {
    lora = apply_lora(*model, job);
    techniques_.push_back(std::make_unique<LoraTechnique>(job.lora));
  }
  if (world->size() > 1) {
    techniques_.push_back(std::make_unique<DataParallel>(job.dist, *world));
    techniques_.push_back(std::make_unique<WorldStop>(*world));
  }
  check_unique_names(techniques_);
  // int8-mixed: which linear weights stay bf16-mixed (the output layer unless int8_exclude says).
  Int8ExclusionScope int8_exclusions(job, *model);
  if (job.precision.mode == Precision::int8_mixed && !options_.quiet) {
    std::string kept;
    for (const std::string& name : int8_exclusions.names()) kept += (kept.empty() ? "" : ", ") + name;
    std::fprintf(options_.log, "int8-mixed: linear products in int8, except %s (bf16-mixed)\n",
                 kept.empty() ? "none" : kept.c_str());
  }
  // Loading and normalizing data frees large one-off buffers into the allocator's cache; the
  // training step never asks for those sizes again, so hand them back to the system.
  Storage::release_cache();
  Storage::reset_peak_bytes();  // the summary's memory peaks are this run's
  std::unique_ptr<optim::Optimizer> optimizer = make_optimizer(job, *model);
  Batches batches;
  make_batches(job, data, batches);
  std::unique_ptr<optim::LrSchedule> schedule = make_schedule(job.schedule, job.optim.lr, batches.total_steps);
  LoopPosition position;
  if (resume.checkpoint)
    position = restore_checkpoint(resume, *model, *optimizer, *schedule, techniques_, meter, batches.total_steps);

  // The run directory and the run store: the same run goes on after a resume (its rows of redone
  // steps dropped, metrics.jsonl cut back to the checkpoint's length).
  // Only rank 0 writes: the other ranks' rows go to /dev/null and no store.
  if (writer) {
    fs::create_directories(resume.out_dir);
    fs::create_directories(resume.checkpoint_dir);
    std::ofstream(fs::path(resume.out_dir) / "job.toml") << job.resolved_toml;
  }
  std::optional<track::RunStore> store;
  if (writer) store.emplace(job.run.store);
  const fs::path metrics_path = writer ? fs::path(resume.out_dir) / "metrics.jsonl" : fs::path("/dev/null");
  std::string run_id;
  if (!resume.path.empty() && writer) {
    if (!position.run_id.empty() && store->resume_run(position.run_id, position.step)) run_id = position.run_id;
    std::error_code error;
    uintmax_t size = fs::file_size(metrics_path, error);
    if (!error && size >= uintmax_t(position.metrics_bytes)) fs::resize_file(metrics_path, uintmax_t(position.metrics_bytes));
    else warn(metrics_path.string() + " is shorter than at the checkpoint; rows of earlier steps are missing");
  }
  if (run_id.empty() && writer) run_id = store->create_run({job.run.name, job.resolved_toml, resume.out_dir, job.hash});
  if (world->size() > 1) run_id = from_rank0(*world, run_id);
  MetricsLog metrics(metrics_path.string(), resume.path.empty() || !writer ? 0 : position.metrics_bytes,
                     store ? &*store : nullptr, run_id);
  Progress progress(options_.log, options_.progress_bar, options_.quiet || !writer);

  TrainState state(job, data, *model, *optimizer, *schedule, progress, metrics, meter);
  state.total_steps = batches.total_steps;
  state.steps_per_epoch = batches.steps_per_epoch;
  state.batches_per_epoch = batches.batches_per_epoch;
  state.loader = batches.loader ? &*batches.loader : nullptr;
  state.world = world;
  state.eval_every = job.train.eval_every ? job.train.eval_every
                     : data.is_text       ? std::max<int64_t>(1, batches.total_steps / 10)
                                          : batches.steps_per_epoch;
  state.run_id = run_id;
  state.out_dir = resume.out_dir;
  state.checkpoint_dir = resume.checkpoint_dir;
  state.resumed_from = resume.path;
  state.step = position.step;
  state.micro = position.micro;
  state.epoch = position.epoch;
  state.batch_in_epoch = position.batch_in_epoch;
  state.samples_seen = position.samples_seen;

  summary.run_id = run_id;
  summary.params = model->num_parameters();
  summary.trainable_params = model->num_trainable_parameters();
  if (lora) summary.lora = lora->summary;
  summary.threads = num_threads();
  summary.out_dir = resume.out_dir;
  summary.job_hash = job.hash;
  summary.recompute = {name_of(plan.recompute), plan.recompute_blocks, plan.estimated_activation_bytes};
  try {
    announce(state, plan, job.train.batch_size, lora);
    summary = TrainLoop(state, techniques_, batches.source(), summary, plan.flops_per_sample).run();
    summary.trainable_params = model->num_trainable_parameters();  // as the run ends
    const nlohmann::json summary_json = summary.to_json();
    if (writer) std::ofstream(fs::path(resume.out_dir) / "summary.json") << summary_json.dump(2) << "\n";
    if (store) store->finish_run(run_id, summary.status, summary_json.dump());
    return {state.stop ? state.stop->exit_code : 0, summary};
  } catch (const std::exception& e) {
    progress.finish();
    nlohmann::json failure = {{"run_id", run_id}, {"status", "failed"},       {"error", e.what()},
                              {"out_dir", resume.out_dir}, {"wall_s", meter.wall_s()}};
    if (store) store->finish_run(run_id, "failed", failure.dump());
    throw;
  }
}

TrainOutcome run_training(const JobSpec& job, const TrainOptions& options) { return Trainer(job, options).run(); }

}  // namespace frugal::train
