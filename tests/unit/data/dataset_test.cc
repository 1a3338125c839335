// Dataset transforms: take, the seeded split, the normalizer (against hand-computed statistics) and
// image augmentation (against a direct pad-crop-flip of the image, and determinism by key).
#include <algorithm>
#include <cmath>
#include <set>

#include "frugal/data/dataset.h"
#include "test_util.h"
#include "unit/data/temp_files.h"

namespace frugal::data {
namespace {

Dataset numbered(int64_t n, Shape sample = {3}) {
  Shape shape = sample;
  shape.insert(shape.begin(), n);
  std::vector<float> x(size_t(shape_numel(shape)));
  const int64_t per = shape_numel(sample);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int64_t(i) / per * 100 + int64_t(i) % per);
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[size_t(i)] = i;
  return {Tensor::from_vector(x, shape), Tensor::from_vector(y, {n})};
}

TEST(Dataset, TakeGathersRowsInOrder) {
  Dataset d = numbered(5);
  Dataset t = take(d, {4, 0, 4});
  EXPECT_EQ(t.size(), 3);
  EXPECT_EQ(t.inputs.to_vector<float>(), (std::vector<float>{400, 401, 402, 0, 1, 2, 400, 401, 402}));
  EXPECT_EQ(t.targets.to_vector<int64_t>(), (std::vector<int64_t>{4, 0, 4}));
  // Non-contiguous inputs are gathered correctly too.
  Dataset view = {d.inputs.slice_view(1, 0, 3, 2), d.targets};
  EXPECT_EQ(take(view, {1}).inputs.to_vector<float>(), (std::vector<float>{100, 102}));
  EXPECT_EQ(take(d, {}).size(), 0);
}

TEST(Dataset, SplitIsDeterministicDisjointAndComplete) {
  Dataset d = numbered(101);
  auto [train, valid] = split_fraction(d, 0.2, 7);
  EXPECT_EQ(valid.size(), 20);
  EXPECT_EQ(train.size(), 81);
  std::vector<int64_t> a = train.targets.to_vector<int64_t>(), b = valid.targets.to_vector<int64_t>();
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  std::set<int64_t> all(a.begin(), a.end());
  all.insert(b.begin(), b.end());
  EXPECT_EQ(all.size(), 101u);
  // Inputs travel with their targets.
  EXPECT_EQ(valid.inputs.at({0, 1}), double(b[0] * 100 + 1));
  auto [train2, valid2] = split_fraction(d, 0.2, 7);
  EXPECT_EQ(valid2.targets.to_vector<int64_t>(), b);
  auto [train3, valid3] = split_fraction(d, 0.2, 8);
  EXPECT_NE(valid3.targets.to_vector<int64_t>(), b);
  EXPECT_EQ(split_fraction(d, 0.0, 1).second.size(), 0);
  EXPECT_EQ(split_fraction(d, 1.0, 1).first.size(), 0);
  EXPECT_INPUT_ERROR(split_fraction(d, 1.5, 1), "outside [0, 1]");
}

// n samples whose input row i is (i) and whose label is labels(i).
template <class Label>
Dataset labelled(int64_t n, Label labels) {
  std::vector<float> x(static_cast<size_t>(n));
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    x[size_t(i)] = float(i);
    y[size_t(i)] = labels(i);
  }
  return {Tensor::from_vector(x, {n, 1}), Tensor::from_vector(y, {n})};
}

std::vector<int64_t> rows_of(const Dataset& d) {
  std::vector<int64_t> rows;
  for (float v : d.inputs.to_vector<float>()) rows.push_back(int64_t(v));
  return rows;
}

TEST(Dataset, SelectClassesKeepsTheListedOnesRenumberedInListOrder) {
  Dataset d = labelled(8, [](int64_t i) { return std::vector<int64_t>{0, 1, 2, 3, 2, 1, 0, 3}[size_t(i)]; });
  Dataset kept = select_classes(d, {3, 1});
  EXPECT_EQ(rows_of(kept), (std::vector<int64_t>{1, 3, 5, 7}));  // original order
  EXPECT_EQ(kept.targets.to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 1, 0}));  // 3 -> 0, 1 -> 1
  EXPECT_EQ(select_classes(d, {5, 6}).size(), 0);
  Dataset all = select_classes(d, {0, 1, 2, 3});
  EXPECT_EQ(all.targets.to_vector<int64_t>(), d.targets.to_vector<int64_t>());
}

TEST(Dataset, LimitSamplesIsASeededChoiceNotTheFirstRows) {
  Dataset d = labelled(100, [](int64_t i) { return i % 4; });
  Dataset ten = limit_samples(d, 10, 0, 7);
  std::vector<int64_t> rows = rows_of(ten);
  ASSERT_EQ(rows.size(), 10u);
  EXPECT_TRUE(std::is_sorted(rows.begin(), rows.end()));
  EXPECT_NE(rows.back(), 9);  // not rows 0..9
  EXPECT_EQ(rows_of(limit_samples(d, 10, 0, 7)), rows);  // same seed, same choice
  EXPECT_NE(rows_of(limit_samples(d, 10, 0, 8)), rows);
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(ten.targets.to_vector<int64_t>()[i], rows[i] % 4);
  // A larger limit keeps a superset: the first N of one permutation.
  std::vector<int64_t> twenty = rows_of(limit_samples(d, 20, 0, 7));
  EXPECT_TRUE(std::includes(twenty.begin(), twenty.end(), rows.begin(), rows.end()));
  EXPECT_EQ(limit_samples(d, 0, 0, 7).size(), 100);
  EXPECT_EQ(limit_samples(d, 1000, 0, 7).size(), 100);
}

TEST(Dataset, LimitSamplesPerClass) {
  // Classes of different sizes: 0 has 10 samples, 1 has 30, 2 has 60.
  Dataset d = labelled(100, [](int64_t i) { return i < 10 ? 0 : i < 40 ? 1 : 2; });
  Dataset three = limit_samples(d, 0, 3, 1);
  EXPECT_EQ(class_counts(three), (std::vector<int64_t>{3, 3, 3}));
  std::vector<int64_t> six = rows_of(limit_samples(d, 0, 6, 1)), rows = rows_of(three);
  EXPECT_TRUE(std::includes(six.begin(), six.end(), rows.begin(), rows.end()));
  EXPECT_EQ(class_counts(limit_samples(d, 0, 20, 1)), (std::vector<int64_t>{10, 20, 20}));  // all of class 0
  // Both limits: at most per_class of each and limit in all.
  Dataset both = limit_samples(d, 7, 3, 1);
  EXPECT_EQ(both.size(), 7);
  for (int64_t count : class_counts(both)) EXPECT_LE(count, 3);
  EXPECT_EQ(class_counts(d), (std::vector<int64_t>{10, 30, 60}));
}

TEST(Normalizer, ScalarAndPerFeature) {
  // (N=4, F=2): column 0 = 1, 2, 3, 4; column 1 constant 5.
  Tensor x = Tensor::from_vector(std::vector<float>{1, 5, 2, 5, 3, 5, 4, 5}, {4, 2});
  Normalizer per = Normalizer::fit(x, true);
  EXPECT_EQ(per.mean.shape(), (Shape{2}));
  EXPECT_FLOAT_EQ(float(per.mean.at({0})), 2.5f);
  EXPECT_FLOAT_EQ(float(per.std.at({0})), std::sqrt(1.25f));
  EXPECT_FLOAT_EQ(float(per.std.at({1})), 1.0f);  // constant feature: no division by zero
  Tensor y = x.clone();
  per.apply(y);
  const float s = std::sqrt(1.25f);
  EXPECT_TRUE(frugal::testing::all_close(
      y, Tensor::from_vector(std::vector<float>{-1.5f / s, 0, -0.5f / s, 0, 0.5f / s, 0, 1.5f / s, 0}, {4, 2}), 1e-6,
      1e-6));
  Normalizer all = Normalizer::fit(x, false);
  EXPECT_EQ(all.mean.rank(), 0);
  EXPECT_FLOAT_EQ(float(all.mean.item()), 3.75f);  // (10 + 20) / 8
  // Images: per channel over N, H, W.
  Tensor img = Tensor::from_vector(std::vector<float>{0, 2, 10, 10, 4, 6, 30, 30}, {2, 2, 1, 2});
  Normalizer channels = Normalizer::fit(img, true);
  EXPECT_EQ(channels.mean.to_vector<float>(), (std::vector<float>{3, 20}));
  EXPECT_EQ(channels.std.to_vector<float>(), (std::vector<float>{std::sqrt(5.0f), 10}));
  channels.apply(img);
  EXPECT_FLOAT_EQ(float(img.at({1, 1, 0, 1})), 1.0f);
}

// Direct definition: pad by p with zeros, crop at (p + dy, p + dx), then mirror if flip.
std::vector<float> expected_augment(const std::vector<float>& image, int64_t c_n, int64_t h_n, int64_t w_n,
                                    int64_t pad, int64_t dy, int64_t dx, bool flip) {
  const int64_t hp = h_n + 2 * pad, wp = w_n + 2 * pad;
  std::vector<float> padded(size_t(c_n * hp * wp), 0.0f), out(image.size());
  for (int64_t c = 0; c < c_n; ++c)
    for (int64_t y = 0; y < h_n; ++y)
      for (int64_t x = 0; x < w_n; ++x) padded[size_t((c * hp + y + pad) * wp + x + pad)] = image[size_t((c * h_n + y) * w_n + x)];
  for (int64_t c = 0; c < c_n; ++c)
    for (int64_t y = 0; y < h_n; ++y)
      for (int64_t x = 0; x < w_n; ++x) {
        int64_t cx = flip ? w_n - 1 - x : x;
        out[size_t((c * h_n + y) * w_n + x)] = padded[size_t((c * hp + y + pad + dy) * wp + cx + pad + dx)];
      }
  return out;
}

TEST(Augment, MatchesPadCropFlipAndIsKeyedBySample) {
  const int64_t c_n = 2, h_n = 5, w_n = 7, pad = 2;
  Tensor images = frugal::testing::random_tensor({3, c_n, h_n, w_n}, 11);
  AugmentOptions options{pad, true};
  std::vector<int64_t> samples = {10, 3, 10};
  Tensor a = images.clone();
  augment_batch(a, samples, 4, 99, options);
  std::vector<float> original = images.to_vector<float>(), got = a.to_vector<float>();
  const size_t per = size_t(c_n * h_n * w_n);
  int changed = 0;
  for (size_t b = 0; b < 3; ++b) {
    // Replay the documented draws: dy, dx, then the flip bit.
    Rng rng(99, mix_key(4, uint64_t(samples[b])), RandomPurpose::augment);
    int64_t dy = int64_t(rng.below(2 * pad + 1)) - pad, dx = int64_t(rng.below(2 * pad + 1)) - pad;
    bool flip = rng.next_u32() & 1u;
    std::vector<float> image(original.begin() + long(b * per), original.begin() + long((b + 1) * per));
    std::vector<float> expect = expected_augment(image, c_n, h_n, w_n, pad, dy, dx, flip);
    EXPECT_EQ(std::vector<float>(got.begin() + long(b * per), got.begin() + long((b + 1) * per)), expect) << "sample " << b;
    changed += expect != image;
  }
  EXPECT_GT(changed, 0);
  // Same key -> same result; the same sample in another epoch is (almost surely) different.
  Tensor again = images.clone();
  augment_batch(again, samples, 4, 99, options);
  EXPECT_EQ(again.to_vector<float>(), got);
  int differs = 0;
  for (int64_t epoch = 5; epoch < 10; ++epoch) {
    Tensor other = images.clone();
    augment_batch(other, samples, epoch, 99, options);
    differs += other.to_vector<float>() != got;
  }
  EXPECT_GT(differs, 0);
  // Flip only: every sample is either unchanged or mirrored, and both happen over many samples.
  Tensor many = frugal::testing::random_tensor({64, 1, 2, 3}, 5);
  Tensor flipped = many.clone();
  std::vector<int64_t> ids(64);
  for (int64_t i = 0; i < 64; ++i) ids[size_t(i)] = i;
  augment_batch(flipped, ids, 0, 1, AugmentOptions{0, true});
  int mirrored = 0;
  for (int64_t i = 0; i < 64; ++i) {
    bool same = true, mirror = true;
    for (int64_t y = 0; y < 2; ++y)
      for (int64_t x = 0; x < 3; ++x) {
        same &= flipped.at({i, 0, y, x}) == many.at({i, 0, y, x});
        mirror &= flipped.at({i, 0, y, x}) == many.at({i, 0, y, 2 - x});
      }
    EXPECT_TRUE(same || mirror);
    mirrored += mirror && !same;
  }
  EXPECT_GT(mirrored, 16);
  EXPECT_LT(mirrored, 48);
}

}  // namespace
}  // namespace frugal::data
