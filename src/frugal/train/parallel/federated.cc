// Federated averaging (see federated.h): the rounds, the clients' local loop, the server's average,
// the checkpoint of each round. Reads top to bottom: checks -> set-up (data, split, model, resume,
// run store) -> rounds (sample, train the clients of this rank, gather, average, evaluate, record,
// checkpoint) -> the final evaluation, model and summary. Rank 0 alone writes files and the store.
#include "frugal/train/parallel/federated.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/flops.h"
#include "frugal/autograd/ops.h"
#include "frugal/autograd/precision.h"
#include "frugal/base/error.h"
#include "frugal/base/format.h"
#include "frugal/base/parallel.h"
#include "frugal/base/rng.h"
#include "frugal/base/signals.h"
#include "frugal/base/timer.h"
#include "frugal/base/value_text.h"
#include "frugal/data/loader.h"
#include "frugal/dist/communicator.h"
#include "frugal/io/checkpoint.h"
#include "frugal/io/safetensors.h"
#include "frugal/track/run_store.h"
#include "frugal/train/job_paths.h"
#include "frugal/train/limits.h"
#include "frugal/train/parallel/federated_split.h"
#include "frugal/train/resume.h"

namespace frugal::train {

namespace fs = std::filesystem;

std::vector<float> weighted_average(const std::vector<const float*>& models, const std::vector<int64_t>& weights,
                                    int64_t n) {
  FRUGAL_CHECK(models.size() == weights.size() && !models.empty(), "weighted_average: one weight per model");
  double total = 0;
  for (int64_t w : weights) total += double(w);
  std::vector<double> sum(static_cast<size_t>(n), 0.0);
  for (size_t i = 0; i < models.size(); ++i) {
    const double share = double(weights[i]) / total;
    const float* m = models[i];
    for (int64_t j = 0; j < n; ++j) sum[size_t(j)] += share * double(m[j]);
  }
  return std::vector<float>(sum.begin(), sum.end());
}

std::vector<int64_t> sample_clients(int64_t clients, int64_t per_round, uint64_t seed, int64_t round) {
  FRUGAL_CHECK(per_round >= 1 && per_round <= clients, "sample_clients: 1 <= per_round <= clients");
  std::vector<int64_t> all(static_cast<size_t>(clients));
  std::iota(all.begin(), all.end(), 0);
  Rng rng(seed, mix_key(0xFED0003, uint64_t(round)), RandomPurpose::split);
  for (int64_t i = 0; i < per_round; ++i)  // a partial Fisher-Yates shuffle: the first per_round
    std::swap(all[size_t(i)], all[size_t(i + int64_t(rng.below(uint64_t(clients - i))))]);
  all.resize(size_t(per_round));
  std::sort(all.begin(), all.end());
  return all;
}

namespace {

// The model's state (state_dict order: parameters and buffers) as one flat f32 vector: what a
// client downloads and uploads. i64 buffers (BatchNorm's num_batches_tracked) travel as f32, exact
// below 2^24, and come back rounded.
class FlatState {
 public:
  explicit FlatState(nn::Module& model) : tensors_(model.state_dict()) {
    for (const auto& [name, t] : tensors_) {
      FRUGAL_CHECK(t.is_contiguous() && (t.dtype() == DType::f32 || t.dtype() == DType::i64),
                   "federated averaging: model tensor " + name + " is not a contiguous f32 or i64 tensor");
      offsets_[name] = size_;
      size_ += t.numel();
    }
  }
  int64_t size() const { return size_; }
  int64_t offset(const std::string& name) const { return offsets_.at(name); }
  const nn::NamedTensors& tensors() const { return tensors_; }
  void read(float* out) const {
    for (const auto& [name, t] : tensors_) {
      float* o = out + offsets_.at(name);
      if (t.dtype() == DType::f32) std::copy(t.data<float>(), t.data<float>() + t.numel(), o);
      else for (int64_t i = 0; i < t.numel(); ++i) o[i] = float(t.data<int64_t>()[i]);
    }
  }
  void write(const float* in) {
    for (auto& [name, t] : tensors_) {
      const float* v = in + offsets_.at(name);
      if (t.dtype() == DType::f32) std::copy(v, v + t.numel(), t.data<float>());
      else for (int64_t i = 0; i < t.numel(); ++i) t.data<int64_t>()[i] = std::llround(double(v[i]));
    }
  }

 private:
  nn::NamedTensors tensors_;  // live handles of the model's tensors
  std::map<std::string, int64_t> offsets_;
  int64_t size_ = 0;
};

// What [federated] cannot run with, before anything is read or written (exit 2).
void check_job(const JobSpec& job) {
  const std::string where = job.path + ": [federated] ";
  if (job.data.kind == DataKind::packed)
    throw InputError(where + "needs the training split in memory to deal it out to clients; packed data streams it "
                     "(use the job that reads the raw files)");
  if (job.dist.compression != Compression::none)
    throw InputError(job.path + ": [dist] compression: does not combine with [federated] (clients send whole models "
                     "once per round, not gradients every step); expected \"none\"");
  const std::pair<bool, const char*> apart[] = {
      {job.data_pruning.enabled, "[data_pruning]"},       {job.curriculum.enabled, "[curriculum]"},
      {job.importance_sampling.enabled, "[importance_sampling]"}, {job.distill.has_value(), "[distill]"},
      {job.selective_backprop.enabled, "[selective_backprop]"},   {job.lora.enabled, "[lora]"},
      {job.prune.enabled, "[prune]"},                      {!job.init.from.empty(), "[init]"},
      {!job.freeze.params.empty(), "[freeze]"},            {job.quantize.aware, "[quantize] aware"}};
  for (const auto& [on, section] : apart)
    if (on)
      throw InputError(where + "and " + section + " do not combine: the clients train in a plain local loop that runs "
                       "none of the training loop's techniques; remove one of them");
  if (job.precision.mode == Precision::fp16_mixed)
    throw InputError(job.path + ": [precision] mode = \"fp16-mixed\": does not combine with [federated] (the clients' "
                     "loop has no loss scaling); expected fp32, bf16-mixed or int8-mixed");
  if (job.model.kind == ModelKind::custom)
    throw InputError(where + "needs a model of the job ([model] kind mlp or cnn), not one given by code");
}

struct ClientStats {
  double loss_sum = 0, batches = 0, samples = 0, steps = 0;
};

// Everything a round needs, fixed for the run.
struct Federation {
  const JobSpec& job;
  const PreparedData& data;
  nn::Module& model;
  FlatState& flat;
  cost::RunMeter& meter;
  const std::vector<std::vector<int64_t>>& shards;
};

// FedProx: the gradient of mu/2 ||w - w_global||^2 added to each parameter's gradient.
void add_proximal_term(const std::vector<std::pair<Tensor, const float*>>& params, double mu) {
  const float m = float(mu);
  for (const auto& [p, global] : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    FRUGAL_CHECK(g.dtype() == DType::f32 && g.is_contiguous(), "fedprox: gradients must be contiguous f32");
    float* gd = g.data<float>();
    const float* w = p.data<float>();
    for (int64_t i = 0; i < p.numel(); ++i) gd[i] += m * (w[i] - global[i]);
  }
}

// One client's local training in a round, from the global weights; its weights and buffers after
// it go to `out` (flat). The loader's order and dropout are keyed by (seed, round, client).
ClientStats train_client(Federation& f, int64_t client, int64_t round, double lr, const std::vector<float>& global,
                         float* out) {
  const JobSpec& job = f.job;
  f.flat.write(global.data());
  f.model.train(true);
  std::unique_ptr<optim::Optimizer> optimizer = make_optimizer(job, f.model);  // fresh state: see federated.h
  optimizer->set_lr(lr);
  const data::Dataset shard = data::take(f.data.train, f.shards[size_t(client)]);
  data::LoaderOptions lo;
  lo.batch_size = job.train.batch_size;
  lo.shuffle = true;
  lo.seed = mix_key(job.run.seed, mix_key(uint64_t(round), uint64_t(client)));
  lo.augment.crop_padding = job.data.crop_padding;
  lo.augment.horizontal_flip = job.data.flip;
  lo.prefetch = job.data.prefetch;
  lo.workers = job.data.workers;
  data::Loader loader(shard, lo);
  std::vector<std::pair<Tensor, const float*>> proximal;
  if (job.federated.algorithm == FederatedAlgorithm::fedprox)
    for (const auto& [name, p] : f.model.named_parameters())
      if (p.requires_grad()) proximal.emplace_back(p, global.data() + f.flat.offset(name));
  CrossEntropyOptions loss_options;
  loss_options.label_smoothing = job.train.label_smoothing;
  const int64_t batches = loader.batches_per_epoch(), grad_accum = job.train.grad_accum;
  ClientStats stats;
  uint64_t micro = 0;
  for (int64_t epoch = 0; epoch < job.federated.local_epochs; ++epoch) {
    loader.start_epoch(epoch);
    for (int64_t done = 0; done < batches;) {
      const int64_t in_step = std::min(grad_accum, batches - done);  // the last step may have fewer
      for (int64_t a = 0; a < in_step; ++a) {
        std::optional<data::Batch> batch;
        {
          auto in_phase = f.meter.phase(cost::Phase::data_wait);
          batch = loader.next();
        }
        FRUGAL_CHECK(batch.has_value(), "the client's loader ended the epoch early");
        MemoryCategoryGuard activations(MemoryCategory::activations);
        autograd::FlopCounter flops;
        nn::set_random_context({lo.seed, micro++});
        Timer compute;
        Tensor loss;
        {
          auto in_phase = f.meter.phase(cost::Phase::forward);
          loss = cross_entropy(f.model(batch->inputs), batch->targets, loss_options);
        }
        const double value = loss.item();
        if (!std::isfinite(value))
          throw InternalError("client " + std::to_string(client) + "'s training loss became " + std::to_string(value) +
                              " in round " + std::to_string(round + 1));
        {
          auto in_phase = f.meter.phase(cost::Phase::backward);
          autograd::backward(in_step > 1 ? mul_scalar(loss, 1.0 / double(in_step)) : loss);
        }
        f.meter.add_train_compute(compute.seconds());
        f.meter.add_flops(flops.forward(), flops.backward());
        stats.loss_sum += value;
        stats.batches += 1;
        stats.samples += double(batch->inputs.size(0));
      }
      done += in_step;
      auto in_phase = f.meter.phase(cost::Phase::optimizer);
      if (!proximal.empty()) add_proximal_term(proximal, job.federated.mu);
      optimizer->step();
      optimizer->zero_grad();
      stats.steps += 1;
    }
  }
  f.flat.read(out);
  return stats;
}

// One round's training on this rank and the server's average: client i of the round trains on rank
// i % size, into slot i / size of that rank's block; the blocks are gathered to every rank, which
// averages them in ascending client order, so every rank (and a simulated run) gets the same bits.
struct RoundResult {
  int64_t clients = 0;
  ClientStats stats;                      // every rank's clients, summed in rank order
  std::optional<double> bytes_measured;   // the ranks' counted traffic in this process (world size > 1)
};

RoundResult train_round(Federation& f, dist::Communicator& world, int64_t round, double lr, std::vector<float>& global) {
  const FederatedSpec& spec = f.job.federated;
  const int rank = world.rank(), size = world.size();
  const int64_t n = f.flat.size();
  const std::vector<int64_t> sampled = sample_clients(spec.clients, spec.clients_per_round, f.job.run.seed, round);
  const int64_t K = int64_t(sampled.size()), per_rank = (K + size - 1) / size;
  std::vector<float> mine(static_cast<size_t>(per_rank * n), 0.0f);
  RoundResult result;
  result.clients = K;
  ClientStats& local = result.stats;
  for (int64_t i = rank; i < K; i += size) {
    const ClientStats s = train_client(f, sampled[size_t(i)], round, lr, global, mine.data() + (i / size) * n);
    local.loss_sum += s.loss_sum, local.batches += s.batches, local.samples += s.samples, local.steps += s.steps;
  }
  std::vector<float> gathered;
  const float* all = mine.data();
  if (size > 1) {
    gathered.resize(size_t(size) * mine.size());
    world.allgather(mine.data(), mine.size() * sizeof(float), gathered.data());
    all = gathered.data();
  }
  std::vector<const float*> models;
  std::vector<int64_t> weights;
  for (int64_t i = 0; i < K; ++i) {
    models.push_back(all + ((i % size) * per_rank + i / size) * n);
    weights.push_back(int64_t(f.shards[size_t(sampled[size_t(i)])].size()));
  }
  global = weighted_average(models, weights, n);
  f.flat.write(global.data());
  if (size > 1) {
    auto total = [&](double v) {
      double sum = 0;
      for (double x : dist::allgather_values(world, v)) sum += x;
      return sum;
    };
    local = {total(local.loss_sum), total(local.batches), total(local.samples), total(local.steps)};
    result.bytes_measured = total(double(world.traffic().bytes_sent));
  }
  return result;
}

// Where the run lives and what it goes on from (rank 0): as the Trainer decides it (trainer.cc),
// found before anything is written.
struct FederatedResume {
  std::optional<io::CheckpointState> checkpoint;
  std::string path, out_dir, checkpoint_dir;
  std::optional<RunSummary> completed;  // --resume auto of a run that had finished
};

FederatedResume find_resume(const JobSpec& job, const TrainOptions& options) {
  FederatedResume r;
  if (!options.resume.empty() && options.resume != "auto") {
    r.checkpoint = io::read_checkpoint(options.resume);
    r.path = options.resume;
  }
  r.out_dir = options.out_dir;
  if (r.out_dir.empty() && r.checkpoint && r.checkpoint->values.count("out_dir")) r.out_dir = r.checkpoint->values.at("out_dir");
  if (r.out_dir.empty()) {
    if (options.resume == "auto") throw InputError("--resume auto needs --out DIR, the run directory to continue");
    r.out_dir = (fs::path("runs") / (job.run.name + "-" + utc_time(double(std::time(nullptr)), "%Y%m%d-%H%M%S"))).string();
  }
  if (is_system_directory(r.out_dir))
    throw InputError("--out " + r.out_dir + ": a system directory; give the run a directory of its own");
  r.checkpoint_dir = job.checkpoint.dir.empty() ? (fs::path(r.out_dir) / "checkpoints").string() : job.checkpoint.dir;
  if (options.resume == "auto") {
    const fs::path summary_path = fs::path(r.out_dir) / "summary.json";
    std::ifstream in(summary_path);
    const nlohmann::json done = in ? nlohmann::json::parse(in, nullptr, false) : nlohmann::json();
    if (done.is_object() && done.value("status", "") == "completed" && fs::exists(fs::path(r.out_dir) / "model.safetensors")) {
      r.completed = RunSummary::from_json(done, summary_path.string());
      return r;
    }
    if (std::optional<io::LatestCheckpoint> latest = io::load_latest_checkpoint(r.checkpoint_dir)) {
      for (const std::string& w : latest->warnings) std::fprintf(stderr, "frugal: warning: %s\n", w.c_str());
      r.checkpoint = std::move(latest->state);
      r.path = latest->path;
    }
  } else if (!r.checkpoint && has_checkpoint_files(r.checkpoint_dir)) {
    throw InputError(r.checkpoint_dir + " already holds checkpoints of an earlier run: continue it with --resume auto, "
                     "or start a new run in another --out directory (or [checkpoint] dir)");
  }
  if (r.checkpoint) {
    check_resumable(*r.checkpoint, r.path, job);
    if (!r.checkpoint->values.count("federated.round"))
      throw InputError(r.path + ": not a checkpoint of federated averaging (no value 'federated.round')");
  } else if (fs::exists(fs::path(r.out_dir) / "model.safetensors")) {
    throw InputError((fs::path(r.out_dir) / "model.safetensors").string() + ": --out already holds the model of an "
                     "earlier run, which a fresh run would overwrite: choose another --out (--resume auto continues a "
                     "run from its checkpoints)");
  }
  return r;
}

// The run's progress over rounds: what a checkpoint carries and rank 0 broadcasts to the others.
struct RoundPosition {
  int64_t round = 0;  // rounds done
  double bytes = 0;   // logical volume so far: 2 x the model's floats x 4 bytes per sampled client
  double samples = 0, steps = 0;
  double target_round = -1, target_bytes = -1;  // where target_accuracy was first reached (-1: not yet)
  double bytes_measured = 0;  // the ranks' counted traffic over every process of the run (world size > 1)
  int64_t metrics_bytes = 0;
  std::string run_id;
};

const char* kPositionKeys[] = {"federated.round", "federated.bytes", "federated.samples", "federated.steps",
                               "federated.target_round", "federated.target_bytes", "federated.bytes_measured"};

std::vector<double> position_values(const RoundPosition& p) {
  return {double(p.round), p.bytes, p.samples, p.steps, p.target_round, p.target_bytes, p.bytes_measured};
}

void write_round_checkpoint(const JobSpec& job, const FlatState& flat, const RoundPosition& p,
                            const std::string& out_dir, const std::string& checkpoint_dir, cost::RunMeter& meter) {
  auto in_phase = meter.phase(cost::Phase::checkpoint);
  Timer timer;
  io::CheckpointState state;
  state.step = p.round;
  state.job_hash = job.hash;
  const std::vector<double> values = position_values(p);
  for (size_t i = 0; i < values.size(); ++i) state.values[kPositionKeys[i]] = value_text(values[i]);
  state.values["job_toml"] = job.resolved_toml;
  state.values["run_id"] = p.run_id;
  state.values["out_dir"] = out_dir;
  state.values["metrics_bytes"] = std::to_string(p.metrics_bytes);
  state.values["threads"] = std::to_string(num_threads());
  for (const auto& [name, t] : flat.tensors()) state.tensors.emplace_back("model." + name, t.clone());
  meter.save(state.values, 0.0);
  io::CheckpointWrite written = io::write_checkpoint(checkpoint_dir, state, job.checkpoint.keep);
  for (const std::string& w : written.warnings) std::fprintf(stderr, "frugal: warning: %s\n", w.c_str());
  meter.add_checkpoint_write(timer.seconds());
}

RoundPosition restore_round_checkpoint(const io::CheckpointState& state, const std::string& path, FlatState& flat) {
  const ValueReader values(state.values, path);
  RoundPosition p;
  p.round = values.integer("federated.round");
  p.bytes = values.real("federated.bytes");
  p.samples = values.real("federated.samples");
  p.steps = values.real("federated.steps");
  p.target_round = values.real("federated.target_round");
  p.target_bytes = values.real("federated.target_bytes");
  p.bytes_measured = values.real("federated.bytes_measured");
  p.metrics_bytes = values.integer("metrics_bytes");
  p.run_id = state.values.count("run_id") ? state.values.at("run_id") : "";
  std::map<std::string, Tensor> saved;
  for (const auto& [name, t] : state.tensors)
    if (name.rfind("model.", 0) == 0) saved[name.substr(6)] = t;
  for (const auto& [name, t] : flat.tensors()) {
    auto it = saved.find(name);
    if (it == saved.end() || it->second.shape() != t.shape())
      throw InputError(path + ": checkpoint lacks model tensor '" + name + "' of this job's shape");
    Tensor target = t;
    target.copy_from(it->second);
  }
  return p;
}

// Preemption signals ask for a stop after the round's checkpoint while the run goes on.
struct PreemptionScope {
  PreemptionScope() {
    clear_preemption();
    install_preemption_handlers();
  }
  ~PreemptionScope() { uninstall_preemption_handlers(); }
};

}  // namespace

namespace {

// The figures of the run for summary.json (techniques.federated) and the CLI.
nlohmann::json federated_figures(const JobSpec& job, const std::vector<std::vector<int64_t>>& shards, double skew,
                                 const RoundPosition& p, int64_t model_floats, int world_size,
                                 std::optional<double> bytes_measured) {
  const FederatedSpec& f = job.federated;
  int64_t smallest = INT64_MAX, largest = 0;
  for (const auto& shard : shards) smallest = std::min<int64_t>(smallest, int64_t(shard.size())), largest = std::max<int64_t>(largest, int64_t(shard.size()));
  nlohmann::json out = {{"algorithm", f.algorithm == FederatedAlgorithm::fedavg ? "fedavg" : "fedprox"},
                        {"clients", f.clients},
                        {"clients_per_round", f.clients_per_round},
                        {"rounds", p.round},
                        {"rounds_planned", f.rounds},
                        {"local_epochs", f.local_epochs},
                        {"split", f.split == FederatedSplit::iid ? "iid" : "dirichlet"},
                        {"shard_min", smallest},
                        {"shard_max", largest},
                        {"label_skew", skew},
                        {"model_floats", model_floats},
                        {"bytes", p.bytes},
                        {"world_size", world_size}};
  if (f.split == FederatedSplit::dirichlet) out["alpha"] = f.alpha;
  if (f.algorithm == FederatedAlgorithm::fedprox) out["mu"] = f.mu;
  if (bytes_measured) out["bytes_measured"] = *bytes_measured;
  if (f.target_accuracy > 0) {
    out["target_accuracy"] = f.target_accuracy;
    out["target_round"] = p.target_round >= 0 ? nlohmann::json(int64_t(p.target_round)) : nlohmann::json();
    out["target_bytes"] = p.target_bytes >= 0 ? nlohmann::json(p.target_bytes) : nlohmann::json();
  }
  return out;
}

void write_model_file(const JobSpec& job, const PreparedData& data, const nn::Module& model, const std::string& out_dir) {
  std::map<std::string, std::string> metadata = {{"frugal.model", name_of(job.model.kind)}, {"frugal.job_hash", job.hash}};
  if (!data.label_names.empty()) metadata["frugal.labels"] = nlohmann::json(data.label_names).dump();
  io::write_safetensors((fs::path(out_dir) / "model.safetensors").string(), model.state_dict(), metadata);
}


// The run's record on rank 0: run directory, run store and metrics.jsonl; a resumed run goes on as
// the same run, its rows of rounds after the checkpoint dropped.
struct RunRecord {
  std::optional<track::RunStore> store;
  std::optional<MetricsLog> metrics;  // refers to *store
  std::string run_id;
};

void open_record(RunRecord& r, const JobSpec& job, const FederatedResume& resume, RoundPosition& position) {
  fs::create_directories(resume.out_dir);
  fs::create_directories(resume.checkpoint_dir);
  std::ofstream(fs::path(resume.out_dir) / "job.toml") << job.resolved_toml;
  r.store.emplace(job.run.store);
  const fs::path metrics_path = fs::path(resume.out_dir) / "metrics.jsonl";
  if (resume.checkpoint) {
    if (!position.run_id.empty() && r.store->resume_run(position.run_id, position.round)) r.run_id = position.run_id;
    std::error_code error;
    if (fs::file_size(metrics_path, error) >= uintmax_t(position.metrics_bytes) && !error)
      fs::resize_file(metrics_path, uintmax_t(position.metrics_bytes));
  }
  if (r.run_id.empty()) r.run_id = r.store->create_run({job.run.name, job.resolved_toml, resume.out_dir, job.hash});
  r.metrics.emplace(metrics_path.string(), resume.checkpoint ? position.metrics_bytes : 0, &*r.store, r.run_id);
  position.run_id = r.run_id;
}

// Rank 0 after a round: the global model evaluated, the round's row, its line and its checkpoint.
// Returns the round's mean training loss over its clients' batches.
double record_round(Federation& f, RunRecord& record, Progress& progress, RoundPosition& position,
                    const FederatedResume& resume, const RoundResult& result, double lr) {
  const FederatedSpec& spec = f.job.federated;
  EvalMetrics val, test;
  {
    auto in_phase = f.meter.phase(cost::Phase::evaluation);
    autograd::FlopCounter flops;
    if (f.data.val.size() > 0) val = evaluate_classifier(f.model, f.data.val, 1000);
    // The test split too, for the round its accuracy reached a target (reported, never acted on).
    if (f.data.test.size() > 0) test = evaluate_classifier(f.model, f.data.test, 1000);
    f.meter.add_eval_flops(flops.total());
  }
  if (spec.target_accuracy > 0 && position.target_round < 0 && val.samples > 0 && val.accuracy >= spec.target_accuracy)
    position.target_round = double(position.round), position.target_bytes = position.bytes;
  const double train_loss = result.stats.loss_sum / std::max(1.0, result.stats.batches);
  nlohmann::json row = {{"kind", "round"}, {"round", position.round}, {"step", position.round},
                        {"clients", result.clients}, {"lr", lr}, {"train_loss", train_loss},
                        {"bytes", position.bytes}, {"wall_s", f.meter.wall_s()}};
  if (val.samples > 0) row["val_loss"] = val.loss, row["val_accuracy"] = val.accuracy;
  if (test.samples > 0) row["test_accuracy"] = test.accuracy;
  if (result.bytes_measured) row["bytes_measured"] = position.bytes_measured;
  record.metrics->write(row);
  // The store's metric kinds are train and eval: a round is an evaluation of the global model.
  record.store->log_metrics(record.run_id, position.round, "eval", row.dump());
  progress.line("round " + std::to_string(position.round) + "/" + std::to_string(spec.rounds) + ": train loss " +
                Progress::fixed(train_loss, 4) +
                (val.samples > 0 ? ", val accuracy " + Progress::fixed(100 * val.accuracy, 2) + "%" : "") + ", " +
                Progress::fixed(position.bytes / 1e6, 1) + " MB exchanged, " + Progress::duration(f.meter.wall_s()));
  position.metrics_bytes = record.metrics->bytes();
  write_round_checkpoint(f.job, f.flat, position, resume.out_dir, resume.checkpoint_dir, f.meter);
  f.meter.sample();
  return train_loss;
}

// The summary of the run on any rank; rank 0 (lead) evaluates the final model and writes it first
// when the run completed.
RunSummary summarize(Federation& f, const ModelPlan& plan, const FederatedResume& resume, const RoundPosition& position,
                     bool preempted, bool lead, nlohmann::json figures) {
  RunSummary s;
  s.run_id = position.run_id;
  s.status = preempted ? "preempted" : "completed";
  s.stop_reason = preempted ? "preempted" : "finished";
  if (preempted) s.signal = preemption_signal_name(preemption_signal());
  if (!preempted && lead) {
    auto in_phase = f.meter.phase(cost::Phase::evaluation);
    autograd::FlopCounter flops;
    if (f.data.val.size() > 0) {
      const EvalMetrics val = evaluate_classifier(f.model, f.data.val, 1000);
      s.metrics.val_loss = val.loss, s.metrics.val_accuracy = val.accuracy;
    }
    if (f.data.test.size() > 0) {
      const EvalMetrics test = evaluate_classifier(f.model, f.data.test, 1000);
      s.metrics.test_loss = test.loss, s.metrics.test_accuracy = test.accuracy;
    }
    f.meter.add_eval_flops(flops.total());
    write_model_file(f.job, f.data, f.model, resume.out_dir);
  }
  s.epochs = position.samples / double(f.data.train.size());
  s.steps = int64_t(position.steps);
  s.samples_seen = int64_t(position.samples);
  s.train_compute_s = f.meter.train_compute_s();
  s.peak_rss_bytes = cost::read_process_sample().peak_rss_bytes;
  s.memory = measure_memory();
  s.params = f.model.num_parameters();
  s.trainable_params = f.model.num_trainable_parameters();
  s.threads = num_threads();
  s.out_dir = resume.out_dir;
  s.job_hash = f.job.hash;
  s.checkpoint.checkpoint_dir = resume.checkpoint_dir;
  if (!resume.path.empty()) s.checkpoint.resumed_from = resume.path;
  s.checkpoint.interruptions = f.meter.interruptions();
  s.checkpoint.checkpoint_s = f.meter.checkpoint_s();
  s.cost = f.meter.summary(plan.flops_per_sample, bf16_operands(f.job.precision.mode) ? "bf16" : "fp32", num_threads());
  s.techniques["federated"] = std::move(figures);
  return s;
}

// The run on this rank of `world` (see run_federated).
TrainOutcome federate(const JobSpec& job, const TrainOptions& options, dist::Communicator* world) {
  const FederatedSpec& spec = job.federated;
  require_job_file(job, job.cost.user_catalog);
  cost::RunMeter meter(cost::price_instance(shipped_catalog_path(), job.cost));
  const int rank = world->rank(), size = world->size();
  const bool lead = rank == 0;  // writes the run directory, the store and the model
  PreemptionScope preemption;
  apply_threads(job);
  PrecisionGuard precision(job.precision.mode);
  PreparedData data = prepare_data(job, "runs/cache");
  if (lead)
    for (const std::string& w : data.warnings) std::fprintf(stderr, "frugal: warning: %s\n", w.c_str());
  const int64_t rows = data.train.size();
  if (spec.clients > rows)
    throw InputError(job.path + ": [federated] clients: expected at most the " + std::to_string(rows) +
                     " training samples (every client needs one), got " + std::to_string(spec.clients));
  ModelPlan plan = plan_model(job, data);
  check_model_memory(job, plan, /*training=*/true);
  std::shared_ptr<nn::Module> model = build_model(plan, job.run.seed);
  FlatState flat(*model);
  const int64_t n = flat.size();
  const std::vector<int64_t> labels = data.train.targets.to_vector<int64_t>();
  const std::vector<std::vector<int64_t>> shards =
      spec.split == FederatedSplit::iid ? split_iid(rows, spec.clients, job.run.seed)
                                        : split_dirichlet(labels, data.classes, spec.clients, spec.alpha, job.run.seed);
  const double skew = label_skew(shards, labels, data.classes);

  // Rank 0 finds the run to go on from; every rank starts from its round and global weights.
  FederatedResume resume;
  RoundPosition position;
  if (lead) {
    resume = find_resume(job, options);
    if (resume.checkpoint) {
      position = restore_round_checkpoint(*resume.checkpoint, resume.path, flat);
      if (position.round > spec.rounds)
        throw InputError(resume.path + ": checkpoint of round " + std::to_string(position.round) + " is past the job's " +
                         std::to_string(spec.rounds) + " rounds");
      std::optional<cost::LastBeat> no_beat;  // rounds are checkpointed whole: no heartbeat between them
      meter.resume(cost::read_carried_meters(resume.checkpoint->values, resume.path), no_beat);
    }
  }
  std::vector<double> header = position_values(position);
  header.push_back(resume.completed ? 1.0 : 0.0);
  if (size > 1) world->broadcast(header.data(), header.size() * sizeof(double), 0);
  if (header.back() != 0) {
    if (lead && !options.quiet) std::fprintf(options.log, "%s already completed; nothing to resume\n", resume.out_dir.c_str());
    return {0, resume.completed ? *resume.completed : RunSummary{}};
  }
  position.round = int64_t(header[0]), position.bytes = header[1], position.samples = header[2];
  position.steps = header[3], position.target_round = header[4], position.target_bytes = header[5];
  position.bytes_measured = header[6];
  const double carried_traffic = position.bytes_measured;  // of the processes before this one
  std::vector<float> global(static_cast<size_t>(n));
  flat.read(global.data());
  if (size > 1 && position.round > 0) {
    world->broadcast(global.data(), global.size() * sizeof(float), 0);
    flat.write(global.data());
  }

  RunRecord record;
  if (lead) open_record(record, job, resume, position);
  const std::string& run_id = record.run_id;
  Progress progress(options.log, false, options.quiet || !lead);
  progress.line("run " + run_id + ": " + data.describe + "; model " + name_of(plan.kind) + " with " +
                std::to_string(model->num_parameters()) + " parameters; " + std::to_string(num_threads()) + " threads");
  progress.line(std::string("federated ") + (spec.algorithm == FederatedAlgorithm::fedavg ? "fedavg" : "fedprox") +
                ": " + std::to_string(spec.clients) + " clients (" +
                (spec.split == FederatedSplit::iid ? std::string("iid") : "dirichlet alpha " + number_text(spec.alpha)) +
                ", label skew " + Progress::fixed(skew, 3) + "), " + std::to_string(spec.clients_per_round) +
                " per round, " + std::to_string(spec.local_epochs) + " local epochs, " + std::to_string(spec.rounds) +
                " rounds; " + std::to_string(size) + (size == 1 ? " process" : " ranks"));
  if (!resume.path.empty())
    progress.line("resumed from " + resume.path + " after round " + std::to_string(position.round));

  std::unique_ptr<optim::LrSchedule> schedule = make_schedule(job.schedule, job.optim.lr, spec.rounds);
  Federation federation{job, data, *model, flat, meter, shards};
  bool preempted = false;
  std::optional<double> bytes_measured;
  double last_train_loss = NAN;  // the last round's mean over its clients' batches
  try {
    for (int64_t round = position.round; round < spec.rounds; ++round) {
      const double lr = schedule->lr_at(round);
      const RoundResult result = train_round(federation, *world, round, lr, global);
      const int64_t K = result.clients;
      const ClientStats& local = result.stats;
      if (result.bytes_measured) bytes_measured = position.bytes_measured = carried_traffic + *result.bytes_measured;
      position.round = round + 1;
      position.bytes += 2.0 * double(n) * 4.0 * double(K);  // each sampled client downloads and uploads the model
      position.samples += local.samples, position.steps += local.steps;
      const bool stop = size > 1 ? dist::any_rank(*world, preemption_requested()) : preemption_requested();
      if (lead) last_train_loss = record_round(federation, record, progress, position, resume, result, lr);
      if (stop) {
        preempted = true;
        break;
      }
    }

    RunSummary s = summarize(federation, plan, resume, position, preempted, lead,
                             federated_figures(job, shards, skew, position, n, size, bytes_measured));
    s.metrics.train_loss = last_train_loss;
    if (lead) {
      const nlohmann::json summary_json = s.to_json();
      std::ofstream(fs::path(resume.out_dir) / "summary.json") << summary_json.dump(2) << "\n";
      record.store->finish_run(run_id, s.status, summary_json.dump());
    }
    return {preempted ? kExitPreempted : 0, s};
  } catch (const std::exception& e) {
    if (lead) {
      const nlohmann::json failure = {{"run_id", run_id}, {"status", "failed"}, {"error", e.what()},
                                      {"out_dir", resume.out_dir}, {"wall_s", meter.wall_s()}};
      record.store->finish_run(run_id, "failed", failure.dump());
    }
    throw;
  }
}

}  // namespace

TrainOutcome run_federated(const JobSpec& job, const TrainOptions& options) {
  check_job(job);  // the same refusal on every rank, before the world is opened
  if (job.schedule.kind == "plateau")
    throw InputError(job.path + ": [schedule] kind = \"plateau\": does not combine with [federated] ([schedule] counts "
                     "rounds and every rank must know the lr without the server's evaluation); choose another kind");
  std::shared_ptr<dist::Communicator> world = options.world ? options.world : dist::open_world(job.dist.backend);
  if (world->size() == 1) return federate(job, options, world.get());
  try {
    return federate(job, options, world.get());
  } catch (const std::exception& e) {
    // The other ranks wait in a collective for this one (rank 0's resume, a round): end them all now.
    std::fflush(stdout);
    std::fprintf(stderr, "frugal: rank %d of %d: error: %s\n", world->rank(), world->size(), e.what());
    std::fflush(stderr);
    world->abort(dynamic_cast<const InputError*>(&e) ? 2 : 1);
  }
}

}  // namespace frugal::train
