// Turns the [data] section of a job into ready tensors: train/val/test splits, normalization,
// and for text models the character vocabulary and token streams.
#pragma once

#include <string>

#include "frugal/data/dataset.h"
#include "frugal/data/readers.h"
#include "frugal/train/job.h"

namespace frugal::train {

struct PreparedData {
  bool is_text = false;
  // Classification: inputs f32 (N, ...), targets i64 (N).
  data::Dataset train, val, test;
  Shape sample_shape;  // one input, e.g. (1, 28, 28)
  int64_t classes = 0;
  // Language models: i64 token streams (N) and the vocabulary built from the training split.
  Tensor train_tokens, val_tokens, test_tokens;
  data::CharVocab vocab;
  std::string describe;  // one line for the log: sizes of the splits
};

// cache_dir holds derived files (e.g. the KJV text produced by `bible`).
PreparedData prepare_data(const JobSpec& job, const std::string& cache_dir);

// The text of the King James Bible from Debian's bible-kjv, one verse per line without the
// reference prefix; produced once with `bible` and cached under cache_dir.
std::string kjv_text_path(const std::string& cache_dir);

}  // namespace frugal::train
