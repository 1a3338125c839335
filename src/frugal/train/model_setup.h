// The job's [model] completed from the data (input shape, classes, vocabulary) into the one typed
// config the model is built from, once per run, with the blocks recomputed in backward ([memory])
// and the model's forward FLOPs per sample. Limits: a custom model (given by code) has no plan
// beyond its kind; its FLOPs are whatever the caller states.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <variant>
#include <vector>

#include "frugal/nn/module.h"
#include "frugal/nn/zoo.h"
#include "frugal/train/data_setup.h"
#include "frugal/train/job.h"

namespace frugal::train {

struct ModelPlan {
  ModelKind kind = ModelKind::mlp;
  std::variant<std::monostate, nn::MlpConfig, nn::CnnConfig, nn::GptConfig> config;  // monostate: custom
  // [memory]: the blocks build_model recomputes, chosen from the activation estimate of one
  // micro-batch (train.batch_size samples): "blocks" those that lower the estimated peak (all of
  // them on a GPT; none on a CNN whose largest block is its last), "auto" the fewest that fit.
  RecomputeMode recompute = RecomputeMode::none;
  std::vector<int64_t> recompute_blocks;
  int64_t block_count = 0;
  int64_t estimated_activation_bytes = 0;  // nn::ActivationEstimate::peak_bytes(blocks); 0 for an mlp
  int64_t plain_activation_bytes = 0;      // the estimate with no block recomputed
  int64_t all_blocks_activation_bytes = 0;  // the estimate with every block recomputed
  bool fits = true;                        // auto: the estimate is within max_activation_bytes
  std::optional<int64_t> flops_per_sample;  // nn::count_flops_per_sample; unknown for custom models
};

// InputError when the data does not fit the model (a cnn on samples that are not images).
ModelPlan plan_model(const JobSpec& job, const PreparedData& data);

// The planned model, initialized from `seed`. A custom plan has no model to build (InputError).
std::shared_ptr<nn::Module> build_model(const ModelPlan& plan, uint64_t seed);
std::shared_ptr<nn::Module> build_model(const JobSpec& job, const PreparedData& data);

// Loads weights saved by frugal (or PyTorch, with the same names) into the job's model: a [lora]
// run's merged model as a plain one; a file holding adapters into the model with [lora]'s adapters.
// int8-mixed: the names of the weights whose linear products stay bf16-mixed: those [precision]
// int8_exclude names (each pattern must match some Linear weight, else InputError naming the
// model's), or by default the output layer's (the last Linear's weight; a GPT's tied head,
// `wte.weight`), as SwitchBack keeps the final projection in high precision. Empty in other modes.
std::vector<std::string> int8_excluded_weights(const JobSpec& job, nn::Module& model);

// Sets the int8-mixed exclusions of `model` (autograd/precision.h) for this scope, and back after.
class Int8ExclusionScope {
 public:
  Int8ExclusionScope(const JobSpec& job, nn::Module& model);
  ~Int8ExclusionScope();
  Int8ExclusionScope(const Int8ExclusionScope&) = delete;
  Int8ExclusionScope& operator=(const Int8ExclusionScope&) = delete;
  const std::vector<std::string>& names() const { return names_; }

 private:
  std::vector<std::string> names_;
  std::vector<const void*> previous_;
};

std::shared_ptr<nn::Module> load_model(const JobSpec& job, const PreparedData& data, const std::string& weights);

}  // namespace frugal::train
