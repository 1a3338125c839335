// `frugal quantize`: loads the job's model with float weights, folds, calibrates, quantizes and
// writes the quantized file (atomically), printing each layer's input range and the sizes.
// Limits: the calibration reads the job's training split as prepared for training.
#include "frugal/cli/quantize.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "frugal/base/error.h"
#include "frugal/io/safetensors.h"
#include "frugal/train/compress/quantize.h"
#include "frugal/train/data_setup.h"
#include "frugal/train/job.h"
#include "frugal/train/model_setup.h"
#include "frugal/train/limits.h"

namespace frugal::cli {
namespace {

struct QuantizeArgs {
  std::string job, weights, calibration = "minmax", out, activations;
  int64_t samples = 256;
  std::vector<std::string> sets;
};

std::string default_out(const std::string& weights) {
  const std::string suffix = ".safetensors";
  if (weights.size() > suffix.size() && weights.compare(weights.size() - suffix.size(), suffix.size(), suffix) == 0)
    return weights.substr(0, weights.size() - suffix.size()) + ".int8.safetensors";
  return weights + ".int8.safetensors";
}

int64_t file_bytes(const std::vector<std::pair<std::string, Tensor>>& tensors) {
  int64_t bytes = 0;
  for (const auto& [name, t] : tensors) bytes += int64_t(t.nbytes());
  return bytes;
}

int cmd_quantize(const QuantizeArgs& args) {
  train::QuantizeOptions options;
  options.calibration = train::parse_calibration(args.calibration);  // before the data is read
  options.samples = args.samples;
  options.activations = args.activations;
  if (args.samples < 1) throw InputError("--samples " + std::to_string(args.samples) + ": expected at least 1");
  train::JobSpec job = train::load_job(args.job, args.sets);
  train::apply_threads(job);
  train::PreparedData data = train::prepare_data(job, "runs/cache");
  io::SafetensorsFile source = io::read_safetensors(args.weights);
  if (train::is_quantized(source)) throw InputError(args.weights + ": already quantized (metadata frugal.quantization)");
  std::shared_ptr<nn::Module> model = train::load_model(job, data, args.weights);
  const int64_t float_bytes = file_bytes(model->state_dict());
  train::QuantizedModel q = train::quantize_model(*model, job, data, options);
  for (const auto& [key, value] : source.metadata)
    if (key != train::kQuantizationKey) q.metadata.emplace(key, value);
  const std::string out = args.out.empty() ? default_out(args.weights) : args.out;
  io::write_safetensors(out, q.tensors, q.metadata);
  for (const train::QuantizedLayerInfo& layer : q.layers) {
    if (layer.input == "dynamic") std::printf("  %-28s input dynamic (per row)\n", layer.name.c_str());
    else std::printf("  %-28s input %s, range %.4g\n", layer.name.c_str(), layer.input.c_str(), layer.range);
  }
  if (!q.folded_batch_norms.empty()) {
    std::printf("  batch norms folded into the convolution before them:");
    for (const std::string& bn : q.folded_batch_norms) std::printf(" %s", bn.c_str());
    std::printf("\n");
  }
  const bool calibrated = std::any_of(q.layers.begin(), q.layers.end(),
                                      [](const train::QuantizedLayerInfo& l) { return l.input != "dynamic"; });
  const std::string how =
      !calibrated ? "dynamic inputs, no calibration"
                  : options.calibration.name() + " calibration on " +
                        (data.is_text ? std::to_string(options.samples) + " sequences"
                                      : std::to_string(std::min(options.samples, data.train_size())) + " samples");
  std::printf("quantized %zu layers (%s) -> %s: %.1f KiB of tensors (float: %.1f KiB)\n", q.layers.size(), how.c_str(),
              out.c_str(), double(file_bytes(q.tensors)) / 1024, double(float_bytes) / 1024);
  return 0;
}

}  // namespace

Command add_quantize_command(CLI::App& app) {
  auto args = std::make_shared<QuantizeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "quantize",
      "Post-training int8 quantization: BatchNorm folded, weights int8 per output channel, input scales calibrated "
      "on training samples; writes a quantized model file that `frugal eval` and `frugal sample` run");
  cmd->add_option("job", args->job, "Job file (TOML) of the model")->required();
  cmd->add_option("--weights", args->weights, "Float weights (safetensors) saved by frugal train")->required();
  cmd->add_option("--calibration", args->calibration,
                  "Input ranges: minmax (largest |x| seen) or percentile[:P] (P-th percentile of |x|, default 99.99, "
                  "0 < P <= 100)");
  cmd->add_option("--samples", args->samples, "Training samples (GPT: sequences) run for calibration (default 256)");
  cmd->add_option("--activations", args->activations,
                  "static (calibrated per-tensor input scales) or dynamic (per row at run time, Linear layers); "
                  "default: dynamic for a GPT, static otherwise")
      ->check(CLI::IsMember({"static", "dynamic"}));
  cmd->add_option("--out", args->out, "Output file (default: the weights' name with .int8.safetensors)");
  cmd->add_option("--set", args->sets, "Override a job key (repeatable)");
  return {cmd, [args] { return cmd_quantize(*args); }};
}

}  // namespace frugal::cli
