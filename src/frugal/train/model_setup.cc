// The job's model config completed from the data, built and loaded (see model_setup.h).
#include "frugal/train/model_setup.h"

#include <algorithm>

#include "frugal/autograd/precision.h"
#include "frugal/base/error.h"
#include "frugal/base/glob.h"
#include "frugal/nn/layers.h"
#include "frugal/io/safetensors.h"
#include "frugal/train/compress/lora.h"
#include "frugal/train/limits.h"

namespace frugal::train {

namespace {

void plan_recompute(const JobSpec& job, const nn::ActivationEstimate& estimate, ModelPlan& plan) {
  plan.block_count = int64_t(estimate.block_bytes.size());
  std::vector<int64_t> all;
  for (int64_t i = 0; i < plan.block_count; ++i) all.push_back(i);
  plan.plain_activation_bytes = estimate.peak_bytes({});
  plan.all_blocks_activation_bytes = estimate.peak_bytes(all);
  if (job.memory.recompute == RecomputeMode::blocks) {
    plan.recompute_blocks = nn::lowest_peak_blocks(estimate);
  } else if (job.memory.recompute == RecomputeMode::automatic) {
    plan.recompute_blocks = nn::choose_recompute_blocks(estimate, job.memory.max_activation_bytes, &plan.fits);
  }
  plan.estimated_activation_bytes = estimate.peak_bytes(plan.recompute_blocks);
}

}  // namespace

ModelPlan plan_model(const JobSpec& job, const PreparedData& data) {
  ModelPlan plan;
  plan.kind = job.model.kind;
  plan.recompute = job.memory.recompute;
  const bool bf16 = bf16_operands(job.precision.mode);
  switch (job.model.kind) {
    case ModelKind::mlp: {
      nn::MlpConfig config = job.model.mlp;
      config.inputs = shape_numel(data.sample_shape);
      config.outputs = data.classes;
      plan.flops_per_sample = nn::count_flops_per_sample(config);
      plan.config = config;
      break;
    }
    case ModelKind::cnn: {
      if (data.sample_shape.size() != 3)
        throw InputError(job.path + ": [model] kind = \"cnn\" needs image inputs (C, H, W), got samples of shape " +
                         shape_str(data.sample_shape));
      nn::CnnConfig config = job.model.cnn;
      config.in_channels = data.sample_shape[0];
      config.height = data.sample_shape[1];
      config.width = data.sample_shape[2];
      config.outputs = data.classes;
      plan.flops_per_sample = nn::count_flops_per_sample(config);
      plan_recompute(job, nn::estimate_activation_bytes(config, job.train.batch_size, bf16), plan);
      config.recompute_blocks = plan.recompute_blocks;
      plan.config = config;
      break;
    }
    case ModelKind::gpt: {
      nn::GptConfig config = job.model.gpt;
      config.vocab = data.vocab.size();
      plan.flops_per_sample = nn::count_flops_per_sample(config);
      plan_recompute(job, nn::estimate_activation_bytes(config, job.train.batch_size, bf16), plan);
      config.recompute_blocks = plan.recompute_blocks;
      plan.config = config;
      break;
    }
    case ModelKind::custom:
      break;
  }
  return plan;
}

std::shared_ptr<nn::Module> build_model(const ModelPlan& plan, uint64_t seed) {
  if (const auto* mlp = std::get_if<nn::MlpConfig>(&plan.config)) return nn::make_mlp(*mlp, seed);
  if (const auto* cnn = std::get_if<nn::CnnConfig>(&plan.config)) return nn::make_cnn(*cnn, seed);
  if (const auto* gpt = std::get_if<nn::GptConfig>(&plan.config)) return nn::make_gpt(*gpt, seed);
  throw InputError("[model] kind = \"custom\": the model is given by code (C++: Trainer::set_model); "
                   "frugal train, eval and sample build only mlp, cnn and gpt");
}

std::shared_ptr<nn::Module> build_model(const JobSpec& job, const PreparedData& data) {
  try {
    ModelPlan plan = plan_model(job, data);
    check_model_memory(job, plan, /*training=*/false);
    return build_model(plan, job.run.seed);
  } catch (const InputError& e) {
    if (job.model.kind == ModelKind::custom) throw InputError(job.path + ": " + e.what());
    throw;
  }
}

std::shared_ptr<nn::Module> load_model(const JobSpec& job, const PreparedData& data, const std::string& weights) {
  std::shared_ptr<nn::Module> model = build_model(job, data);
  io::SafetensorsFile file = io::read_safetensors(weights);
  io::check_finite_weights(file, weights);
  // A [lora] run saves its model merged (plain), which loads as is; a file with adapters (an adapted
  // model) loads into the job's model with its [lora] adapters added.
  if (job.lora.enabled && holds_adapters(file)) add_adapters(*model, job.lora, job.run.seed, job.path);
  try {
    model->load_state_dict(file.tensors, /*strict=*/true);
  } catch (const InputError& e) {
    throw InputError(weights + ": " + e.what());
  }
  return model;
}

std::vector<std::string> int8_excluded_weights(const JobSpec& job, nn::Module& model) {
  if (job.precision.mode != Precision::int8_mixed) return {};
  // The weights linear() multiplies: each Linear's, and a GPT's tied head (the embedding's).
  std::vector<std::string> linear_weights;
  for (auto& [name, module] : model.named_modules())
    if (dynamic_cast<nn::Linear*>(module)) linear_weights.push_back(name.empty() ? "weight" : name + ".weight");
  const bool tied_head = job.model.kind == ModelKind::gpt && job.model.gpt.tied_embeddings;
  if (tied_head) linear_weights.push_back("wte.weight");
  if (!job.precision.int8_exclude) {
    if (linear_weights.empty()) return {};
    return {linear_weights.back()};  // the output layer: the last Linear, or the tied head
  }
  std::vector<std::string> names;
  for (const std::string& pattern : *job.precision.int8_exclude) {
    bool matched = false;
    for (const std::string& name : linear_weights)
      if (glob_match(pattern, name)) {
        matched = true;
        if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
      }
    if (!matched) {
      std::string known;
      for (const std::string& name : linear_weights) known += (known.empty() ? "" : ", ") + name;
      throw InputError(job.path + ": [precision] int8_exclude: '" + pattern + "' matches no linear weight (the model's: " +
                       known + ")");
    }
  }
  return names;
}

Int8ExclusionScope::Int8ExclusionScope(const JobSpec& job, nn::Module& model)
    : names_(int8_excluded_weights(job, model)), previous_(frugal::int8_excluded_weights()) {
  std::vector<const void*> data;
  for (const auto& [name, parameter] : model.named_parameters())
    if (std::find(names_.begin(), names_.end(), name) != names_.end()) data.push_back(parameter.data<float>());
  set_int8_excluded_weights(std::move(data));
}

Int8ExclusionScope::~Int8ExclusionScope() { set_int8_excluded_weights(previous_); }

}  // namespace frugal::train
