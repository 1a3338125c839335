#include "frugal/train/trainer.h"

#include <sys/resource.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "frugal/autograd/ops.h"
#include "frugal/autograd/precision.h"
#include "frugal/base/parallel.h"
#include "frugal/base/rng.h"
#include "frugal/base/signals.h"
#include "frugal/base/timer.h"
#include "frugal/cost/billing.h"
#include "frugal/cost/budget.h"
#include "frugal/cost/catalog.h"
#include "frugal/cost/energy.h"
#include "frugal/cost/meters.h"
#include "frugal/cost/peak.h"
#include "frugal/cost/projection.h"
#include "frugal/data/loader.h"
#include "frugal/io/checkpoint.h"
#include "frugal/io/safetensors.h"
#include "frugal/nn/zoo.h"
#include "frugal/optim/loss_scaler.h"
#include "frugal/optim/optimizer.h"
#include "frugal/optim/schedule.h"
#include "frugal/track/run_store.h"
#include "frugal/train/progress.h"
#include "frugal/train/resume.h"

namespace frugal::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

int64_t peak_rss_bytes() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return int64_t(usage.ru_maxrss) * 1024;
}

namespace {
// Tensor memory of the run by category, measured by the allocator (Storage): peaks since the
// run started, except weights and optimizer state, which only grow (their peak is their size).
json memory_json() {
  auto peak = [](MemoryCategory category) { return Storage::peak_bytes(category); };
  return {{"weights_bytes", peak(MemoryCategory::weights)},
          {"gradients_bytes", peak(MemoryCategory::gradients)},
          {"optimizer_state_bytes", peak(MemoryCategory::optimizer_state)},
          {"activations_peak_bytes", peak(MemoryCategory::activations)},
          {"workspace_peak_bytes", peak(MemoryCategory::workspace)},
          {"other_peak_bytes", peak(MemoryCategory::other)},
          {"allocator_cached_bytes", Storage::peak_cached_bytes()},
          {"peak_total_bytes", Storage::peak_bytes()}};
}

// The [model] configs completed from the data (input shape, classes, vocabulary).
nn::CnnConfig cnn_config(const JobSpec& job, const PreparedData& data) {
  if (data.sample_shape.size() != 3)
    throw InputError(job.path + ": [model] kind = \"cnn\" needs image inputs (C, H, W), got samples of shape " +
                     shape_str(data.sample_shape));
  nn::CnnConfig config = job.model.cnn;
  config.in_channels = data.sample_shape[0];
  config.height = data.sample_shape[1];
  config.width = data.sample_shape[2];
  config.outputs = data.classes;
  return config;
}

nn::GptConfig gpt_config(const JobSpec& job, const PreparedData& data) {
  nn::GptConfig config = job.model.gpt;
  config.vocab = data.vocab.size();
  return config;
}

// [memory]: the blocks recomputed in backward, chosen from the activation estimate of one
// micro-batch (train.batch_size samples) for recompute = "auto".
struct RecomputePlan {
  std::vector<int64_t> blocks;
  int64_t block_count = 0;
  int64_t estimated_activation_bytes = 0;  // nn::ActivationEstimate::peak_bytes(blocks); 0 for an mlp
  bool fits = true;                        // auto: the estimate is within max_activation_bytes
};

RecomputePlan plan_recompute(const JobSpec& job, const PreparedData& data) {
  RecomputePlan plan;
  if (job.model.kind == "mlp") return plan;
  const bool bf16 = job.precision.mode == "bf16-mixed";
  const nn::ActivationEstimate estimate =
      job.model.kind == "cnn" ? nn::estimate_activation_bytes(cnn_config(job, data), job.train.batch_size, bf16)
                              : nn::estimate_activation_bytes(gpt_config(job, data), job.train.batch_size, bf16);
  plan.block_count = int64_t(estimate.block_bytes.size());
  if (job.memory.recompute == "blocks") {
    for (int64_t i = 0; i < plan.block_count; ++i) plan.blocks.push_back(i);
  } else if (job.memory.recompute == "auto") {
    plan.blocks = nn::choose_recompute_blocks(estimate, job.memory.max_activation_bytes, &plan.fits);
  }
  plan.estimated_activation_bytes = estimate.peak_bytes(plan.blocks);
  return plan;
}
}  // namespace

std::shared_ptr<nn::Module> build_model(const JobSpec& job, const PreparedData& data) {
  const ModelSpec& m = job.model;
  if (m.kind == "mlp") {
    nn::MlpConfig config = m.mlp;
    config.inputs = shape_numel(data.sample_shape);
    config.outputs = data.classes;
    return nn::make_mlp(config, job.run.seed);
  }
  if (m.kind == "cnn") {
    nn::CnnConfig config = cnn_config(job, data);
    config.recompute_blocks = plan_recompute(job, data).blocks;
    return nn::make_cnn(config, job.run.seed);
  }
  nn::GptConfig config = gpt_config(job, data);
  config.recompute_blocks = plan_recompute(job, data).blocks;
  return nn::make_gpt(config, job.run.seed);
}

int64_t model_flops_per_sample(const JobSpec& job, const PreparedData& data) {
  const ModelSpec& m = job.model;
  if (m.kind == "mlp") {
    nn::MlpConfig config = m.mlp;
    config.inputs = shape_numel(data.sample_shape);
    config.outputs = data.classes;
    return nn::count_flops_per_sample(config);
  }
  if (m.kind == "cnn") {
    nn::CnnConfig config = m.cnn;
    config.in_channels = data.sample_shape[0];
    config.height = data.sample_shape[1];
    config.width = data.sample_shape[2];
    config.outputs = data.classes;
    return nn::count_flops_per_sample(config);
  }
  nn::GptConfig config = m.gpt;
  config.vocab = data.vocab.size();
  return nn::count_flops_per_sample(config);
}

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

// The instance a run is priced as: the catalog entry with the job's [cost] overrides applied.
struct CostSetup {
  cost::Catalog catalog;
  cost::Instance instance;
  cost::Pricing pricing = cost::Pricing::on_demand;
  cost::Billing billing = cost::Billing::per_second;
  std::optional<double> user_carbon;
  std::string catalog_path;
};

CostSetup setup_cost(const JobSpec& job) {
  const CostSpec& c = job.cost;
  CostSetup out;
  out.catalog_path = shipped_catalog_path();
  out.catalog = cost::load_catalog(out.catalog_path);
  if (!c.catalog.empty()) out.catalog.merge(c.catalog);
  try {
    out.instance = out.catalog.at(c.instance);
  } catch (const InputError& e) {
    throw InputError(job.path + ": [cost] instance = \"" + c.instance + "\": " + e.what());
  }
  out.pricing = cost::parse_pricing(c.pricing, "[cost] pricing");
  out.billing = c.billing == "hour" ? cost::Billing::per_hour : cost::Billing::per_second;
  if (c.usd_per_hour) {
    // The user's price is what the machine costs them, whichever pricing is named.
    out.instance.usd_per_hour = out.instance.spot_usd_per_hour = *c.usd_per_hour;
    out.instance.user_keys.insert({"usd_per_hour", "spot_usd_per_hour"});
  }
  if (c.tdp_w) {
    // Idle power keeps its share of the full-load power.
    double idle_share = out.instance.tdp_w > 0 ? out.instance.idle_w / out.instance.tdp_w : cost::idle_fraction_default;
    out.instance.tdp_w = *c.tdp_w;
    out.instance.idle_w = idle_share * *c.tdp_w;
    out.instance.user_keys.insert({"tdp_w", "idle_w"});
  }
  out.user_carbon = c.carbon_g_per_kwh;
  return out;
}

json figure_json(const cost::Figure& f) { return {{"value", f.value}, {"source", f.source}}; }

// "This run on X would cost": a CPU instance, an A100, an H100 node and an RTX 4090, at fp32 (the
// precision frugal trains in) and an efficiency of 30% of peak, a typical MFU of well-tuned training;
// the method string of each projection states both. Entries a catalog lacks are left out.
const char* const kProjectedInstances[] = {"c7i.2xlarge", "a2-highgpu-1g", "p5.48xlarge", "runpod-rtx4090"};
constexpr double kProjectionEfficiency = 0.3;

json projections_json(const CostSetup& priced, double flops) {
  json out = json::array();
  for (const char* name : kProjectedInstances) {
    if (!priced.catalog.contains(name) || !priced.catalog.at(name).peak("fp32")) continue;
    cost::Projection p = cost::project(priced.catalog.at(name), flops, "fp32", kProjectionEfficiency, priced.pricing);
    out.push_back({{"instance", p.instance},
                   {"precision", p.precision},
                   {"efficiency", p.efficiency},
                   {"hours", figure_json(p.hours)},
                   {"usd", figure_json(p.usd)},
                   {"kwh", figure_json(p.kwh)},
                   {"co2_kg", figure_json(p.co2_kg)},
                   {"method", p.method}});
  }
  return out;
}

std::string timestamp(const char* format) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, format, &tm);
  return buffer;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const OptimSpec& o, nn::Module& model) {
  std::vector<optim::ParamGroup> groups = optim::default_param_groups(model, o.weight_decay);
  if (o.kind == "sgd") {
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

// Argmax per row of logits (N, C) compared with targets (N).
int64_t count_correct(const Tensor& logits, const Tensor& targets) {
  Tensor l = logits.contiguous();
  const float* p = l.data<float>();
  const int64_t* t = targets.contiguous().data<int64_t>();
  int64_t n = l.size(0), c = l.size(1), correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = p + i * c;
    int64_t best = 0;
    for (int64_t j = 1; j < c; ++j)
      if (row[j] > row[best]) best = j;
    correct += best == t[i];
  }
  return correct;
}

std::vector<std::pair<std::string, Tensor>> clone_state(const nn::Module& model) {
  std::vector<std::pair<std::string, Tensor>> state;
  for (auto& [name, t] : model.state_dict()) state.emplace_back(name, t.clone());
  return state;
}

}  // namespace

// Evaluation allocates other sizes than a training step (bigger batches, no gradients); the
// allocator's cache is emptied around it so the two working sets never sit in memory together.
namespace {
struct CacheReleaseScope {
  CacheReleaseScope() { Storage::release_cache(); }
  ~CacheReleaseScope() { Storage::release_cache(); }
};
}  // namespace

EvalMetrics evaluate_classifier(nn::Module& model, const data::Dataset& split, int64_t batch_size) {
  EvalMetrics out;
  if (split.size() == 0) return out;
  CacheReleaseScope release_cache;
  autograd::NoGradGuard no_grad;
  bool was_training = model.is_training();
  model.eval();
  double loss_sum = 0;
  int64_t correct = 0;
  const int64_t n = split.size();
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    int64_t end = std::min(n, begin + batch_size);
    Tensor x = split.inputs.slice_view(0, begin, end);
    Tensor y = split.targets.slice_view(0, begin, end);
    Tensor logits = model(x);
    CrossEntropyOptions options;
    options.reduction = Reduction::sum;
    loss_sum += cross_entropy(logits, y.contiguous(), options).item();
    correct += count_correct(logits, y);
  }
  model.train(was_training);
  out.samples = n;
  out.loss = loss_sum / double(n);
  out.accuracy = double(correct) / double(n);
  return out;
}

EvalMetrics evaluate_language_model(nn::Module& model, const Tensor& tokens, int64_t batch, int64_t context,
                                    int64_t max_tokens) {
  EvalMetrics out;
  CacheReleaseScope release_cache;
  autograd::NoGradGuard no_grad;
  bool was_training = model.is_training();
  model.eval();
  Tensor stream = tokens;
  if (max_tokens > 0 && stream.numel() > max_tokens + 1) stream = stream.slice_view(0, 0, max_tokens + 1);
  double loss_sum = 0;
  int64_t count = 0;
  for (auto& [x, y] : data::sequential_windows(stream, batch, context)) {
    Tensor logits = model(x);  // (B, T, V)
    int64_t v = logits.size(-1);
    CrossEntropyOptions options;
    options.reduction = Reduction::sum;
    loss_sum += cross_entropy(reshape(logits, {-1, v}), reshape(y, {-1}), options).item();
    count += y.numel();
  }
  model.train(was_training);
  out.samples = count;
  out.loss = count ? loss_sum / double(count) : 0.0;
  out.bits_per_char = out.loss / std::log(2.0);
  return out;
}

std::shared_ptr<nn::Module> load_model(const JobSpec& job, const PreparedData& data, const std::string& weights) {
  std::shared_ptr<nn::Module> model = build_model(job, data);
  io::SafetensorsFile file = io::read_safetensors(weights);
  try {
    model->load_state_dict(file.tensors, /*strict=*/true);
  } catch (const InputError& e) {
    throw InputError(weights + ": " + e.what());
  }
  return model;
}

std::string sample_text(nn::Module& model, const data::CharVocab& vocab, int64_t context, const std::string& prompt,
                        int64_t tokens, double temperature, uint64_t seed) {
  autograd::NoGradGuard no_grad;
  model.eval();
  std::vector<int64_t> ids;
  if (!prompt.empty()) ids = vocab.encode(prompt).to_vector<int64_t>();
  else ids.push_back(vocab.encode("\n").to_vector<int64_t>()[0]);
  Rng rng(seed, 0, RandomPurpose::sample);
  std::string out;
  for (int64_t step = 0; step < tokens; ++step) {
    int64_t start = std::max<int64_t>(0, int64_t(ids.size()) - context);
    std::vector<int64_t> window(ids.begin() + start, ids.end());
    Tensor x = Tensor::from_vector(window, {1, int64_t(window.size())});
    Tensor logits = model(x);  // (1, T, V)
    Tensor last = logits.select_view(1, logits.size(1) - 1).contiguous();  // (1, V)
    std::vector<float> z = last.to_vector<float>();
    int64_t next = 0;
    if (temperature <= 0) {
      next = int64_t(std::max_element(z.begin(), z.end()) - z.begin());
    } else {
      double zmax = *std::max_element(z.begin(), z.end()), total = 0;
      std::vector<double> p(z.size());
      for (size_t i = 0; i < z.size(); ++i) total += p[i] = std::exp((z[i] - zmax) / temperature);
      double u = rng.uniform_double() * total;
      next = int64_t(p.size()) - 1;
      for (size_t i = 0; i < p.size(); ++i) {
        if ((u -= p[i]) <= 0) { next = int64_t(i); break; }
      }
    }
    ids.push_back(next);
    out += vocab.decode(std::vector<int64_t>{next});
  }
  return out;
}

namespace {

// Restores the preemption handlers that were in place before the run, whatever way it ends.
struct PreemptionScope {
  PreemptionScope() {
    clear_preemption();
    install_preemption_handlers();
  }
  ~PreemptionScope() { uninstall_preemption_handlers(); }
};

void warn(const std::string& text) {
  std::fflush(stdout);
  std::fprintf(stderr, "frugal: warning: %s\n", text.c_str());
}

}  // namespace

TrainOutcome run_training(const JobSpec& job, const TrainOptions& options) {
  Timer wall;  // this process; wall_s() adds the time of earlier processes of a resumed run
  const cost::ProcessSample process_start = cost::read_process_sample();
  // Splits this process's wall time into phases; earlier processes' phases come from the checkpoint.
  cost::PhaseTimer phases;
  // The priced instance (an unknown one is an input error, before anything is written).
  CostSetup priced = setup_cost(job);
  cost::BudgetLimits limits{job.budget.max_usd, job.budget.max_kwh, job.budget.max_co2_kg, job.budget.max_hours};
  if (options.budget_usd) limits.usd = options.budget_usd;
  std::optional<cost::Budget> budget;
  if (!limits.empty()) budget.emplace(limits);
  // From here on SIGTERM, SIGINT and SIGUSR1 only ask for a checkpoint at the next step boundary.
  PreemptionScope preemption;
  if (job.run.threads > 0) set_num_threads(job.run.threads);
  else set_num_threads(0);
  // [precision]: every dense op of the run (steps, evaluation) on this thread, restored on return.
  PrecisionGuard precision(parse_precision(job.precision.mode, job.path + ": [precision] mode"));
  // fp16-mixed trains with dynamic loss scaling (PyTorch's GradScaler); the other modes need none.
  std::optional<optim::DynamicLossScaler> scaler;
  if (compute_precision() == Precision::fp16_mixed) {
    optim::LossScalerOptions scaling;
    scaling.init_scale = job.precision.loss_scale_init;
    scaling.growth_interval = job.precision.loss_scale_growth_interval;
    scaling.growth_factor = job.precision.loss_scale_growth_factor;
    scaling.backoff_factor = job.precision.loss_scale_backoff_factor;
    scaler.emplace(scaling);
  }

  // Input problems (data files, shapes) surface here, before anything is written.
  PreparedData data = prepare_data(job, "runs/cache");
  std::shared_ptr<nn::Module> model = build_model(job, data);
  const RecomputePlan recompute_plan = plan_recompute(job, data);  // the blocks build_model recomputes
  const json recompute_json = {{"mode", job.memory.recompute},
                               {"blocks", recompute_plan.blocks},
                               {"estimated_activation_bytes", recompute_plan.estimated_activation_bytes}};
  // Loading and normalizing data frees large one-off buffers into the allocator's cache; the
  // training step never asks for those sizes again, so hand them back to the system.
  Storage::release_cache();
  Storage::reset_peak_bytes();  // the summary's memory peaks are this run's

  std::unique_ptr<optim::Optimizer> optimizer = make_optimizer(job.optim, *model);
  std::vector<Tensor> params = model->parameters();
  const TrainSpec& t = job.train;
  // Steps: optimizer updates. Classification counts epochs of micro-batches.
  std::optional<data::Loader> loader;
  std::optional<data::TokenLoader> token_loader;
  int64_t steps_per_epoch = 0, total_steps = 0;
  if (data.is_text) {
    token_loader.emplace(data.train_tokens, t.batch_size, job.model.gpt.context, job.run.seed, job.data.prefetch);
    steps_per_epoch = std::max<int64_t>(1, data.train_tokens.numel() / (t.batch_size * job.model.gpt.context * t.grad_accum));
    total_steps = t.steps ? t.steps : t.epochs * steps_per_epoch;
  } else {
    data::LoaderOptions lo;
    lo.batch_size = t.batch_size;
    lo.shuffle = true;
    lo.seed = job.run.seed;
    lo.augment.crop_padding = job.data.crop_padding;
    lo.augment.horizontal_flip = job.data.flip;
    lo.prefetch = job.data.prefetch;
    loader.emplace(data.train, lo);
    steps_per_epoch = (loader->batches_per_epoch() + t.grad_accum - 1) / t.grad_accum;
    total_steps = t.steps ? t.steps : t.epochs * steps_per_epoch;
  }
  std::unique_ptr<optim::LrSchedule> schedule = make_schedule(job.schedule, job.optim.lr, total_steps);

  // The checkpoint to go on from, found and checked before anything is written: a refused or
  // impossible resume (exit 2) leaves the run directory, its checkpoints and the run store untouched.
  std::optional<io::CheckpointState> resume_state;
  std::string resume_path;
  if (!options.resume.empty() && options.resume != "auto") {
    resume_state = io::read_checkpoint(options.resume);
    resume_path = options.resume;
  }
  std::string out_dir = options.out_dir;
  if (out_dir.empty() && resume_state) {
    auto it = resume_state->values.find("out_dir");
    if (it != resume_state->values.end()) out_dir = it->second;
  }
  if (out_dir.empty()) {
    if (options.resume == "auto") throw InputError("--resume auto needs --out DIR, the run directory to continue");
    out_dir = (fs::path("runs") / (job.run.name + "-" + timestamp("%Y%m%d-%H%M%S"))).string();
  }
  const std::string checkpoint_dir =
      job.checkpoint.dir.empty() ? (fs::path(out_dir) / "checkpoints").string() : job.checkpoint.dir;
  if (options.resume == "auto") {
    if (std::optional<io::LatestCheckpoint> latest = io::load_latest_checkpoint(checkpoint_dir)) {
      for (const std::string& w : latest->warnings) warn(w);
      resume_state = std::move(latest->state);
      resume_path = latest->path;
    }
  } else if (!resume_state && has_checkpoint_files(checkpoint_dir)) {
    throw InputError(checkpoint_dir + " already holds checkpoints of an earlier run: continue it with --resume auto, "
                     "or start a new run in another --out directory (or [checkpoint] dir)");
  }

  LoopState loop;
  std::array<double, cost::phase_count> phases_before{};  // seconds per phase of earlier processes
  double energy_before_j = 0;                              // joules of earlier processes
  std::string energy_source_before;
  std::vector<std::pair<std::string, Tensor>> best_state;
  std::optional<HeartbeatRecord> heartbeat_then;
  if (resume_state) {
    check_resumable(*resume_state, resume_path, job);
    // `--resume auto` on a run that already completed: nothing to redo, report what it reached.
    if (options.resume == "auto") {
      std::ifstream summary_file(fs::path(out_dir) / "summary.json");
      json done = summary_file ? json::parse(summary_file, nullptr, false) : json();
      if (done.is_object() && done.value("status", "") == "completed" &&
          fs::exists(fs::path(out_dir) / "model.safetensors")) {
        if (!options.quiet)
          std::fprintf(options.log, "%s already completed; nothing to resume\n", out_dir.c_str());
        return {0, done.dump()};
      }
    }
    loop = unpack_checkpoint(*resume_state, resume_path, *model, *optimizer, *schedule, best_state);
    if (scaler) {  // the job check above guarantees the checkpoint was written in fp16-mixed too
      if (loop.loss_scaler.empty()) throw InputError(resume_path + ": checkpoint has no loss scaler state (fp16-mixed)");
      try {
        scaler->load_state(loop.loss_scaler);
      } catch (const InputError& e) {
        throw InputError(resume_path + ": " + e.what());
      }
    }
    // Cost meters of the earlier processes (absent in checkpoints of older frugal versions).
    const auto& values = resume_state->values;
    auto number = [&](const std::string& key) -> std::optional<double> {
      auto it = values.find(key);
      if (it == values.end()) return std::nullopt;
      try {
        return std::stod(it->second);
      } catch (const std::exception&) {
        throw InputError(resume_path + ": checkpoint value '" + key + "' is not a number: " + it->second);
      }
    };
    for (int i = 0; i < cost::phase_count; ++i)
      phases_before[size_t(i)] = number(std::string("cost.phase.") + cost::phase_name(cost::Phase(i))).value_or(0.0);
    energy_before_j = number("cost.energy_j").value_or(0.0);
    if (auto it = values.find("cost.energy_source"); it != values.end()) energy_source_before = it->second;
    resume_state.reset();  // the weights were copied; free the file's buffer
    if (loop.step > total_steps)
      throw InputError(resume_path + ": checkpoint of step " + std::to_string(loop.step) + " is past the job's " +
                       std::to_string(total_steps) + " steps");
    if (loop.threads != num_threads())
      warn("the checkpoint was written with " + std::to_string(loop.threads) + " threads, this run has " +
           std::to_string(num_threads()) + ": weights are bit-exact only for the same thread count (set [run] threads)");
    // The heartbeat tells how far the interrupted process got after this checkpoint: that work is lost.
    heartbeat_then = read_heartbeat(heartbeat_path(checkpoint_dir));
    if (heartbeat_then && heartbeat_then->run_id == loop.run_id && heartbeat_then->step >= loop.step &&
        heartbeat_then->wall_s >= loop.wall_s && heartbeat_then->checkpoint_s >= loop.checkpoint_s) {
      double writing = heartbeat_then->checkpoint_s - loop.checkpoint_s;  // this checkpoint's write and any later
      loop.lost_s += std::max(0.0, heartbeat_then->wall_s - loop.wall_s - writing);
      loop.wall_s = heartbeat_then->wall_s;
      loop.checkpoint_s = heartbeat_then->checkpoint_s;
    }
    ++loop.interruptions;
    // The checkpoint's phases end where it was packed; the rest of the earlier processes' wall time
    // (its own write, work lost after it) is unattributed, so it counts as "other" and, for energy,
    // at the earlier processes' mean power (an estimate).
    double attributed = 0;
    for (double v : phases_before) attributed += v;
    if (attributed > 0 && loop.wall_s > attributed) {
      energy_before_j *= loop.wall_s / attributed;
      energy_source_before = cost::source_estimated;
    }
    phases_before[size_t(cost::Phase::other)] += std::max(0.0, loop.wall_s - attributed);
  }
  const double wall_before = loop.wall_s;  // seconds of earlier processes
  const double data_wait_before = loop.data_wait_s;
  auto wall_s = [&] { return wall_before + wall.seconds(); };
  cost::EnergyMeter energy(cost::power_model(priced.instance));
  const int64_t flops_per_sample = model_flops_per_sample(job, data);

  // Running cost totals of the whole run (all processes) now.
  struct CostNow {
    cost::Figure usd, kwh, co2_kg, hours;
    std::array<double, cost::phase_count> phase_s{};
    double wall_s = 0;
  };
  auto cost_now = [&]() {
    CostNow c;
    energy.sample();
    cost::PhaseTotals totals = phases.totals();
    c.wall_s = wall_before + totals.wall_seconds;
    for (size_t i = 0; i < c.phase_s.size(); ++i) c.phase_s[i] = phases_before[i] + totals.seconds[i];
    double joules = energy_before_j + energy.joules().value;
    std::string energy_source = energy_source_before == cost::source_estimated ? cost::source_estimated : energy.source();
    c.kwh = {joules / 3.6e6, energy_source};
    c.co2_kg = cost::carbon_kg(c.kwh.value, priced.instance, priced.user_carbon);
    c.usd = cost::dollars(priced.instance, c.wall_s, priced.pricing, priced.billing);
    c.hours = {c.wall_s / 3600.0, cost::source_measured};
    return c;
  };

  fs::create_directories(out_dir);
  fs::create_directories(checkpoint_dir);
  {
    std::ofstream job_file(fs::path(out_dir) / "job.toml");
    job_file << job.resolved_toml;
  }
  track::RunStore store(job.run.store);
  std::string run_id;
  const fs::path metrics_path = fs::path(out_dir) / "metrics.jsonl";
  if (!resume_path.empty()) {
    // The same run goes on: its status back to running, the rows of redone steps dropped.
    if (!loop.run_id.empty() && store.resume_run(loop.run_id, loop.step)) run_id = loop.run_id;
    std::error_code error;
    uintmax_t size = fs::file_size(metrics_path, error);
    if (!error && size >= uintmax_t(loop.metrics_bytes)) fs::resize_file(metrics_path, uintmax_t(loop.metrics_bytes));
    else warn(metrics_path.string() + " is shorter than at the checkpoint; rows of earlier steps are missing");
  }
  if (run_id.empty()) {
    track::RunStart start;
    start.name = job.run.name;
    start.job_toml = job.resolved_toml;
    start.out_dir = out_dir;
    start.job_hash = job.hash;
    run_id = store.create_run(start);
  }
  std::ofstream metrics_file(metrics_path, resume_path.empty() ? std::ios::trunc : std::ios::app);
  int64_t metrics_bytes = resume_path.empty() ? 0 : loop.metrics_bytes;
  Progress progress(options.log, options.progress_bar, options.quiet);
  Heartbeat heartbeat;
  heartbeat.open(heartbeat_path(checkpoint_dir));

  auto log_metrics = [&](const json& row) {
    std::string line = row.dump() + "\n";
    metrics_file << line;
    metrics_file.flush();
    metrics_bytes += int64_t(line.size());
    // The store's metrics table holds train and eval rows; budget events live in metrics.jsonl.
    if (row.value("kind", std::string("train")) == "budget") return;
    store.log_metrics(run_id, row.value("step", int64_t(0)), row.value("kind", std::string("train")), row.dump());
  };

  try {
    model->train(true);
    progress.line("run " + run_id + ": " + data.describe + "; model " + job.model.kind + " with " +
                  std::to_string(model->num_parameters()) + " parameters; " + std::to_string(num_threads()) +
                  " threads");
    if (job.memory.recompute != "none") {
      auto mib = [](int64_t bytes) { return Progress::fixed(double(bytes) / 1048576.0, 1) + " MiB"; };
      std::string blocks;
      for (int64_t b : recompute_plan.blocks) blocks += (blocks.empty() ? "" : ", ") + std::to_string(b);
      progress.line("recompute " + job.memory.recompute + ": blocks [" + blocks + "] of " +
                    std::to_string(recompute_plan.block_count) + "; estimated activations " +
                    mib(recompute_plan.estimated_activation_bytes) + " per micro-batch of " +
                    std::to_string(t.batch_size));
      if (!recompute_plan.fits)
        progress.line("recompute auto: even with every block recomputed the estimate " +
                      std::to_string(recompute_plan.estimated_activation_bytes) + " bytes exceeds max_activation_bytes " +
                      std::to_string(job.memory.max_activation_bytes) + "; recomputing all blocks");
    }
    if (!resume_path.empty())
      progress.line("resumed from " + resume_path + " at step " + std::to_string(loop.step) + " (interruption " +
                    std::to_string(loop.interruptions) + ", work lost so far " + Progress::fixed(loop.lost_s, 1) + " s)");
    int64_t eval_every = t.eval_every ? t.eval_every
                                      : (data.is_text ? std::max<int64_t>(1, total_steps / 10) : steps_per_epoch);

    // State of the loop (a checkpoint carries all of it: see LoopState).
    int64_t step = loop.step, micro = loop.micro, samples_seen = loop.samples_seen, epoch = loop.epoch;
    int64_t batch_in_epoch = loop.batch_in_epoch;
    double last_train_loss = resume_path.empty() ? NAN : loop.last_train_loss, loss_window = loop.loss_window;
    int64_t loss_window_count = loop.loss_window_count;
    EvalMetrics last_val;
    bool have_val = false;
    std::string status = "completed", stop_reason;
    double best_metric = resume_path.empty() ? NAN : loop.best_metric;
    int64_t best_step = loop.best_step, evals_without_improvement = loop.evals_without_improvement;
    Timer throughput_timer;
    int64_t throughput_samples = 0;
    double train_compute_s = loop.train_compute_s;
    // Checkpoint meters and triggers (wall time decides when, never what).
    const CheckpointSpec& cs = job.checkpoint;
    double checkpoint_s = loop.checkpoint_s, lost_s = loop.lost_s, last_checkpoint_bytes = 0;
    int64_t checkpoints_written = loop.checkpoints_written, checkpoints_this_process = 0;
    Timer since_checkpoint;
    double auto_interval_s = -1;  // interval = "auto": seconds of work between checkpoints, once measured
    bool preempted = false;
    bool budget_hit = false, budget_stopped = false;  // a limit was reached / the run stopped for it

    auto data_wait_s = [&] {
      return data_wait_before + (loader ? loader->data_wait_seconds() : token_loader->data_wait_seconds());
    };

    auto evaluate = [&]() {
      auto in_phase = phases.scope(cost::Phase::evaluation);
      EvalMetrics m;
      if (data.is_text) m = evaluate_language_model(*model, data.val_tokens, t.batch_size, job.model.gpt.context, t.eval_tokens);
      else if (data.val.size() > 0) m = evaluate_classifier(*model, data.val, 1000);
      else return;
      last_val = m;
      have_val = true;
      json row = {{"kind", "eval"}, {"step", step}, {"epoch", epoch}, {"val_loss", m.loss}, {"time_s", wall_s()}};
      if (m.accuracy >= 0) row["val_accuracy"] = m.accuracy;
      if (m.bits_per_char >= 0) row["val_bits_per_char"] = m.bits_per_char;
      log_metrics(row);
      std::string text = "eval step " + std::to_string(step) + ": val_loss " + Progress::fixed(m.loss, 4);
      if (m.accuracy >= 0) text += ", val_accuracy " + Progress::fixed(100 * m.accuracy, 2) + "%";
      if (m.bits_per_char >= 0) text += ", val_bits_per_char " + Progress::fixed(m.bits_per_char, 3);
      progress.line(text);
      if (t.early_stopping.enabled) {
        double value = t.early_stopping.metric == "val_accuracy" ? m.accuracy
                       : t.early_stopping.metric == "val_bits_per_char" ? m.bits_per_char
                                                                        : m.loss;
        bool better = std::isnan(best_metric) ||
                      (t.early_stopping.mode == "min" ? value < best_metric - t.early_stopping.min_delta
                                                      : value > best_metric + t.early_stopping.min_delta);
        if (better) {
          best_metric = value;
          best_step = step;
          evals_without_improvement = 0;
          if (t.early_stopping.restore_best) best_state = clone_state(*model);
        } else if (++evals_without_improvement > t.early_stopping.patience) {
          status = "completed";
          stop_reason = "early_stopping";
        }
      }
      schedule->observe(m.loss);
    };

    // fp16-mixed: overflow lines printed by this process (the first few; the summary counts all).
    int overflow_lines = 0;
    constexpr int kOverflowLines = 5;
    auto optimizer_step = [&]() {
      auto in_phase = phases.scope(cost::Phase::optimizer);
      // fp16-mixed, as GradScaler: unscale before clipping; an inf/NaN gradient skips the update
      // (optimizer state untouched) while the step counter and the schedule go on.
      bool skip = false;
      if (scaler) {
        skip = !scaler->unscale_and_check(params);
        scaler->update(skip);
        if (skip && overflow_lines < kOverflowLines) {
          std::ostringstream scale_text;
          scale_text << scaler->scale();
          progress.line("fp16: overflow at step " + std::to_string(step + 1) + ", loss scale now " + scale_text.str() +
                        "; step skipped" + (++overflow_lines == kOverflowLines ? " (further overflows are only counted)" : ""));
        }
      }
      if (!skip && t.clip_norm > 0) optim::clip_grad_norm(params, t.clip_norm);
      optimizer->set_lr(schedule->lr_at(step));
      if (!skip) optimizer->step();
      optimizer->zero_grad();
      ++step;
    };

    auto after_step = [&](int64_t batch_samples) {
      if (step % t.log_every == 0 || step == total_steps) {
        double elapsed = throughput_timer.seconds();
        double rate = elapsed > 0 ? double(throughput_samples) / elapsed : 0;
        last_train_loss = loss_window_count ? loss_window / double(loss_window_count) : last_train_loss;
        json row = {{"kind", "train"}, {"step", step},          {"epoch", epoch},
                    {"loss", last_train_loss}, {"lr", optimizer->lr()}, {"samples_per_s", rate},
                    {"time_s", wall_s()}};
        if (data.is_text) row["tokens_per_s"] = rate * double(job.model.gpt.context);
        log_metrics(row);
        loss_window = 0;
        loss_window_count = 0;
        throughput_timer.reset();
        throughput_samples = 0;
        (void)batch_samples;
      }
      progress.update(epoch, t.epochs, step, total_steps, last_train_loss,
                      data.is_text ? "tok/s" : "samples/s",
                      throughput_timer.seconds() > 0 ? double(throughput_samples) * (data.is_text ? double(job.model.gpt.context) : 1.0) / throughput_timer.seconds() : 0,
                      wall_s());
      if (step % eval_every == 0 || step == total_steps) evaluate();
      if (budget) {
        CostNow c = cost_now();
        double progress_done = total_steps > 0 ? double(step) / double(total_steps) : -1.0;
        for (const cost::BudgetEvent& e :
             budget->update({c.usd.value, c.kwh.value, c.co2_kg.value, c.hours.value}, progress_done)) {
          progress.line("budget: " + e.message);
          log_metrics({{"kind", "budget"},
                       {"step", step},
                       {"event", e.kind == cost::BudgetEvent::Kind::forecast ? "forecast" : "threshold"},
                       {"limit", e.limit},
                       {"threshold", e.threshold},
                       {"value", e.value},
                       {"forecast", e.forecast},
                       {"message", e.message},
                       {"time_s", wall_s()}});
        }
        // At the last step the run is done anyway; before it, stop at this step boundary.
        if (budget->exceeded() && step < total_steps) budget_hit = true;
      } else {
        energy.sample();  // often enough that no RAPL counter wraps twice between samples
      }
      if (t.max_minutes > 0 && wall_s() > t.max_minutes * 60 && stop_reason.empty() && step < total_steps)
        stop_reason = "time_limit";
    };

    auto save_checkpoint = [&](bool epoch_done) {
      auto in_phase = phases.scope(cost::Phase::checkpoint);
      CostNow meters = cost_now();
      LoopState now;
      now.step = step;
      now.micro = micro;
      // An epoch-end checkpoint goes on with the next epoch, from its first batch.
      now.epoch = data.is_text ? epoch : (epoch_done ? epoch + 1 : epoch);
      now.batch_in_epoch = data.is_text || epoch_done ? 0 : batch_in_epoch;
      now.samples_seen = samples_seen;
      now.last_train_loss = last_train_loss;
      now.loss_window = loss_window;
      now.loss_window_count = loss_window_count;
      now.best_metric = best_metric;
      now.best_step = best_step;
      now.evals_without_improvement = evals_without_improvement;
      now.has_best_state = !best_state.empty();
      now.wall_s = wall_s();
      now.train_compute_s = train_compute_s;
      now.data_wait_s = data_wait_s();
      now.checkpoint_s = checkpoint_s;
      now.lost_s = lost_s;
      now.checkpoints_written = checkpoints_written + 1;  // this one, once the file exists
      now.interruptions = loop.interruptions;
      now.run_id = run_id;
      now.out_dir = out_dir;
      now.metrics_bytes = metrics_bytes;
      now.threads = num_threads();
      if (scaler) now.loss_scaler = scaler->state();
      Timer packing;
      io::CheckpointState state = pack_checkpoint(now, job, *model, *optimizer, *schedule, best_state);
      for (size_t i = 0; i < meters.phase_s.size(); ++i)
        state.values[std::string("cost.phase.") + cost::phase_name(cost::Phase(i))] = json(meters.phase_s[i]).dump();
      state.values["cost.energy_j"] = json(meters.kwh.value * 3.6e6).dump();
      state.values["cost.energy_source"] = meters.kwh.source;
      io::CheckpointWrite written = io::write_checkpoint(checkpoint_dir, state, cs.keep);
      double seconds = packing.seconds();
      for (const std::string& w : written.warnings) warn(w);
      checkpoint_s += seconds;
      ++checkpoints_written;
      ++checkpoints_this_process;
      last_checkpoint_bytes = double(written.bytes);
      heartbeat.beat({run_id, step, wall_s(), checkpoint_s});
      progress.line("checkpoint step " + std::to_string(step) + ": " + Progress::fixed(double(written.bytes) / 1048576.0, 2) +
                    " MiB in " + Progress::fixed(seconds, 3) + " s -> " + written.path);
      if (cs.interval_auto) {
        double mean_write_s = checkpoint_s / double(checkpoints_written);
        double interval = io::young_daly_interval(mean_write_s, cs.mtbi);
        if (auto_interval_s < 0)
          progress.line("checkpoint interval auto: write " + Progress::fixed(mean_write_s, 4) + " s, mtbi " +
                        Progress::fixed(cs.mtbi, 0) + " s -> every " + Progress::fixed(interval, 2) +
                        " s of work (Young/Daly); expected work lost per interruption " +
                        Progress::fixed(io::expected_lost_seconds_per_interruption(interval, mean_write_s), 2) + " s");
        auto_interval_s = interval;
      }
      since_checkpoint.reset();
    };

    // Called at every step boundary (after the optimizer step, its log line and evaluation) while the
    // run goes on. Returns true when the run must stop because a preemption signal arrived.
    auto at_step_boundary = [&](bool epoch_done) {
      heartbeat.beat({run_id, step, wall_s(), checkpoint_s});
      const bool preempt = preemption_requested();
      bool due = preempt;
      if (cs.enabled) {
        if (cs.every_steps > 0 && step % cs.every_steps == 0) due = true;
        if (cs.every_epoch && epoch_done) due = true;
        if (cs.interval_auto) {
          // The first checkpoint measures the write cost that the interval is computed from.
          if (auto_interval_s < 0 || since_checkpoint.seconds() >= auto_interval_s) due = true;
        } else if (cs.every_seconds > 0 && since_checkpoint.seconds() >= cs.every_seconds) {
          due = true;
        }
      }
      if (due || budget_hit) save_checkpoint(epoch_done);
      if (!preempt && budget_hit) {
        progress.line("budget: " + budget->exceeded_message() + "; checkpoint written at step " + std::to_string(step) +
                      "; stopping (exit " + std::to_string(kExitBudget) +
                      "); continue with --resume auto and a larger budget");
        budget_stopped = true;
        status = "stopped_budget";
        stop_reason = "budget";
        return true;
      }
      if (!preempt) return false;
      progress.line(std::string(preemption_signal_name(preemption_signal())) + ": checkpoint written at step " +
                    std::to_string(step) + "; stopping (exit " + std::to_string(kExitPreempted) +
                    "); continue with --resume auto");
      preempted = true;
      status = "preempted";
      stop_reason = "preempted";
      return true;
    };

    auto train_micro = [&](const Tensor& x, const Tensor& y, int64_t accumulate_count) {
      // What forward and backward allocate is counted as activations, unless tagged otherwise
      // (gradients adopted by parameters, workspace).
      MemoryCategoryGuard activations(MemoryCategory::activations);
      nn::set_random_context({job.run.seed, uint64_t(micro)});
      Timer compute;
      auto in_forward = std::optional<cost::PhaseTimer::Scope>(std::in_place, phases, cost::Phase::forward);
      Tensor logits = (*model)(x);
      Tensor loss;
      CrossEntropyOptions ce;
      ce.label_smoothing = t.label_smoothing;
      if (data.is_text) loss = cross_entropy(reshape(logits, {-1, logits.size(-1)}), reshape(y, {-1}), ce);
      else loss = cross_entropy(logits, y, ce);
      double loss_value = loss.item();
      // fp16-mixed: an overflowing forward gives inf/NaN gradients, which the scaler turns into a
      // skipped step (as GradScaler); the other modes have no way back from a non-finite loss.
      const bool finite = std::isfinite(loss_value);
      if (!finite && !scaler) throw InternalError("training loss became " + std::to_string(loss_value) + " at step " + std::to_string(step));
      in_forward.reset();
      {
        auto in_backward = phases.scope(cost::Phase::backward);
        Tensor objective = accumulate_count > 1 ? mul_scalar(loss, 1.0 / double(accumulate_count)) : loss;
        if (scaler) objective = mul_scalar(objective, scaler->scale());  // fp16-mixed: scaled gradients
        autograd::backward(objective);
      }
      train_compute_s += compute.seconds();
      if (finite) {
        loss_window += loss_value;
        ++loss_window_count;
      }
      ++micro;
      samples_seen += x.size(0);
      throughput_samples += x.size(0);
    };

    if (data.is_text) {
      while (step < total_steps && stop_reason.empty()) {
        for (int64_t a = 0; a < t.grad_accum; ++a) {
          data::Batch batch = [&] {
            auto in_phase = phases.scope(cost::Phase::data_wait);
            return token_loader->next_for_step(step * t.grad_accum + a);
          }();
          train_micro(batch.inputs, batch.targets, t.grad_accum);
        }
        epoch = step / steps_per_epoch;
        optimizer_step();
        after_step(t.batch_size * t.grad_accum);
        if (step < total_steps && stop_reason.empty()) at_step_boundary(step % steps_per_epoch == 0);
      }
    } else {
      while (step < total_steps && stop_reason.empty()) {
        // A resumed run starts mid-epoch at the checkpoint's batch; later epochs from their first.
        loader->start_epoch(epoch, batch_in_epoch);
        int64_t in_group = 0;
        int64_t batches = loader->batches_per_epoch();
        int64_t index = batch_in_epoch;
        auto next_batch = [&] {
          auto in_phase = phases.scope(cost::Phase::data_wait);
          return loader->next();
        };
        while (std::optional<data::Batch> batch = next_batch()) {
          // The last group of an epoch may be shorter than grad_accum.
          int64_t group_size = std::min<int64_t>(t.grad_accum, batches - (index / t.grad_accum) * t.grad_accum);
          train_micro(batch->inputs, batch->targets, group_size);
          ++index;
          if (++in_group == group_size) {
            in_group = 0;
            batch_in_epoch = index;
            optimizer_step();
            after_step(batch->inputs.size(0));
            if (step >= total_steps || !stop_reason.empty()) break;
            if (at_step_boundary(index == batches)) break;
          }
        }
        if (preempted || budget_stopped) break;
        ++epoch;
        batch_in_epoch = 0;
      }
    }

    json checkpoint_meters = {{"resumed_from", resume_path.empty() ? json(nullptr) : json(resume_path)},
                              {"interruptions", loop.interruptions},
                              {"checkpoints", checkpoints_written},
                              {"checkpoint_s", checkpoint_s},
                              {"lost_s", lost_s},
                              {"checkpoint_dir", checkpoint_dir}};
    if (checkpoints_this_process > 0) checkpoint_meters["checkpoint_bytes"] = last_checkpoint_bytes;
    if (checkpoints_written > 0) checkpoint_meters["checkpoint_write_s"] = checkpoint_s / double(checkpoints_written);
    if (cs.interval_auto && auto_interval_s >= 0) {
      double mean_write_s = checkpoint_s / double(checkpoints_written);
      checkpoint_meters["checkpoint_interval_s"] = auto_interval_s;
      checkpoint_meters["checkpoint_mtbi_s"] = cs.mtbi;
      checkpoint_meters["expected_lost_s_per_interruption"] =
          io::expected_lost_seconds_per_interruption(auto_interval_s, mean_write_s);
    }

    // The cost part of the summary: figures with their sources, the phase split, FLOPs and MFU.
    auto cost_summary = [&](json& summary) {
      CostNow c = cost_now();
      summary["wall_s"] = c.wall_s;
      summary["cost"] = {{"usd", figure_json(c.usd)},
                         {"kwh", figure_json(c.kwh)},
                         {"co2_kg", figure_json(c.co2_kg)},
                         {"hours", figure_json(c.hours)},
                         {"instance", priced.instance.name},
                         {"pricing", cost::pricing_name(priced.pricing)},
                         {"billing", cost::billing_name(priced.billing)},
                         {"usd_per_hour", cost::price_per_hour(priced.instance, priced.pricing)},
                         {"carbon_g_per_kwh", priced.user_carbon.value_or(priced.instance.carbon_g_per_kwh)},
                         {"energy_method", energy.method()},
                         {"catalog", priced.catalog_path}};
      if (!job.cost.catalog.empty()) summary["cost"]["user_catalog"] = job.cost.catalog;
      json phase_json = json::object();
      for (size_t i = 0; i < c.phase_s.size(); ++i) phase_json[cost::phase_name(cost::Phase(i))] = c.phase_s[i];
      summary["phases"] = phase_json;
      // CPU time and utilization of this process (from getrusage), over its wall time.
      const cost::ProcessSample process_now = cost::read_process_sample();
      summary["cpu_s"] = process_now.cpu_seconds() - process_start.cpu_seconds();
      summary["cpu_utilization"] = cost::cpu_utilization(process_start, process_now, num_threads());
      // Training FLOPs: forward x 3 (backward is about twice the forward) for every sample trained on.
      double flops = 3.0 * double(flops_per_sample) * double(samples_seen);
      summary["flops"] = flops;
      summary["flops_per_sample"] = flops_per_sample;
      summary["projections"] = projections_json(priced, flops);
      // MFU against the peak of the precision the matmuls and convolutions run in: bf16 for
      // bf16-mixed; fp32 otherwise (fp16-mixed runs the f32 kernels on f16-rounded values here).
      const std::string peak_precision = job.precision.mode == "bf16-mixed" ? "bf16" : "fp32";
      std::optional<double> peak = priced.instance.peak(peak_precision);
      const char* peak_source = priced.instance.from_user("peak_tflops") ? cost::source_user : cost::source_catalog;
      if ((!peak || *peak <= 0) && priced.instance.name == "local") {
        // This machine: measure its peak (FMA and bf16 dot-product loops on the run's threads, about
        // a second).
        const cost::PeakFlops measured = cost::measure_peak_flops(num_threads());
        peak = peak_precision == "bf16" ? measured.bf16 : measured.fp32;
        peak_source = cost::source_measured;
      }
      if (peak && *peak > 0 && c.wall_s > 0) {
        summary["mfu"] = flops / c.wall_s / *peak;
        summary["mfu_peak_flops"] = {{"value", *peak}, {"source", peak_source}, {"precision", peak_precision}};
      } else {
        summary["mfu"] = nullptr;
        summary["mfu_note"] = "unknown: instance '" + priced.instance.name + "' states no " + peak_precision +
                              " peak FLOP/s (set peak_tflops in a user catalog, [cost] catalog)";
      }
      if (budget) {
        json b = json::object();
        if (limits.usd) b["max_usd"] = *limits.usd;
        if (limits.kwh) b["max_kwh"] = *limits.kwh;
        if (limits.co2_kg) b["max_co2_kg"] = *limits.co2_kg;
        if (limits.hours) b["max_hours"] = *limits.hours;
        if (budget->exceeded()) b["exceeded"] = budget->exceeded_message();
        summary["budget"] = b;
      }
    };

    // The summary of a run that ends here: written to summary.json and the run store, returned.
    auto finish = [&](const json& metrics, const std::string& reason, int exit_code, const json& extra) {
      json summary = {{"run_id", run_id},
                      {"status", status},
                      {"stop_reason", reason},
                      {"epochs", data.is_text ? double(step) / double(steps_per_epoch)
                                              : double(samples_seen) / double(data.train.size())},
                      {"steps", step},
                      {"samples_seen", samples_seen},
                      {"metrics", metrics},
                      {"wall_s", wall_s()},
                      {"train_compute_s", train_compute_s},
                      {"data_wait_s", data_wait_s()},
                      {"peak_rss_bytes", peak_rss_bytes()},
                      {"memory", memory_json()},
                      {"params", model->num_parameters()},
                      {"threads", num_threads()},
                      {"out_dir", out_dir},
                      {"job_hash", job.hash}};
      summary.update(checkpoint_meters);
      summary["recompute"] = recompute_json;
      summary.update(extra);
      if (scaler)
        summary["loss_scaling"] = {{"final_scale", scaler->scale()},
                                   {"skipped_steps", scaler->skipped_steps()},
                                   {"growth_interval", scaler->options().growth_interval},
                                   {"init_scale", job.precision.loss_scale_init}};
      cost_summary(summary);
      {
        std::ofstream out(fs::path(out_dir) / "summary.json");
        out << summary.dump(2) << "\n";
      }
      store.finish_run(run_id, status, summary.dump());
      return TrainOutcome{exit_code, summary.dump()};
    };

    if (preempted || budget_stopped) {
      progress.finish();
      json extra = json::object();
      if (preempted) extra["signal"] = preemption_signal_name(preemption_signal());
      return finish(json{{"train_loss", last_train_loss}}, stop_reason, preempted ? kExitPreempted : kExitBudget, extra);
    }

    if (t.early_stopping.enabled && t.early_stopping.restore_best && !best_state.empty()) {
      model->load_state_dict(best_state, true);
      progress.line("restored the best weights (step " + std::to_string(best_step) + ")");
    }
    progress.finish();

    // Final metrics.
    std::optional<cost::PhaseTimer::Scope> final_evaluation(std::in_place, phases, cost::Phase::evaluation);
    json metrics;
    metrics["train_loss"] = last_train_loss;
    if (have_val || data.is_text || data.val.size() > 0) {
      EvalMetrics val = data.is_text ? evaluate_language_model(*model, data.val_tokens, t.batch_size, job.model.gpt.context, t.eval_tokens)
                                     : evaluate_classifier(*model, data.val, 1000);
      if (val.samples > 0) {
        metrics["val_loss"] = val.loss;
        if (val.accuracy >= 0) metrics["val_accuracy"] = val.accuracy;
        if (val.bits_per_char >= 0) metrics["val_bits_per_char"] = val.bits_per_char;
      }
    }
    if (data.is_text && data.test_tokens.defined()) {
      EvalMetrics test = evaluate_language_model(*model, data.test_tokens, t.batch_size, job.model.gpt.context, 0);
      metrics["test_loss"] = test.loss;
      metrics["test_bits_per_char"] = test.bits_per_char;
    } else if (!data.is_text && data.test.size() > 0) {
      EvalMetrics test = evaluate_classifier(*model, data.test, 1000);
      metrics["test_loss"] = test.loss;
      metrics["test_accuracy"] = test.accuracy;
    }

    final_evaluation.reset();
    std::map<std::string, std::string> metadata = {{"frugal.model", job.model.kind}, {"frugal.job_hash", job.hash}};
    if (data.is_text) metadata["frugal.vocab"] = data.vocab.to_string();
    io::write_safetensors((fs::path(out_dir) / "model.safetensors").string(), model->state_dict(), metadata);

    json extra = json::object();
    if (best_step >= 0) extra["best_step"] = best_step;
    return finish(metrics, stop_reason.empty() ? "finished" : stop_reason, 0, extra);
  } catch (const std::exception& e) {
    progress.finish();
    json failure = {{"run_id", run_id}, {"status", "failed"}, {"error", e.what()}, {"out_dir", out_dir},
                    {"wall_s", wall_s()}};
    store.finish_run(run_id, "failed", failure.dump());
    throw;
  }
}

}  // namespace frugal::train
