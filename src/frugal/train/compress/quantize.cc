// Post-training int8 quantization and the quantized model file (see quantize.h).
#include "frugal/train/compress/quantize.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/precision.h"
#include "frugal/base/error.h"
#include "frugal/data/loader.h"
#include "frugal/nn/layers.h"
#include "frugal/train/model_setup.h"

namespace frugal::train {

using json = nlohmann::json;

std::string Calibration::name() const {
  if (!percentile) return "minmax";
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, "percentile:%g", p);
  return buffer;
}

Calibration parse_calibration(const std::string& text) {
  Calibration c;
  if (text == "minmax") return c;
  const std::string prefix = "percentile";
  if (text.rfind(prefix, 0) != 0)
    throw InputError("--calibration '" + text + "': expected minmax, percentile or percentile:P (0 < P <= 100)");
  c.percentile = true;
  c.p = 99.99;
  if (text.size() == prefix.size()) return c;
  const std::string value = text.substr(prefix.size() + 1);
  size_t used = 0;
  double p = NAN;
  try {
    p = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text[prefix.size()] != ':' || used != value.size() || !(p > 0 && p <= 100))
    throw InputError("--calibration '" + text + "': the percentile must be a number in (0, 100], as percentile:99.9");
  c.p = p;
  return c;
}

namespace {

// Runs the first `samples` training samples (sequences of the context's length for a GPT) through
// the model in eval mode, f32, in order.
void run_calibration(nn::Module& model, const JobSpec& job, const PreparedData& data, int64_t samples) {
  autograd::NoGradGuard no_grad;
  PrecisionGuard precision(Precision::fp32);
  const bool was_training = model.is_training();
  model.eval();
  if (data.is_text) {
    const int64_t context = job.model.gpt.context;
    Tensor tokens = data.train_tokens;
    if (tokens.numel() > samples * context + 1) tokens = tokens.slice_view(0, 0, samples * context + 1);
    for (auto& [x, y] : data::sequential_windows(tokens, std::min<int64_t>(samples, 32), context)) model(x);
  } else {
    const int64_t n = std::min(samples, data.train_size());
    for (int64_t begin = 0; begin < n; begin += 256) {
      if (!data.train_packed) {
        model(data.train.inputs.slice_view(0, begin, std::min(n, begin + 256)));
        continue;
      }
      std::vector<int64_t> rows;  // packed data: the same first rows, decoded
      for (int64_t i = begin; i < std::min(n, begin + 256); ++i) rows.push_back(i);
      model(data.train_rows(rows).inputs);
    }
  }
  model.train(was_training);
}

}  // namespace

QuantizedModel quantize_with_ranges(nn::Module& model, const std::vector<double>& ranges,
                                    const std::vector<bool>& unsigned_inputs, const std::string& calibration,
                                    int64_t samples) {
  auto layers = nn::quantizable_layers(model);
  FRUGAL_CHECK(layers.size() == ranges.size() && ranges.size() == unsigned_inputs.size(), "one range per layer");
  nn::remove_hooks(model);
  QuantizedModel out;
  std::map<std::string, nn::FoldedConv> folded;
  for (nn::FoldedConv& f : nn::fold_batch_norms(model)) {
    out.folded_batch_norms.push_back(f.batch_norm);
    folded.emplace(f.conv, std::move(f));
  }
  std::set<std::string> skipped;  // state-dict keys a quantized layer or a folded BatchNorm replaces
  std::map<std::string, std::vector<std::pair<std::string, Tensor>>> groups;  // by "<layer>.weight"
  json layer_inputs = json::object();
  bool any_dynamic = false, any_static = false;
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& [name, module] = layers[i];
    Tensor weight, bias;
    if (auto it = folded.find(name); it != folded.end()) {
      weight = it->second.weight, bias = it->second.bias;
    } else if (auto* linear = dynamic_cast<nn::Linear*>(module)) {
      weight = linear->weight(), bias = linear->bias();
    } else {
      auto* conv = static_cast<nn::Conv2d*>(module);
      weight = conv->weight(), bias = conv->bias();
    }
    nn::QuantizedWeight q = nn::quantize_per_channel(weight);
    auto& group = groups[name + ".weight"];
    group.emplace_back(name + ".weight", q.values);
    group.emplace_back(name + ".weight_scale", q.scale);
    if (bias.defined()) group.emplace_back(name + ".bias", bias.detach().to(DType::f32).contiguous());
    QuantizedLayerInfo info{name, "dynamic", ranges[i]};
    if (ranges[i] >= 0) {
      const bool u8 = unsigned_inputs[i] && dynamic_cast<nn::Conv2d*>(module);
      const double range = ranges[i] > 0 ? ranges[i] : 1.0;
      group.emplace_back(name + ".input_scale", Tensor::full({1}, range / (u8 ? 255.0 : 127.0)));
      info.input = u8 ? "u8" : "s8";
      any_static = true;
    } else {
      info.range = 0;
      any_dynamic = true;
    }
    layer_inputs[name] = info.input;
    out.layers.push_back(info);
    skipped.insert(name + ".weight");
    skipped.insert(name + ".bias");
  }
  if (layers.empty())
    throw InputError("the model has no Linear or Conv2d layer to quantize (a Conv2d needs at least 4 input channels)");
  for (const auto& named : model.state_dict()) {
    const std::string& key = named.first;  // a plain reference: clang 14 cannot capture a structured binding
    const Tensor& tensor = named.second;
    if (auto it = groups.find(key); it != groups.end()) {
      for (auto& entry : it->second) out.tensors.push_back(entry);
      continue;
    }
    if (skipped.count(key)) continue;
    const bool of_folded = std::any_of(out.folded_batch_norms.begin(), out.folded_batch_norms.end(),
                                       [&](const std::string& bn) { return key.rfind(bn + ".", 0) == 0; });
    if (!of_folded) out.tensors.emplace_back(key, tensor.detach().contiguous());
  }
  json meta = {{"format", 1},
               {"scheme", "int8 symmetric; weights per output channel (absmax / 127); inputs per tensor "
                          "(static, calibrated) or per row (dynamic)"},
               {"activations", any_dynamic && any_static ? "mixed" : any_dynamic ? "dynamic" : "static"},
               {"calibration", calibration},
               {"samples", samples},
               {"layers", layer_inputs},
               {"folded_batch_norms", out.folded_batch_norms}};
  out.metadata[kQuantizationKey] = meta.dump();
  return out;
}

QuantizedModel quantize_model(nn::Module& model, const JobSpec& job, const PreparedData& data,
                              const QuantizeOptions& options) {
  auto layers = nn::quantizable_layers(model);
  if (layers.empty())
    throw InputError(job.path +
                     ": the model has no Linear or Conv2d layer to quantize (a Conv2d needs at least 4 input channels)");
  if (options.samples < 1) throw InputError("--samples must be at least 1");
  const std::string activations =
      !options.activations.empty() ? options.activations : data.is_text ? "dynamic" : "static";
  if (activations != "static" && activations != "dynamic")
    throw InputError("--activations '" + options.activations + "': expected static or dynamic");
  std::vector<double> ranges(layers.size(), -1.0);
  std::vector<bool> unsigned_inputs(layers.size(), false);
  int64_t samples = 0;
  if (activations == "static" || std::any_of(layers.begin(), layers.end(), [](const auto& l) {
        return dynamic_cast<nn::Conv2d*>(l.second) != nullptr;  // a convolution's input is always static
      })) {
    auto observers = nn::observe_inputs(model);
    run_calibration(model, job, data, options.samples);
    nn::remove_hooks(model);
    samples = data.is_text ? options.samples : std::min(options.samples, data.train_size());
    for (size_t i = 0; i < layers.size(); ++i) {
      if (activations == "dynamic" && !dynamic_cast<nn::Conv2d*>(layers[i].second)) continue;
      const nn::RangeObserver& o = *observers[i];
      ranges[i] = options.calibration.percentile ? o.abs_percentile(options.calibration.p) : o.abs_max();
      unsigned_inputs[i] = o.min() >= 0;
    }
  }
  return quantize_with_ranges(model, ranges, unsigned_inputs,
                              activations == "dynamic" && samples == 0 ? "none (dynamic)" : options.calibration.name(),
                              samples);
}

bool is_quantized(const io::SafetensorsFile& file) { return file.metadata.count(kQuantizationKey) > 0; }

std::shared_ptr<nn::Module> load_quantized_model(const JobSpec& job, const PreparedData& data,
                                                 const io::SafetensorsFile& file, const std::string& path) {
  json meta;
  try {
    meta = json::parse(file.metadata.at(kQuantizationKey));
    if (!meta.at("layers").is_object() || !meta.at("folded_batch_norms").is_array()) throw std::runtime_error("");
  } catch (const std::exception&) {
    throw InputError(path + ": metadata " + kQuantizationKey +
                     ": expected a JSON object with `layers` (an object) and `folded_batch_norms` (an array)");
  }
  std::shared_ptr<nn::Module> model = build_model(job, data);
  auto layers = nn::quantizable_layers(*model);
  std::map<std::string, std::string> inputs;
  for (auto& [name, value] : meta["layers"].items()) {
    if (!value.is_string() || (value != "s8" && value != "u8" && value != "dynamic"))
      throw InputError(path + ": metadata " + kQuantizationKey + ": layer " + name + ": expected s8, u8 or dynamic");
    inputs[name] = value.get<std::string>();
  }
  std::set<std::string> model_layers;
  for (const auto& [name, module] : layers) {
    model_layers.insert(name);
    if (!inputs.count(name))
      throw InputError(path + ": the job's model has a layer " + name +
                       " that the quantized file does not hold (was it quantized from another model?)");
  }
  for (const auto& [name, input] : inputs)
    if (!model_layers.count(name))
      throw InputError(path + ": the quantized file holds a layer " + name + " that the job's model does not have");
  std::vector<std::string> folded = meta["folded_batch_norms"].get<std::vector<std::string>>();
  auto is_layer_tensor = [&](const std::string& key) {
    const size_t dot = key.rfind('.');
    if (dot == std::string::npos || !inputs.count(key.substr(0, dot))) return false;
    const std::string leaf = key.substr(dot + 1);
    return leaf == "weight" || leaf == "weight_scale" || leaf == "bias" || leaf == "input_scale";
  };
  auto of_folded = [&](const std::string& key) {
    return std::any_of(folded.begin(), folded.end(), [&](const std::string& bn) { return key.rfind(bn + ".", 0) == 0; });
  };
  // Every other tensor of the model must come from the file (and nothing else may be there).
  std::map<std::string, Tensor> state;
  for (const auto& [key, tensor] : model->state_dict()) state[key] = tensor;
  for (const auto& [key, tensor] : file.tensors) {
    if (is_layer_tensor(key)) continue;
    if (!state.count(key) || of_folded(key))
      throw InputError(path + ": tensor " + key + " is not part of the job's model");
    state[key] = tensor;
  }
  for (const auto& [key, tensor] : model->state_dict())
    if (!is_layer_tensor(key) && !of_folded(key) && !file.tensors.count(key))
      throw InputError(path + ": tensor " + key + " of the job's model is missing");
  try {
    model->load_state_dict(state, /*strict=*/true);
  } catch (const InputError& e) {
    throw InputError(path + ": " + e.what());
  }
  for (auto& [name, module] : model->named_modules()) {
    if (std::find(folded.begin(), folded.end(), name) == folded.end()) continue;
    auto* bn = dynamic_cast<nn::BatchNorm*>(module);
    if (!bn) throw InputError(path + ": folded_batch_norms names " + name + ", which is not a BatchNorm of the job's model");
    nn::make_identity(*bn);
  }
  auto tensor = [&](const std::string& key, bool required) {
    auto it = file.tensors.find(key);
    if (it == file.tensors.end()) {
      if (required) throw InputError(path + ": tensor " + key + " is missing");
      return Tensor();
    }
    return it->second;
  };
  for (const auto& [name, module] : layers) {
    nn::QuantizedLayer q;
    q.weight.values = tensor(name + ".weight", true);
    q.weight.scale = tensor(name + ".weight_scale", true);
    q.bias = tensor(name + ".bias", false);
    const std::string& input = inputs[name];
    if (input != "dynamic") q.input_scale = tensor(name + ".input_scale", true);
    q.input_unsigned = input == "u8";
    if (auto* linear = dynamic_cast<nn::Linear*>(module)) nn::set_int8(*linear, q, path + ": " + name);
    else nn::set_int8(*static_cast<nn::Conv2d*>(module), q, path + ": " + name);
  }
  model->eval();
  return model;
}

}  // namespace frugal::train
