// Loader and TokenLoader: coverage and order of each epoch, determinism across seeds, epochs, worker
// counts and prefetch depths, resume mid-epoch, a bounded queue under a slow consumer, clean
// destruction mid-epoch, and the language-model windows.
#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include "frugal/base/rng.h"
#include "frugal/data/loader.h"
#include "test_util.h"
#include "unit/data/temp_files.h"

namespace frugal::data {
namespace {

// Sample i has inputs filled with i (so batches show which samples they hold) and target i.
Dataset numbered(int64_t n, Shape sample = {2}) {
  Shape shape = sample;
  shape.insert(shape.begin(), n);
  const int64_t per = shape_numel(sample);
  std::vector<float> x(static_cast<size_t>(n * per));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int64_t(i) / per);
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[size_t(i)] = i;
  return {Tensor::from_vector(x, shape), Tensor::from_vector(y, {n})};
}

// Options by position (designated initializers warn about the unnamed fields under -Wextra).
LoaderOptions opts(int64_t batch_size, uint64_t seed = 0, int prefetch = 2, int workers = 1) {
  LoaderOptions options;
  options.batch_size = batch_size;
  options.seed = seed;
  options.prefetch = prefetch;
  options.workers = workers;
  return options;
}

std::vector<Batch> drain(Loader& loader) {
  std::vector<Batch> batches;
  while (auto batch = loader.next()) batches.push_back(std::move(*batch));
  return batches;
}

std::vector<int64_t> targets_of(const std::vector<Batch>& batches) {
  std::vector<int64_t> all;
  for (const Batch& b : batches) {
    std::vector<int64_t> t = b.targets.to_vector<int64_t>();
    all.insert(all.end(), t.begin(), t.end());
  }
  return all;
}

void expect_same_batches(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].index, b[i].index);
    EXPECT_EQ(a[i].epoch, b[i].epoch);
    EXPECT_EQ(a[i].inputs.shape(), b[i].inputs.shape());
    EXPECT_EQ(a[i].inputs.to_vector<float>(), b[i].inputs.to_vector<float>()) << "batch " << i;
    EXPECT_EQ(a[i].targets.to_vector<int64_t>(), b[i].targets.to_vector<int64_t>()) << "batch " << i;
  }
}

TEST(Loader, EverySampleOncePerEpoch) {
  Dataset d = numbered(103);
  Loader loader(d, opts(10, 3));
  EXPECT_EQ(loader.batches_per_epoch(), 11);
  loader.start_epoch(0);
  std::vector<Batch> batches = drain(loader);
  ASSERT_EQ(batches.size(), 11u);
  EXPECT_EQ(batches.back().targets.size(0), 3);
  for (size_t i = 0; i < batches.size(); ++i) {
    EXPECT_EQ(batches[i].index, int64_t(i));
    EXPECT_EQ(batches[i].inputs.dtype(), DType::f32);
    // Inputs travel with targets.
    std::vector<int64_t> t = batches[i].targets.to_vector<int64_t>();
    std::vector<float> x = batches[i].inputs.to_vector<float>();
    for (size_t k = 0; k < t.size(); ++k) EXPECT_EQ(x[2 * k + 1], float(t[k]));
  }
  std::vector<int64_t> order = targets_of(batches);
  EXPECT_EQ(order, loader.epoch_order(0));
  std::vector<int64_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 103; ++i) EXPECT_EQ(sorted[size_t(i)], i);
  EXPECT_NE(order, sorted);  // shuffled
  EXPECT_FALSE(loader.next().has_value());  // stays done

  LoaderOptions drop = opts(10, 3);
  drop.drop_last = true;
  Loader dropping(d, drop);
  EXPECT_EQ(dropping.batches_per_epoch(), 10);
  dropping.start_epoch(0);
  std::vector<int64_t> kept = targets_of(drain(dropping));
  EXPECT_EQ(kept, std::vector<int64_t>(order.begin(), order.begin() + 100));

  LoaderOptions in_order = opts(50);
  in_order.shuffle = false;
  Loader plain(d, in_order);
  plain.start_epoch(5);
  EXPECT_EQ(targets_of(drain(plain)), sorted);
}

// Each batch names the dataset rows it holds (sample_indices), in batch order: the epoch's
// shuffled order, also for a start mid-epoch; the rows' inputs and targets are those samples'.
TEST(Loader, BatchesCarryTheDatasetIndicesOfTheirSamples) {
  Dataset d = numbered(103);
  Loader loader(d, opts(10, 7, /*prefetch=*/3, /*workers=*/2));
  for (int64_t epoch : {0, 1}) {
    loader.start_epoch(epoch);
    std::vector<Batch> batches = drain(loader);
    const std::vector<int64_t> order = loader.epoch_order(epoch);
    std::vector<int64_t> indices;
    for (const Batch& b : batches) {
      ASSERT_TRUE(b.sample_indices.defined());
      EXPECT_EQ(b.sample_indices.dtype(), DType::i64);
      EXPECT_EQ(b.sample_indices.shape(), Shape{b.targets.size(0)});
      std::vector<int64_t> in_batch = b.sample_indices.to_vector<int64_t>();
      EXPECT_EQ(in_batch, b.targets.to_vector<int64_t>());  // sample i has target i
      std::vector<float> x = b.inputs.to_vector<float>();
      for (size_t k = 0; k < in_batch.size(); ++k) EXPECT_EQ(x[2 * k], float(in_batch[k]));
      indices.insert(indices.end(), in_batch.begin(), in_batch.end());
    }
    EXPECT_EQ(indices, order) << "epoch " << epoch;
  }
  loader.start_epoch(2, /*first_batch=*/4);
  std::optional<Batch> fifth = loader.next();
  ASSERT_TRUE(fifth.has_value());
  const std::vector<int64_t> order = loader.epoch_order(2);
  EXPECT_EQ(fifth->sample_indices.to_vector<int64_t>(), std::vector<int64_t>(order.begin() + 40, order.begin() + 50));
}

TEST(Loader, OrderDependsOnlyOnSeedAndEpoch) {
  Dataset d = numbered(64);
  Loader a(d, opts(8, 1)), b(d, opts(8, 1, 5, 3)), c(d, opts(8, 2));
  a.start_epoch(0);
  b.start_epoch(0);
  c.start_epoch(0);
  std::vector<Batch> a0 = drain(a), b0 = drain(b), c0 = drain(c);
  expect_same_batches(a0, b0);
  EXPECT_NE(targets_of(a0), targets_of(c0));
  a.start_epoch(1);
  std::vector<Batch> a1 = drain(a);
  EXPECT_NE(targets_of(a0), targets_of(a1));
  EXPECT_EQ(a1[0].epoch, 1);
  // Going back to epoch 0 repeats it exactly (the permutation is a pure function).
  a.start_epoch(0);
  expect_same_batches(drain(a), a0);
  // Fisher-Yates over Rng(seed, epoch, shuffle), as documented.
  std::vector<int64_t> expected(64);
  for (int64_t i = 0; i < 64; ++i) expected[size_t(i)] = i;
  Rng rng(1, 1, RandomPurpose::shuffle);
  for (int64_t i = 63; i > 0; --i) std::swap(expected[size_t(i)], expected[rng.below(uint64_t(i + 1))]);
  EXPECT_EQ(targets_of(a1), expected);
}

TEST(Loader, MidEpochStartEqualsTailOfFullEpoch) {
  Dataset d = numbered(50, {1, 4, 4});
  LoaderOptions options = opts(6, 9);
  options.augment.crop_padding = 1;
  options.augment.horizontal_flip = true;
  Loader full(d, options);
  full.start_epoch(2);
  std::vector<Batch> all = drain(full);
  ASSERT_EQ(all.size(), 9u);
  for (int64_t first : {0, 1, 4, 8, 9}) {
    options.workers = int(first % 3) + 1;
    Loader resumed(d, options);
    resumed.start_epoch(2, first);
    expect_same_batches(drain(resumed), std::vector<Batch>(all.begin() + first, all.end()));
  }
  // Abandoning an epoch midway and restarting from a batch gives the same tail.
  full.start_epoch(2);
  full.next();
  full.start_epoch(2, 5);
  expect_same_batches(drain(full), std::vector<Batch>(all.begin() + 5, all.end()));
  EXPECT_INPUT_ERROR(full.start_epoch(2, 10), "at batch 10", "an epoch has 9 batches");
}

TEST(Loader, AugmentationIsDeterministicAndPerSample) {
  Dataset d = {frugal::testing::random_tensor({40, 3, 6, 6}, 4), numbered(40).targets};
  LoaderOptions options = opts(7, 5);
  options.augment.crop_padding = 2;
  options.augment.horizontal_flip = true;
  Loader a(d, options);
  options.workers = 2;
  options.prefetch = 1;
  Loader b(d, options);
  a.start_epoch(3);
  b.start_epoch(3);
  std::vector<Batch> a3 = drain(a), b3 = drain(b);
  expect_same_batches(a3, b3);
  // Each batch equals the gathered samples augmented with keys (seed, epoch, sample index).
  int changed = 0;
  for (const Batch& batch : a3) {
    std::vector<int64_t> ids = batch.targets.to_vector<int64_t>();
    Tensor expect = take(d, ids).inputs;
    Tensor plain = expect.clone();
    augment_batch(expect, ids, 3, 5, options.augment);
    EXPECT_EQ(batch.inputs.to_vector<float>(), expect.to_vector<float>());
    changed += batch.inputs.to_vector<float>() != plain.to_vector<float>();
  }
  EXPECT_GT(changed, 0);
  a.start_epoch(4);
  EXPECT_NE(drain(a)[0].inputs.to_vector<float>(), a3[0].inputs.to_vector<float>());
  LoaderOptions flip = opts(2);
  flip.augment.horizontal_flip = true;
  EXPECT_INPUT_ERROR(Loader(numbered(4), flip),
                     "needs f32 images (N, C, H, W)");
  EXPECT_INPUT_ERROR(Loader(numbered(4), opts(0)), "batch_size must be a positive integer, got 0");
}

TEST(Loader, SlowConsumerBoundedQueue) {
  // 1 MiB batches: memory held by the loader shows how many batches it has prepared.
  const int64_t per = 64 * 1024;  // floats per sample (256 KiB)
  Dataset d = numbered(32, {per});
  const int64_t batch_bytes = 4 * per * 4 + 4 * 8;
  Loader loader(d, opts(4, 1, 2, 2));
  const int64_t before = Storage::live_bytes();
  loader.start_epoch(0);
  // The producers run ahead (poll: the machine may be busy)...
  for (int i = 0; i < 500 && Storage::live_bytes() - before < 2 * batch_bytes; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_GE(Storage::live_bytes() - before, 2 * batch_bytes);
  // ...but no further than the prefetch depth, however long the consumer takes.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_LT(Storage::live_bytes() - before, 3 * batch_bytes);
  std::vector<int64_t> seen;
  while (auto batch = loader.next()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(15));  // slow training step
    std::vector<int64_t> t = batch->targets.to_vector<int64_t>();
    seen.insert(seen.end(), t.begin(), t.end());
    EXPECT_LT(Storage::live_bytes() - before, 4 * batch_bytes);  // queue + the batch in hand
  }
  EXPECT_EQ(seen, loader.epoch_order(0));
  EXPECT_GE(loader.data_wait_seconds(), 0.0);
  EXPECT_LE(loader.last_wait_seconds(), loader.data_wait_seconds());
}

TEST(Loader, EpochOrderFunctionChoosesTheSamplesFromTheNextEpochOn) {
  Loader loader(numbered(10), opts(4, /*seed=*/3));
  std::vector<int64_t> asked;
  loader.set_epoch_order([&](int64_t epoch, std::vector<int64_t> shuffled) {
    asked.push_back(epoch);
    EXPECT_EQ(shuffled, loader.epoch_order(epoch));  // the loader's own order, to build on
    return std::vector<int64_t>(10, epoch);          // every sample is row `epoch`
  });
  loader.start_epoch(2, /*first_batch=*/1);  // a resumed process asks again
  std::vector<int64_t> seen;
  while (auto batch = loader.next()) {
    std::vector<int64_t> rows = batch->sample_indices.to_vector<int64_t>();
    EXPECT_EQ(rows, batch->targets.to_vector<int64_t>());
    seen.insert(seen.end(), rows.begin(), rows.end());
  }
  EXPECT_EQ(seen, std::vector<int64_t>(6, 2));
  EXPECT_EQ(asked, std::vector<int64_t>{2});
  loader.set_epoch_order(nullptr);
  loader.start_epoch(1);
  seen.clear();
  while (auto batch = loader.next())
    for (int64_t t : batch->targets.to_vector<int64_t>()) seen.push_back(t);
  EXPECT_EQ(seen, loader.epoch_order(1));
}

TEST(Loader, DestructionMidEpochDoesNotHang) {
  Dataset d = numbered(1000, {256});
  for (int workers : {1, 2, 4}) {
    { Loader never_started(d, opts(10, 0, 2, workers)); }
    { Loader just_started(d, opts(10, 0, 2, workers));
      just_started.start_epoch(0); }
    { Loader one_taken(d, opts(10, 0, 4, workers));
      one_taken.start_epoch(0);
      ASSERT_TRUE(one_taken.next().has_value());
      one_taken.start_epoch(1);  // abandon with work in flight
      ASSERT_TRUE(one_taken.next().has_value()); }
  }
}

TEST(TokenLoader, RandomWindowsShiftedByOne) {
  const int64_t n = 200, b_n = 4, t_n = 16;
  Tensor tokens = Tensor::arange(n);  // token value = its position, so windows are easy to check
  TokenLoader loader(tokens, b_n, t_n, 77);
  int64_t min_start = n, max_start = -1;
  for (int64_t step = 0; step < 300; ++step) {
    Batch batch = loader.next_for_step(step);
    ASSERT_EQ(batch.inputs.shape(), (Shape{b_n, t_n}));
    ASSERT_EQ(batch.targets.shape(), (Shape{b_n, t_n}));
    EXPECT_EQ(batch.index, step);
    std::vector<int64_t> x = batch.inputs.to_vector<int64_t>(), y = batch.targets.to_vector<int64_t>();
    Rng rng(77, uint64_t(step), RandomPurpose::sample);
    for (int64_t b = 0; b < b_n; ++b) {
      const int64_t start = x[size_t(b * t_n)];
      EXPECT_EQ(start, int64_t(rng.below(uint64_t(n - t_n))));
      for (int64_t t = 0; t < t_n; ++t) {
        EXPECT_EQ(x[size_t(b * t_n + t)], start + t);
        EXPECT_EQ(y[size_t(b * t_n + t)], start + t + 1);
      }
      min_start = std::min(min_start, start);
      max_start = std::max(max_start, start);
    }
  }
  EXPECT_EQ(min_start, 0);
  EXPECT_EQ(max_start, n - t_n - 1);  // the last window ends on the last token
  EXPECT_INPUT_ERROR(TokenLoader(Tensor::arange(16), 2, 16, 1), "has 16 tokens", "needs at least 17");
}

TEST(TokenLoader, AnyStepOrderGivesTheSameBatches) {
  Tensor tokens = Tensor::arange(5000);
  TokenLoader in_order(tokens, 8, 32, 5, 3), jumping(tokens, 8, 32, 5, 1), no_thread(tokens, 8, 32, 5, 0);
  std::vector<Batch> reference;
  for (int64_t step = 0; step < 40; ++step) reference.push_back(in_order.next_for_step(step));
  std::vector<int64_t> steps = {39, 3, 4, 5, 0, 17, 17, 2, 38, 1};
  for (int64_t step : steps) {
    for (TokenLoader* loader : {&jumping, &no_thread}) {
      Batch batch = loader->next_for_step(step);
      EXPECT_EQ(batch.inputs.to_vector<int64_t>(), reference[size_t(step)].inputs.to_vector<int64_t>()) << step;
      EXPECT_EQ(batch.targets.to_vector<int64_t>(), reference[size_t(step)].targets.to_vector<int64_t>()) << step;
    }
  }
  EXPECT_NE(reference[0].inputs.to_vector<int64_t>(), reference[1].inputs.to_vector<int64_t>());
  TokenLoader other_seed(tokens, 8, 32, 6);
  EXPECT_NE(other_seed.next_for_step(0).inputs.to_vector<int64_t>(), reference[0].inputs.to_vector<int64_t>());
  // Destroy with prefetch work pending.
  { TokenLoader busy(Tensor::arange(100000), 64, 512, 1, 8); busy.next_for_step(0); }
  EXPECT_GE(in_order.data_wait_seconds(), 0.0);
}

TEST(TokenLoader, SequentialWindows) {
  Tensor tokens = Tensor::arange(23);
  auto windows = sequential_windows(tokens, 3, 5);  // (23 - 1) / 5 = 4 windows -> batches of 3 and 1
  ASSERT_EQ(windows.size(), 2u);
  EXPECT_EQ(windows[0].first.shape(), (Shape{3, 5}));
  EXPECT_EQ(windows[1].first.shape(), (Shape{1, 5}));
  std::vector<int64_t> x = windows[0].first.to_vector<int64_t>(), y = windows[0].second.to_vector<int64_t>();
  for (int64_t k = 0; k < 15; ++k) {
    EXPECT_EQ(x[size_t(k)], k);
    EXPECT_EQ(y[size_t(k)], k + 1);
  }
  EXPECT_EQ(windows[1].first.to_vector<int64_t>(), (std::vector<int64_t>{15, 16, 17, 18, 19}));
  EXPECT_EQ(windows[1].second.to_vector<int64_t>(), (std::vector<int64_t>{16, 17, 18, 19, 20}));
  EXPECT_EQ(sequential_windows(Tensor::arange(6), 4, 5).size(), 1u);
  EXPECT_INPUT_ERROR(sequential_windows(Tensor::arange(5), 4, 5), "has 5 tokens", "needs at least 6");
}

}  // namespace
}  // namespace frugal::data
