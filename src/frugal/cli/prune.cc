// `frugal prune`: the job's model loaded with trained weights, scored (magnitude, or first-order
// Taylor from the gradients of a few training batches), the lowest-scoring weights or units removed
// at once, and the result written: unstructured, the same shapes with zeros; structured, the compacted
// smaller model with its job file (model.toml). Prints per layer what was kept, the parameters and
// the file sizes. Limits: no fine-tuning here (train the written model.toml with [init] from).
#include "frugal/cli/prune.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/ops.h"
#include "frugal/base/error.h"
#include "frugal/base/format.h"
#include "frugal/base/machine.h"
#include "frugal/io/safetensors.h"
#include "frugal/tensor/dtype.h"
#include "frugal/train/compress/prune.h"
#include "frugal/train/data_setup.h"
#include "frugal/train/limits.h"
#include "frugal/train/model_setup.h"

namespace frugal::cli {
namespace {

namespace fs = std::filesystem;

struct PruneArgs {
  std::string job, weights, out, score, scope;
  std::vector<std::string> structures, layers, exclude, sets;
  double sparsity = -1;
  int64_t batches = 8;
};

// Taylor scores: the gradients of `batches` training batches (in order, the job's batch size).
std::vector<std::vector<double>> taylor_scores(nn::Module& model, const train::JobSpec& job,
                                               const train::PreparedData& data, const std::vector<train::PruneLayer>& layers,
                                               int64_t batches) {
  std::vector<std::vector<double>> scores;
  for (const train::PruneLayer& p : layers) scores.emplace_back(size_t(p.units), 0.0);
  model.train(false);  // no dropout; batch norm in eval mode: the model as it will run
  const int64_t B = job.train.batch_size;
  const std::vector<int64_t> tokens =
      data.is_text ? data.train_tokens.contiguous().to_vector<int64_t>() : std::vector<int64_t>();  // once, not per batch
  for (int64_t b = 0; b < batches; ++b) {
    for (Tensor& p : model.parameters()) p.set_grad(Tensor());
    Tensor loss;
    if (data.is_text) {
      const int64_t T = job.model.gpt.context, n = data.train_tokens.numel();
      std::vector<int64_t> x, y;
      for (int64_t i = 0; i < B; ++i) {
        const int64_t start = ((b * B + i) * T) % std::max<int64_t>(1, n - T - 1);
        for (int64_t t = 0; t < T; ++t) x.push_back(tokens[size_t(start + t)]), y.push_back(tokens[size_t(start + t + 1)]);
      }
      Tensor logits = model.forward(Tensor::from_vector(x, {B, T}));
      loss = cross_entropy(reshape(logits, {-1, logits.size(-1)}), Tensor::from_vector(y, {B * T}));
    } else {
      const int64_t n = data.train_size();
      std::vector<int64_t> rows;
      for (int64_t i = 0; i < B; ++i) rows.push_back((b * B + i) % n);
      const data::Dataset batch = data.train_rows(rows);  // in memory, or decoded from a pack
      loss = cross_entropy(model.forward(batch.inputs), batch.targets);
    }
    autograd::backward(loss);
    train::accumulate_taylor(layers, scores);
  }
  return scores;
}

int run_prune(const PruneArgs& args) {
  if (!(args.sparsity >= 0 && args.sparsity < 1))
    throw InputError("--sparsity " + number_text(args.sparsity) +
                     ": expected a fraction in [0, 1) (the share of weights or units removed)");
  train::JobSpec job = train::load_job(args.job, args.sets);
  train::apply_threads(job);
  train::PruneSpec& spec = job.prune;
  spec.enabled = true;
  spec.sparsity = args.sparsity;
  if (!args.structures.empty()) {
    spec.structures.clear();
    for (const std::string& s : args.structures) {
      bool known = false;
      for (auto v : {train::PruneStructure::weights, train::PruneStructure::neurons, train::PruneStructure::channels,
                     train::PruneStructure::heads, train::PruneStructure::mlp})
        if (s == train::prune_structure_name(v)) spec.structures.push_back(v), known = true;
      if (!known) throw InputError("--structure " + s + ": expected weights, neurons, channels, heads or mlp");
    }
    if (spec.structures.size() > 1)
      for (auto v : spec.structures)
        if (v == train::PruneStructure::weights)
          throw InputError("--structure weights (unstructured) does not combine with structured pruning");
  }
  if (!args.score.empty()) spec.score = args.score == "taylor" ? train::PruneScore::taylor : train::PruneScore::magnitude;
  if (!args.scope.empty()) spec.global = args.scope == "global";
  if (!args.layers.empty()) spec.layers = args.layers;
  if (!args.exclude.empty()) spec.exclude = args.exclude;

  train::PreparedData data = train::prepare_data(job, "runs/cache");
  io::SafetensorsFile file = io::read_safetensors(args.weights);
  std::shared_ptr<nn::Module> model = train::load_model(job, data, args.weights);
  const std::vector<train::PruneLayer> layers = train::find_prune_layers(*model, job.model, spec, args.job);
  train::PruneMasks masks = train::full_masks(layers);
  const auto scores = spec.score == train::PruneScore::taylor ? taylor_scores(*model, job, data, layers, args.batches)
                                                              : train::magnitude_scores(layers);
  train::choose_pruned(layers, scores, spec.sparsity, spec.global, masks);
  train::apply_masks(layers, masks);

  const fs::path out = args.out.empty() ? fs::path(args.weights).parent_path() / "pruned" : fs::path(args.out);
  fs::create_directories(out);
  const bool structured = layers.front().structure != train::PruneStructure::weights;
  nn::NamedTensors tensors = model->state_dict();
  train::ModelSpec model_spec = job.model;
  if (structured) {
    train::CompactModel compact = train::compact_model(tensors, job.model, layers, masks);
    tensors = std::move(compact.tensors);
    model_spec = compact.model;
  }
  const std::string weights_path = (out / "model.safetensors").string();
  io::write_safetensors(weights_path, tensors, file.metadata);
  std::ofstream(out / "model.toml") << train::compact_job_toml(job, model_spec);

  for (size_t l = 0; l < layers.size(); ++l)
    std::printf("  %-28s %-8s kept %lld of %lld\n", layers[l].name.c_str(),
                train::prune_structure_name(layers[l].structure), (long long)train::kept_count(masks[l]),
                (long long)layers[l].units);
  int64_t params_after = 0, nonzero_after = 0;
  for (const auto& [name, t] : tensors) {
    params_after += t.numel();
    if (t.dtype() == DType::f32) {
      const float* v = t.contiguous().data<float>();
      for (int64_t i = 0; i < t.numel(); ++i) nonzero_after += v[i] != 0.0f;
    }
  }
  std::printf("prune: %s\n", train::prune_line(layers, masks, spec).c_str());
  std::printf("parameters: %lld before, %lld after (%lld nonzero); file %s -> %s\n", (long long)model->num_parameters(),
              (long long)params_after, (long long)nonzero_after, bytes_text(int64_t(fs::file_size(args.weights))).c_str(),
              bytes_text(int64_t(fs::file_size(weights_path))).c_str());
  std::printf("wrote %s and %s (frugal eval %s --weights %s)\n", weights_path.c_str(), (out / "model.toml").string().c_str(),
              (out / "model.toml").string().c_str(), weights_path.c_str());
  return 0;
}

}  // namespace

Command add_prune_command(CLI::App& app) {
  auto args = std::make_shared<PruneArgs>();
  CLI::App* cmd = app.add_subcommand(
      "prune", "Prune a trained model at once: zero its smallest weights, or remove neurons / channels / heads and "
               "write the smaller model with its job file");
  cmd->add_option("job", args->job, "Job file (TOML) of the model")->required();
  cmd->add_option("--weights", args->weights, "Trained weights (safetensors)")->required();
  cmd->add_option("--sparsity", args->sparsity, "Fraction removed, in [0, 1): of the weights, or of the units")->required();
  cmd->add_option("--structure", args->structures,
                  "weights (unstructured, default), neurons, channels, heads, mlp (repeatable for several)");
  cmd->add_option("--score", args->score, "magnitude (default) or taylor (gradients of --batches training batches)")
      ->check(CLI::IsMember({"magnitude", "taylor"}));
  cmd->add_option("--scope", args->scope, "global (one ranking, default) or layer (each layer the same fraction)")
      ->check(CLI::IsMember({"global", "layer"}));
  cmd->add_option("--layers", args->layers, "Glob patterns of the weights to prune (default: all but the output layer)");
  cmd->add_option("--exclude", args->exclude, "Glob patterns of weights left alone");
  cmd->add_option("--batches", args->batches, "Training batches whose gradients give the taylor scores")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_option("--out", args->out, "Directory for model.safetensors and model.toml (default: pruned/ beside --weights)");
  cmd->add_option("--set", args->sets, "Override a job key (repeatable)");
  return {cmd, [args] { return run_prune(*args); }};
}

}  // namespace frugal::cli
