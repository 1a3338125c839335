// In-memory datasets for supervised training: inputs f32 (N, ...) and class targets i64 (N), plus
// the per-dataset transforms the trainer needs (subsets, a seeded split, class selection, seeded
// few-label subsets, normalization, image augmentation). Limits: everything lives in memory;
// augmentation covers crop-with-padding and flips.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "frugal/base/rng.h"
#include "frugal/tensor/tensor.h"

namespace frugal::data {

struct Dataset {
  Tensor inputs;   // f32 (N, ...)
  Tensor targets;  // i64 (N)
  int64_t size() const { return inputs.defined() ? inputs.size(0) : 0; }
};

// Rows `indices` of the dataset, in that order (indices may repeat). Works for any input dtype.
Dataset take(const Dataset& dataset, const std::vector<int64_t>& indices);

// Splits into (first, second) with round(fraction_second * N) samples in second, chosen by a
// Fisher-Yates shuffle keyed by Rng(seed, 0, RandomPurpose::split); each part keeps the original
// order of its samples. fraction_second must be in [0, 1] (InputError otherwise).
std::pair<Dataset, Dataset> split_fraction(const Dataset& dataset, double fraction_second, uint64_t seed);

// The samples whose target is listed in `classes`, renumbered classes[i] -> i (targets 0..k-1 in the
// listed order), in their original order. `classes` must be distinct; targets i64.
Dataset select_classes(const Dataset& dataset, const std::vector<int64_t>& classes);

// A seeded subset for few-label training: walks a Fisher-Yates permutation keyed by
// Rng(seed, 1, RandomPurpose::split) and keeps a sample while fewer than `per_class` of its class
// (0 = no limit per class) and fewer than `limit` in all (0 = no limit) are kept; the kept samples
// keep their original order. Same seed, same subset; with the same seed a larger limit (or a larger
// per_class alone) keeps a superset. Targets i64 >= 0.
Dataset limit_samples(const Dataset& dataset, int64_t limit, int64_t per_class, uint64_t seed);

// Samples per class: counts[c] = number of targets equal to c (the vector is max target + 1 long).
std::vector<int64_t> class_counts(const Dataset& dataset);

// x -> (x - mean) / std, with statistics from the training inputs. Per-feature statistics are taken
// along axis 1: per column for (N, F), per channel for images (N, C, H, W). A constant feature gets
// std 1 so it maps to 0 instead of dividing by zero.
struct Normalizer {
  Tensor mean;  // f32 () or (F)
  Tensor std;   // f32 () or (F)
  static Normalizer fit(const Tensor& inputs, bool per_feature);
  void apply(Tensor& inputs) const;  // in place; inputs f32, contiguous
};

struct AugmentOptions {
  int64_t crop_padding = 0;      // random crop of the image zero-padded by this many pixels per side
  bool horizontal_flip = false;  // mirror left-right with probability 1/2
  bool enabled() const { return crop_padding > 0 || horizontal_flip; }
};

// Augments one image (C, H, W) in place; `rng` decides the crop offsets (dy then dx, each uniform in
// [-crop_padding, crop_padding]) and then the flip. `scratch` is reused to avoid allocation.
void augment_image(float* image, int64_t channels, int64_t height, int64_t width, const AugmentOptions& options,
                   Rng& rng, std::vector<float>& scratch);

// Augments a batch (B, C, H, W) in place; sample b uses Rng(seed, mix_key(epoch, sample_indices[b]),
// RandomPurpose::augment), so the result depends only on (seed, epoch, dataset index).
void augment_batch(Tensor& images, const std::vector<int64_t>& sample_indices, int64_t epoch, uint64_t seed,
                   const AugmentOptions& options);

}  // namespace frugal::data
