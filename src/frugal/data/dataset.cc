// Subsets, seeded splits, normalization statistics and image augmentation for in-memory datasets.
// All randomness is counter-based (frugal::Rng), so results depend only on seeds and indices.
#include "frugal/data/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace frugal::data {

namespace {

// Rows `indices` of a (N, ...) tensor of any dtype, as a new contiguous (len(indices), ...) tensor.
Tensor gather_rows(const Tensor& source, const std::vector<int64_t>& indices) {
  Tensor packed = source.contiguous();
  Shape shape = packed.shape();
  const int64_t n = shape[0];
  shape[0] = int64_t(indices.size());
  Tensor out = Tensor::empty(shape, packed.dtype());
  const size_t row_bytes = n > 0 ? packed.nbytes() / size_t(n) : 0;
  const char* src = static_cast<const char*>(packed.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  for (size_t i = 0; i < indices.size(); ++i) {
    FRUGAL_CHECK(indices[i] >= 0 && indices[i] < n,
                 "take: index " + std::to_string(indices[i]) + " out of range for " + std::to_string(n) + " samples");
    std::memcpy(dst + i * row_bytes, src + size_t(indices[i]) * row_bytes, row_bytes);
  }
  return out;
}

}  // namespace

Dataset take(const Dataset& dataset, const std::vector<int64_t>& indices) {
  FRUGAL_CHECK(dataset.inputs.defined() && dataset.inputs.rank() >= 1, "take: dataset has no inputs");
  FRUGAL_CHECK(dataset.targets.defined() && dataset.targets.size(0) == dataset.inputs.size(0),
               "take: inputs and targets differ in length");
  return {gather_rows(dataset.inputs, indices), gather_rows(dataset.targets, indices)};
}

std::pair<Dataset, Dataset> split_fraction(const Dataset& dataset, double fraction_second, uint64_t seed) {
  if (!(fraction_second >= 0.0 && fraction_second <= 1.0))
    throw InputError("split fraction " + std::to_string(fraction_second) + " is outside [0, 1]");
  const int64_t n = dataset.size();
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
  Rng rng(seed, 0, RandomPurpose::split);
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[rng.below(uint64_t(i + 1))]);
  const int64_t second_size = std::llround(fraction_second * double(n));
  std::vector<int64_t> second(order.begin(), order.begin() + second_size), first(order.begin() + second_size, order.end());
  std::sort(first.begin(), first.end());
  std::sort(second.begin(), second.end());
  return {take(dataset, first), take(dataset, second)};
}

Dataset select_classes(const Dataset& dataset, const std::vector<int64_t>& classes) {
  FRUGAL_CHECK(dataset.targets.defined() && dataset.targets.dtype() == DType::i64, "select_classes needs i64 targets");
  std::vector<int64_t> labels = dataset.targets.to_vector<int64_t>();
  std::vector<int64_t> kept;
  std::vector<int64_t> renumbered;
  for (size_t i = 0; i < labels.size(); ++i) {
    auto found = std::find(classes.begin(), classes.end(), labels[i]);
    if (found == classes.end()) continue;
    kept.push_back(int64_t(i));
    renumbered.push_back(found - classes.begin());
  }
  Dataset out = take(dataset, kept);
  out.targets = Tensor::from_vector(renumbered, {int64_t(renumbered.size())});
  return out;
}

std::vector<int64_t> class_counts(const Dataset& dataset) {
  std::vector<int64_t> counts;
  if (!dataset.targets.defined()) return counts;
  for (int64_t label : dataset.targets.to_vector<int64_t>()) {
    FRUGAL_CHECK(label >= 0, "class_counts: negative target " + std::to_string(label));
    if (size_t(label) >= counts.size()) counts.resize(size_t(label) + 1, 0);
    ++counts[size_t(label)];
  }
  return counts;
}

Dataset limit_samples(const Dataset& dataset, int64_t limit, int64_t per_class, uint64_t seed) {
  FRUGAL_CHECK(limit >= 0 && per_class >= 0, "limit_samples: negative limit");
  const int64_t n = dataset.size();
  std::vector<int64_t> labels = dataset.targets.to_vector<int64_t>();
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
  // Stream 1: independent of split_fraction's stream 0 under the same seed.
  Rng rng(seed, 1, RandomPurpose::split);
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[rng.below(uint64_t(i + 1))]);
  std::vector<int64_t> kept, per_label;
  for (int64_t index : order) {
    if (limit > 0 && int64_t(kept.size()) >= limit) break;
    const int64_t label = labels[size_t(index)];
    FRUGAL_CHECK(label >= 0, "limit_samples: negative target " + std::to_string(label));
    if (per_class > 0) {
      if (size_t(label) >= per_label.size()) per_label.resize(size_t(label) + 1, 0);
      if (per_label[size_t(label)] >= per_class) continue;
      ++per_label[size_t(label)];
    }
    kept.push_back(index);
  }
  std::sort(kept.begin(), kept.end());
  return take(dataset, kept);
}

namespace {
// Mean and population variance per feature of (N, F, R) values read through `v`, in double: two
// passes (mean, then squared deviations) for accuracy.
template <class T>
void feature_moments(const T* v, int64_t n, int64_t features, int64_t rest, std::vector<double>& mean,
                     std::vector<double>& var) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t f = 0; f < features; ++f)
      for (int64_t r = 0; r < rest; ++r) mean[size_t(f)] += double(v[(i * features + f) * rest + r]);
  const double count = double(n * rest);
  for (double& m : mean) m /= count;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t f = 0; f < features; ++f)
      for (int64_t r = 0; r < rest; ++r) {
        double d = double(v[(i * features + f) * rest + r]) - mean[size_t(f)];
        var[size_t(f)] += d * d;
      }
  for (double& v2 : var) v2 /= count;
}
}  // namespace

Normalizer Normalizer::fit(const Tensor& inputs, bool per_feature) {
  FRUGAL_CHECK(inputs.rank() >= 1, "Normalizer::fit needs (N, ...) inputs");
  // f32 and f64 are read in place (each value widened exactly, as a f64 copy would hold it: a
  // training set's f64 copy once doubled frugal's peak memory); other types are converted.
  Tensor x = inputs.contiguous();
  if (x.dtype() != DType::f32 && x.dtype() != DType::f64) x = x.to(DType::f64);
  const int64_t n = x.size(0);
  if (n == 0) throw InputError("cannot fit a normalizer on an empty dataset");
  // View (N, F, R): statistics per F (R = trailing elements, e.g. H*W) or over everything.
  const int64_t features = per_feature && x.rank() >= 2 ? x.size(1) : 1;
  const int64_t rest = x.numel() / (n * features);
  std::vector<double> mean(static_cast<size_t>(features), 0.0), var(static_cast<size_t>(features), 0.0);
  if (x.dtype() == DType::f32) feature_moments(x.data<float>(), n, features, rest, mean, var);
  else feature_moments(x.data<double>(), n, features, rest, mean, var);
  std::vector<float> mean_f(static_cast<size_t>(features)), std_f(static_cast<size_t>(features));
  for (int64_t f = 0; f < features; ++f) {
    double sd = std::sqrt(var[size_t(f)]);
    mean_f[size_t(f)] = float(mean[size_t(f)]);
    std_f[size_t(f)] = sd > 1e-12 ? float(sd) : 1.0f;
  }
  Normalizer normalizer;
  Shape shape = per_feature && x.rank() >= 2 ? Shape{features} : Shape{};
  normalizer.mean = Tensor::from_vector(mean_f, shape);
  normalizer.std = Tensor::from_vector(std_f, shape);
  return normalizer;
}

void Normalizer::apply(Tensor& inputs) const {
  FRUGAL_CHECK(inputs.dtype() == DType::f32 && inputs.is_contiguous(), "Normalizer::apply needs contiguous f32 inputs");
  FRUGAL_CHECK(mean.defined() && std.defined(), "Normalizer::apply before fit");
  const int64_t features = mean.numel();
  const int64_t n = inputs.size(0);
  if (n == 0) return;
  FRUGAL_CHECK(features == 1 || (inputs.rank() >= 2 && inputs.size(1) == features),
               "Normalizer with " + std::to_string(features) + " features applied to " + shape_str(inputs.shape()));
  const int64_t rest = inputs.numel() / (n * features);
  std::vector<float> m = mean.to_vector<float>(), s = std.to_vector<float>();
  float* x = inputs.data<float>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t f = 0; f < features; ++f) {
      float* row = x + (i * features + f) * rest;
      const float mf = m[size_t(f)], sf = s[size_t(f)];
      for (int64_t r = 0; r < rest; ++r) row[r] = (row[r] - mf) / sf;
    }
}

void augment_image(float* image, int64_t channels, int64_t height, int64_t width, const AugmentOptions& options,
                   Rng& rng, std::vector<float>& scratch) {
  const int64_t pad = options.crop_padding;
  int64_t dy = 0, dx = 0;
  if (pad > 0) {
    dy = int64_t(rng.below(uint64_t(2 * pad + 1))) - pad;
    dx = int64_t(rng.below(uint64_t(2 * pad + 1))) - pad;
  }
  const bool flip = options.horizontal_flip && (rng.next_u32() & 1u);
  if (dy == 0 && dx == 0 && !flip) return;
  const int64_t plane = height * width;
  scratch.assign(image, image + channels * plane);
  // out(c, y, x) = in(c, y + dy, x' + dx) with x' = x or width-1-x; zero outside the image (padding).
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t y = 0; y < height; ++y) {
      float* out = image + c * plane + y * width;
      const int64_t sy = y + dy;
      if (sy < 0 || sy >= height) {
        std::fill(out, out + width, 0.0f);
        continue;
      }
      const float* in = scratch.data() + c * plane + sy * width;
      for (int64_t x = 0; x < width; ++x) {
        const int64_t sx = (flip ? width - 1 - x : x) + dx;
        out[x] = sx >= 0 && sx < width ? in[sx] : 0.0f;
      }
    }
}

void augment_batch(Tensor& images, const std::vector<int64_t>& sample_indices, int64_t epoch, uint64_t seed,
                   const AugmentOptions& options) {
  if (!options.enabled()) return;
  FRUGAL_CHECK(images.dtype() == DType::f32 && images.is_contiguous() && images.rank() == 4,
               "augment_batch needs contiguous f32 (B, C, H, W) images, got " + shape_str(images.shape()));
  FRUGAL_CHECK(int64_t(sample_indices.size()) == images.size(0), "augment_batch: one sample index per image");
  const int64_t channels = images.size(1), height = images.size(2), width = images.size(3);
  float* data = images.data<float>();
  std::vector<float> scratch;
  for (size_t b = 0; b < sample_indices.size(); ++b) {
    Rng rng(seed, mix_key(uint64_t(epoch), uint64_t(sample_indices[b])), RandomPurpose::augment);
    augment_image(data + int64_t(b) * channels * height * width, channels, height, width, options, rng, scratch);
  }
}

}  // namespace frugal::data
