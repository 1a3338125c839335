// Quantization-aware training ([quantize] aware = true): a FakeQuantHook (nn::LayerHook, the
// way LoRA reaches into nn::Linear) on every Linear and Conv2d fake-quantizes the weight per
// output channel and the input per tensor (fake_quantize, straight-through gradient) from
// start_step on, with the input range an observer keeps from training forwards (minmax or ema).
// The observers' state goes into checkpoints (bit-exact resume). At fit_end the run writes
// model.int8.safetensors from the learned ranges (train/compress/quantize.h's file).
// Limits: BatchNorm is not folded during training (it is at export: the folded weights are
// re-quantized); dynamic activations leave Linear inputs in float during training.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "frugal/nn/module.h"
#include "frugal/train/job.h"
#include "frugal/train/technique.h"

namespace frugal::train {

// The range one layer's input has shown in training forwards.
struct InputRange {
  double range = 0;  // minmax: the largest |x|; ema: the moving average of each batch's largest |x|
  double min = 0;    // the smallest x seen (>= 0: an unsigned input, u8 for a convolution)
  int64_t batches = 0;
};

class QuantizationAware : public Technique {
 public:
  // Hooks the model's Linear and Conv2d layers (InputError when it has none).
  QuantizationAware(const QuantizeSpec& spec, nn::Module& model, bool text_model, const std::string& job_path);
  std::string name() const override { return "quantize"; }
  EventSet events() const override { return event_set({Event::batch_loaded, Event::fit_end}); }
  void on(Event event, TrainState& state) override;
  void save_state(TechniqueState& out) const override;
  void load_state(const TechniqueState& in) override;

  const std::vector<InputRange>& ranges() const;

  struct Shared;  // the hooks' shared switches and ranges

 private:
  QuantizeSpec spec_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace frugal::train
