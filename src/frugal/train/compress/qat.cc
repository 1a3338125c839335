// Quantization-aware training (qat.h): the fake-quantizing hook, its observers and the export.
#include "frugal/train/compress/qat.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "frugal/autograd/autograd.h"
#include "frugal/autograd/fake_quantize.h"
#include "frugal/autograd/ops.h"
#include "frugal/base/error.h"
#include "frugal/nn/layers.h"
#include "frugal/nn/quantized.h"
#include "frugal/train/compress/quantize.h"

namespace frugal::train {

struct QuantizationAware::Shared {
  bool active = false;        // step >= start_step
  bool ema = true;
  double decay = 0.99;
  bool static_inputs = true;  // inputs of Linear layers fake-quantized (static activations)
  std::vector<InputRange> ranges;
};

namespace {

// Per-output-channel scales of a weight (out, ...): max |w[o]| / 127, 1 for a zero channel.
Tensor weight_scales(const Tensor& weight) {
  Tensor w = weight.detach().contiguous();
  const int64_t out = w.size(0), per = w.numel() / out;
  Tensor scale = Tensor::empty({out}, DType::f32);
  const float* v = w.data<float>();
  float* s = scale.data<float>();
  for (int64_t o = 0; o < out; ++o) {
    float m = 0;
    for (int64_t i = 0; i < per; ++i) m = std::max(m, std::abs(v[o * per + i]));
    s[o] = m > 0 ? m / 127.0f : 1.0f;
  }
  return scale;
}

class FakeQuantHook : public nn::LayerHook {
 public:
  FakeQuantHook(nn::Module* layer, std::shared_ptr<QuantizationAware::Shared> shared, size_t index)
      : layer_(layer), shared_(std::move(shared)), index_(index) {}

  Tensor forward(const Tensor& x_in, bool relu) override {
    // The fake-quantized operands are read by the product's backward: computed in full even in a
    // recomputed block's re-run, where the layer's own output may go unwritten (UnreadOutputs).
    autograd::ReadOutputs read_outputs;
    auto* linear = dynamic_cast<nn::Linear*>(layer_);
    auto* conv = linear ? nullptr : static_cast<nn::Conv2d*>(layer_);
    const Tensor& weight = linear ? linear->weight() : conv->weight();
    const Tensor& bias = linear ? linear->bias() : conv->bias();
    Tensor x = x_in, w = weight;
    if (shared_->active && x.dtype() == DType::f32) {
      const bool quantize_input = conv || shared_->static_inputs;
      if (quantize_input) {
        InputRange& r = shared_->ranges[index_];
        if (layer_->is_training()) observe(x, r);
        if (r.batches > 0 && r.range > 0) {
          const bool u8 = conv && r.min >= 0;
          x = fake_quantize(x, Tensor::full({1}, r.range / (u8 ? 255.0 : 127.0)), u8 ? 0 : -127, u8 ? 255 : 127);
        }
      }
      w = fake_quantize(weight, weight_scales(weight), -127, 127);
    }
    if (linear) return relu ? linear_relu(x, w, bias) : frugal::linear(x, w, bias);
    Tensor y = conv2d(x, w, bias, conv->options());
    return relu ? frugal::relu(y) : y;
  }

 private:
  void observe(const Tensor& x_in, InputRange& r) const {
    Tensor x = x_in.detach().contiguous();
    const float* v = x.data<float>();
    double m = 0, low = r.batches ? r.min : 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      m = std::max(m, double(std::abs(v[i])));
      low = std::min(low, double(v[i]));
    }
    r.min = low;
    if (r.batches == 0 || !shared_->ema) r.range = r.batches == 0 ? m : std::max(r.range, m);
    else r.range = shared_->decay * r.range + (1 - shared_->decay) * m;
    ++r.batches;
  }

  nn::Module* layer_;
  std::shared_ptr<QuantizationAware::Shared> shared_;
  size_t index_;
};

}  // namespace

QuantizationAware::QuantizationAware(const QuantizeSpec& spec, nn::Module& model, bool text_model,
                                     const std::string& job_path)
    : spec_(spec), shared_(std::make_shared<Shared>()) {
  auto layers = nn::quantizable_layers(model);
  if (layers.empty()) throw InputError(job_path + ": [quantize] aware: the model has no Linear or Conv2d layer");
  shared_->ema = spec.observer == "ema";
  shared_->decay = spec.ema_decay;
  shared_->static_inputs = spec.activations.empty() ? !text_model : spec.activations == "static";
  shared_->ranges.resize(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    auto hook = std::make_shared<FakeQuantHook>(layers[i].second, shared_, i);
    if (auto* linear = dynamic_cast<nn::Linear*>(layers[i].second)) linear->set_hook(hook);
    else static_cast<nn::Conv2d*>(layers[i].second)->set_hook(hook);
  }
}

const std::vector<InputRange>& QuantizationAware::ranges() const { return shared_->ranges; }

void QuantizationAware::on(Event event, TrainState& state) {
  if (event == Event::batch_loaded) {
    shared_->active = state.step >= spec_.start_step;
    return;
  }
  // fit_end: the quantized file from the learned ranges. Folding changes the model's BatchNorms, so
  // the model's state is put back afterwards (the final evaluation and model.safetensors follow).
  shared_->active = true;  // the final evaluation runs fake-quantized, as the int8 model will
  nn::NamedTensors saved;
  for (const auto& [name, tensor] : state.model.state_dict()) saved.emplace_back(name, tensor.clone());
  auto layers = nn::quantizable_layers(state.model);
  std::vector<double> ranges;
  std::vector<bool> unsigned_inputs;
  for (size_t i = 0; i < layers.size(); ++i) {
    const InputRange& r = shared_->ranges[i];
    const bool is_conv = dynamic_cast<nn::Conv2d*>(layers[i].second) != nullptr;
    // Never observed (start_step after the run's end): the range stays unknown; dynamic for a Linear.
    ranges.push_back(r.batches > 0 && (is_conv || shared_->static_inputs) ? r.range : is_conv ? 1.0 : -1.0);
    unsigned_inputs.push_back(r.min >= 0);
  }
  QuantizedModel q = quantize_with_ranges(state.model, ranges, unsigned_inputs,
                                          "qat:" + spec_.observer, state.samples_seen);
  state.model.load_state_dict(saved, /*strict=*/true);
  for (auto& [name, module] : state.model.named_modules())  // the BatchNorms compute again
    if (auto* bn = dynamic_cast<nn::BatchNorm*>(module)) bn->set_folded(false);
  // quantize_with_ranges took the hooks off: put them back for the final evaluation
  for (size_t i = 0; i < layers.size(); ++i) {
    auto hook = std::make_shared<FakeQuantHook>(layers[i].second, shared_, i);
    if (auto* linear = dynamic_cast<nn::Linear*>(layers[i].second)) linear->set_hook(hook);
    else static_cast<nn::Conv2d*>(layers[i].second)->set_hook(hook);
  }
  q.metadata["frugal.model"] = name_of(state.job.model.kind);
  q.metadata["frugal.job_hash"] = state.job.hash;
  if (state.data.is_text) q.metadata["frugal.vocab"] = state.data.vocab.to_string();
  if (!state.data.label_names.empty()) q.metadata["frugal.labels"] = nlohmann::json(state.data.label_names).dump();
  const std::string path = (std::filesystem::path(state.out_dir) / "model.int8.safetensors").string();
  io::write_safetensors(path, q.tensors, q.metadata);
  state.progress.line("quantize: wrote " + path + " (int8, ranges learned by " + spec_.observer + " observers)");
}

void QuantizationAware::save_state(TechniqueState& out) const {
  for (size_t i = 0; i < shared_->ranges.size(); ++i) {
    const InputRange& r = shared_->ranges[i];
    out.put("range." + std::to_string(i), r.range);
    out.put("min." + std::to_string(i), r.min);
    out.put("batches." + std::to_string(i), r.batches);
  }
}

void QuantizationAware::load_state(const TechniqueState& in) {
  if (in.empty()) return;  // a checkpoint from before [quantize]: nothing observed yet
  for (size_t i = 0; i < shared_->ranges.size(); ++i) {
    InputRange& r = shared_->ranges[i];
    r.range = in.real("range." + std::to_string(i));
    r.min = in.real("min." + std::to_string(i));
    r.batches = in.integer("batches." + std::to_string(i));
  }
}

}  // namespace frugal::train
