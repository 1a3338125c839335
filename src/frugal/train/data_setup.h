// Turns the [data] section of a job into ready tensors: train/val/test splits, normalization,
// and for text models the character vocabulary and token streams.
#pragma once

#include <optional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "frugal/data/dataset.h"
#include "frugal/data/packed.h"
#include "frugal/data/readers.h"
#include "frugal/train/bible_text.h"
#include "frugal/train/job.h"

namespace frugal::train {

struct PreparedData {
  bool is_text = false;
  // Classification: inputs f32 (N, ...), targets i64 (N).
  data::Dataset train, val, test;
  // kind = "packed": the training split streams from shards (train stays empty); val/test as above.
  std::shared_ptr<const data::PackedSource> train_packed;
  uint64_t pack_fingerprint = 0;  // of the pack (index.fpk), checked when a run resumes
  int64_t train_size() const { return train_packed ? train_packed->size() : train.size(); }
  // Training rows `rows` (in memory or decoded from the pack): inputs f32 (B, ...), targets i64 (B).
  data::Dataset train_rows(const std::vector<int64_t>& rows) const {
    return train_packed ? train_packed->gather(rows) : data::take(train, rows);
  }
  Shape sample_shape;  // one input, e.g. (1, 28, 28)
  int64_t classes = 0;
  std::vector<std::string> label_names;  // [data] labels = "names": class index -> name; else empty
  // Language models: i64 token streams (N) and the vocabulary built from the training split.
  Tensor train_tokens, val_tokens, test_tokens;
  data::CharVocab vocab;
  std::string describe;  // one line for the log: sizes of the splits
  // [data] dedup (text): what was removed from the training split, for the summary (data/dedup.h).
  std::optional<nlohmann::json> dedup;
  std::vector<std::string> warnings;  // one line each, for the caller to print (a csv/npy job without val or test split)
};

// cache_dir holds derived files (the Bible texts of train/bible_text.h).
// Classification data: every file's labels checked against [data] labels / class_count as read (an
// InputError naming the file and its line or sample), then the splits as read (or taken as
// val_fraction / test_fraction of the training data), with [data] classes applied to every split before the fractions are taken (labels renumbered
// 0..k-1 in the listed order; a listed class absent from the training data is an InputError), and
// [data] train_limit / per_class applied to the training split after them (data::limit_samples keyed
// by run.seed; more than the split holds is an InputError), so the val and test splits do not depend
// on the limits.
PreparedData prepare_data(const JobSpec& job, const std::string& cache_dir);

// The classification splits as prepare_data makes them, before u8 -> f32 and normalization (what
// `frugal data pack` writes): inputs u8 (idx) or f32, with sample_shape, classes, label_names and
// describe ("N train", or "N of M train (...)" with limits) filled in.
PreparedData prepare_splits(const JobSpec& job);

}  // namespace frugal::train
