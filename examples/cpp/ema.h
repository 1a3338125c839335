// An exponential moving average of the weights (Polyak averaging), written as a frugal technique
// outside the library: after every optimizer step, shadow = decay * shadow + (1 - decay) * weight.
// When the run ends it evaluates the averaged weights on the test split, adds the figures to the
// summary (under "techniques"."ema") and saves them as ema.safetensors beside the model. Its shadow
// weights travel through checkpoints, so a run killed and resumed ends with the same bytes.
// Limits: f32 parameters; buffers (BatchNorm statistics) are not averaged.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <frugal/io/safetensors.h>
#include <frugal/train/evaluate.h>
#include <frugal/train/technique.h>

class Ema : public frugal::train::Technique {
 public:
  explicit Ema(double decay) : decay_(decay) {}

  std::string name() const override { return "ema"; }
  frugal::train::EventSet events() const override {
    using frugal::train::Event;
    return frugal::train::event_set({Event::run_start, Event::after_optimizer_step, Event::run_end});
  }

  void on(frugal::train::Event event, frugal::train::TrainState& state) override {
    using frugal::train::Event;
    if (event == Event::run_start && shadow_.empty()) {
      // A fresh run starts the average at the initial weights (a resumed one has it from its checkpoint).
      for (auto& [name, weight] : state.model.named_parameters()) shadow_.emplace_back(name, weight.clone());
    } else if (event == Event::after_optimizer_step) {
      update(state.model);
    } else if (event == Event::run_end && (!state.stop || state.stop->exit_code == 0)) {
      finish(state);
    }
  }

  void save_state(frugal::train::TechniqueState& out) const override {
    out.put("decay", decay_);
    for (const auto& [name, t] : shadow_) out.put_tensor(name, t);
  }
  void load_state(const frugal::train::TechniqueState& in) override {
    if (in.empty()) in.fail("missing: the checkpoint was written without the EMA technique");
    if (in.real("decay") != decay_) in.fail("written with another decay (" + in.text("decay") + ")");
    shadow_.clear();
    for (const auto& [name, t] : in.tensors()) shadow_.emplace_back(name, t.clone());
  }

 private:
  // shadow = decay * shadow + (1 - decay) * weight, element by element in a fixed order.
  void update(frugal::nn::Module& model) {
    const float decay = float(decay_), rest = float(1.0 - decay_);
    const frugal::nn::NamedTensors weights = model.named_parameters();
    for (size_t i = 0; i < weights.size(); ++i) {
      const float* w = weights[i].second.data<float>();
      float* s = shadow_[i].second.data<float>();
      for (int64_t k = 0, n = weights[i].second.numel(); k < n; ++k) s[k] = decay * s[k] + rest * w[k];
    }
  }

  // The averaged weights evaluated on the test split (swapped in, then back), saved, summarized.
  void finish(frugal::train::TrainState& state) {
    frugal::nn::NamedTensors weights = state.model.named_parameters();
    std::vector<frugal::Tensor> trained;
    for (size_t i = 0; i < weights.size(); ++i) {
      trained.push_back(weights[i].second.clone());
      weights[i].second.copy_from(shadow_[i].second);
    }
    frugal::train::EvalMetrics test;
    if (state.data.test.size() > 0) test = frugal::train::evaluate_classifier(state.model, state.data.test, 1000);
    for (size_t i = 0; i < weights.size(); ++i) weights[i].second.copy_from(trained[i]);
    frugal::io::write_safetensors((std::filesystem::path(state.out_dir) / "ema.safetensors").string(), shadow_, {});
    nlohmann::json figures = {{"decay", decay_}};
    if (test.samples > 0) figures["test_accuracy"] = test.accuracy, figures["test_loss"] = test.loss;
    state.summary->techniques["ema"] = figures;
  }

  double decay_;
  std::vector<std::pair<std::string, frugal::Tensor>> shadow_;
};
