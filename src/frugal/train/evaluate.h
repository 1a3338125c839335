// Evaluation and generation with a trained model: mean loss and accuracy over a classification
// split, loss and bits per character over a token stream, and temperature sampling of text.
// Limits: classification runs whole batches of the split in order; text uses non-overlapping windows.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "frugal/data/dataset.h"
#include "frugal/data/readers.h"
#include "frugal/nn/module.h"

namespace frugal::train {

struct EvalMetrics {
  double loss = 0;
  double accuracy = -1;        // classification only
  double bits_per_char = -1;   // text only
  int64_t samples = 0;
};

// Mean cross-entropy (and accuracy) over a classification split, batch by batch, in eval mode.
EvalMetrics evaluate_classifier(nn::Module& model, const data::Dataset& split, int64_t batch_size);
// Mean per-character loss and bits per character over a token stream, in order, in eval mode.
EvalMetrics evaluate_language_model(nn::Module& model, const Tensor& tokens, int64_t batch, int64_t context,
                                    int64_t max_tokens);

// The token an empty prompt starts from: a newline if the training text had one (a fresh line),
// else a space, else the vocabulary's first (smallest) byte: a text without newlines still samples.
int64_t default_start(const data::CharVocab& vocab);

// Called after each generated character with it and the count so far; returning false stops the
// sampling there (what was generated is kept).
using SampleCallback = std::function<bool(const std::string& piece, int64_t done)>;

// Generates `tokens` characters after `prompt` (empty: after default_start) with temperature
// sampling keyed by `seed`; fewer when `on_token` stops it.
std::string sample_text(nn::Module& model, const data::CharVocab& vocab, int64_t context, const std::string& prompt,
                        int64_t tokens, double temperature, uint64_t seed, const SampleCallback& on_token = {});

}  // namespace frugal::train
