// The penultimate-layer embedding and the logits of a classifier in one forward, for the per-sample
// scores (GraNd w.r.t. the last layer) and core-set selection. Limits: models whose children run in
// order and whose last child is a Sequential ending in a Linear (the zoo's mlp and cnn).
#pragma once

#include "frugal/nn/module.h"
#include "frugal/tensor/tensor.h"

namespace frugal::train {

struct EmbeddedLogits {
  Tensor embedding;  // f32 (B, H): the input of the last Linear
  Tensor logits;     // f32 (B, C)
};

// Runs `model` as it is (the caller chooses train/eval mode and grad mode). InputError naming the
// model's type when it is not a chain ending in a Linear.
EmbeddedLogits embed_and_classify(nn::Module& model, const Tensor& inputs);

}  // namespace frugal::train
