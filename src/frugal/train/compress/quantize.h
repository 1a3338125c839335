// Post-training int8 quantization of a job's model (`frugal quantize`) and the quantized model
// file: safetensors with int8 weights, f32 scales and metadata frugal.quantization (README,
// "Quantized model file"); loading such a file into the job's model for eval and sample.
// Limits: Linear and Conv2d layers only (embeddings, norms and a GPT's tied head stay f32); the
// calibration reads the first `samples` training samples (sequences for a GPT) in order.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "frugal/io/safetensors.h"
#include "frugal/nn/module.h"
#include "frugal/nn/quantized.h"
#include "frugal/train/data_setup.h"
#include "frugal/train/job.h"

namespace frugal::train {

// "minmax", "percentile" (99.99) or "percentile:P" with 0 < P <= 100.
struct Calibration {
  bool percentile = false;
  double p = 100;
  std::string name() const;  // "minmax" or "percentile:P"
};
Calibration parse_calibration(const std::string& text);  // InputError for anything else

struct QuantizeOptions {
  Calibration calibration;
  int64_t samples = 256;
  // "static" (calibrated per-tensor input scales), "dynamic" (per row at run time, Linear only),
  // "" = the default: dynamic for a GPT (LayerNorm outputs have outlier channels), else static.
  std::string activations;
};

// The observed input ranges per layer (what calibration saw), for the report.
struct QuantizedLayerInfo {
  std::string name, input;  // input: "s8", "u8" or "dynamic"
  double range = 0;         // the calibrated range (|x| <= range maps to the int8 grid); 0 dynamic
};

struct QuantizedModel {
  std::vector<std::pair<std::string, Tensor>> tensors;  // the file's tensors, in model order
  std::map<std::string, std::string> metadata;
  std::vector<QuantizedLayerInfo> layers;
  std::vector<std::string> folded_batch_norms;
};

// Folds, calibrates and quantizes `model` (loaded with its float weights; changed: BatchNorms
// folded, hooks removed at the end). InputError when the model has no Linear or Conv2d layer.
QuantizedModel quantize_model(nn::Module& model, const JobSpec& job, const PreparedData& data,
                              const QuantizeOptions& options);

// The per-layer ranges, given (QAT's learned ranges: a range per layer in quantizable order, 0 for
// dynamic) instead of calibrated: BatchNorms folded, weights quantized. `calibration` names them
// in the metadata.
QuantizedModel quantize_with_ranges(nn::Module& model, const std::vector<double>& ranges,
                                    const std::vector<bool>& unsigned_inputs, const std::string& calibration,
                                    int64_t samples);

// The metadata key that marks a quantized file.
inline constexpr const char* kQuantizationKey = "frugal.quantization";
bool is_quantized(const io::SafetensorsFile& file);

// The job's model with the file's int8 layers hooked in and its other tensors loaded; InputError
// naming the file when it does not match the job's model (a layer, shape or scale count).
std::shared_ptr<nn::Module> load_quantized_model(const JobSpec& job, const PreparedData& data,
                                                 const io::SafetensorsFile& file, const std::string& path);

}  // namespace frugal::train
