// Packed data: round trip (the batches a Loader gives from a pack equal the in-memory ones for the
// same rows), the packed epoch order (every sample once, displacement under one window, a pure
// function of (seed, epoch), a resumed epoch equal to the tail of a full one), and bad inputs: a
// corrupted block, a truncated or missing shard, a shard of another pack, a damaged index.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "frugal/data/loader.h"
#include "frugal/data/packed.h"
#include "frugal/data/readers.h"
#include "test_util.h"
#include "unit/data/temp_files.h"

namespace frugal::data {
namespace {

namespace fs = std::filesystem;

// n u8 images (1, 4, 3) whose pixels spell the sample number; target i % classes.
Dataset images(int64_t n, int64_t classes = 10) {
  std::vector<uint8_t> x(size_t(n * 12));
  for (size_t i = 0; i < x.size(); ++i) x[i] = uint8_t((i / 12) * 7 + i % 12);
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[size_t(i)] = i % classes;
  Tensor inputs = Tensor::empty({n, 1, 4, 3}, DType::u8);
  std::copy(x.begin(), x.end(), inputs.data<uint8_t>());
  return {inputs, Tensor::from_vector(y, {n})};
}

PackOptions small_blocks(int64_t block = 16, int64_t shard_bytes = 300) {
  PackOptions options;
  options.block_samples = block;
  options.shard_bytes = shard_bytes;
  return options;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size()));
}

LoaderOptions loader_options(int64_t batch, int workers = 1) {
  LoaderOptions options;
  options.batch_size = batch;
  options.seed = 7;
  options.workers = workers;
  return options;
}

TEST(Packed, GatherEqualsTheInMemoryPreparedRows) {
  testing::TempDir dir;
  const Dataset train = images(200), test = images(30);
  const PackReport report = write_pack(dir.file("p"), train, {}, test, 10, {}, small_blocks());
  ASSERT_GT(report.index.split("train")->shards.size(), 1u);  // several shards at 300 bytes each
  const PackIndex index = read_pack_index(dir.file("p"));
  EXPECT_EQ(index.fingerprint, report.index.fingerprint);
  EXPECT_EQ(index.split("train")->samples, 200);
  EXPECT_EQ(index.split("test")->samples, 30);
  EXPECT_EQ(index.split("val"), nullptr);

  // The in-memory path: unit_float, then a scalar normalizer fitted on the training split.
  Tensor f32 = unit_float(train.inputs);
  Normalizer norm = Normalizer::fit(f32, false);
  norm.apply(f32);
  PackedSource source(dir.file("p"), index, "train", {});
  const std::vector<int64_t> rows = {5, 199, 0, 17, 16, 5, 120};
  const Dataset got = source.gather(rows), want = take({f32, train.targets}, rows);
  ASSERT_EQ(got.inputs.shape(), want.inputs.shape());
  EXPECT_EQ(got.inputs.to_vector<float>(), want.inputs.to_vector<float>());  // bit-identical
  EXPECT_EQ(got.targets.to_vector<int64_t>(), want.targets.to_vector<int64_t>());

  const Dataset test_read = read_packed_split(dir.file("p"), index, "test", PackNormalize::none);
  EXPECT_EQ(test_read.inputs.to_vector<float>(), unit_float(test.inputs).to_vector<float>());
}

TEST(Packed, PerFeatureStatisticsMatchTheNormalizer) {
  testing::TempDir dir;
  Dataset train = images(64);
  Tensor rgb = Tensor::empty({32, 3, 2, 2}, DType::u8);  // 3 channels
  std::copy(train.inputs.data<uint8_t>(), train.inputs.data<uint8_t>() + 32 * 12, rgb.data<uint8_t>());
  train = {rgb, train.targets.slice_view(0, 0, 32).contiguous()};
  write_pack(dir.file("p"), train, {}, {}, 10, {}, small_blocks());
  PackedSourceOptions options;
  options.normalize = PackNormalize::per_feature;
  PackedSource source(dir.file("p"), read_pack_index(dir.file("p")), "train", options);
  Tensor f32 = unit_float(train.inputs);
  Normalizer::fit(f32, true).apply(f32);
  std::vector<int64_t> rows(32);
  for (int64_t i = 0; i < 32; ++i) rows[size_t(i)] = i;
  EXPECT_EQ(source.gather(rows).inputs.to_vector<float>(), f32.to_vector<float>());
}

TEST(Packed, EpochOrderCoversEverySampleOnceWithBoundedDisplacement) {
  // 3 shards of 4, 2, 5 blocks; blocks of 10 samples except each shard's last (7, 3, 1).
  const std::vector<int64_t> shard_blocks = {4, 2, 5};
  std::vector<int64_t> block_samples = {10, 10, 10, 7, 10, 3, 10, 10, 10, 10, 1}, block_first;
  int64_t n = 0;
  for (int64_t s : block_samples) block_first.push_back(n), n += s;
  const int64_t window = 3;
  const std::vector<int64_t> order = packed_epoch_order(shard_blocks, block_first, block_samples, window, 11, 2);
  ASSERT_EQ(int64_t(order.size()), n);
  EXPECT_EQ(std::set<int64_t>(order.begin(), order.end()).size(), size_t(n));
  EXPECT_EQ(*std::min_element(order.begin(), order.end()), 0);
  EXPECT_EQ(*std::max_element(order.begin(), order.end()), n - 1);
  // Within each window of 3 blocks the samples come from exactly those blocks: collect, per output
  // window, the blocks it touches.
  auto block_of = [&](int64_t row) { return int64_t(std::upper_bound(block_first.begin(), block_first.end(), row) - block_first.begin()) - 1; };
  std::set<int64_t> seen_blocks;
  size_t at = 0;
  int64_t windows = 0;
  while (at < order.size()) {
    // A window is the next 3 distinct blocks met; it must hold all their samples and no other.
    std::set<int64_t> window_blocks;
    int64_t samples = 0;
    size_t i = at;
    while (i < order.size() && (int64_t(window_blocks.size()) < window || window_blocks.count(block_of(order[i])))) {
      window_blocks.insert(block_of(order[i]));
      ++i;
      ++samples;
    }
    int64_t expected = 0;
    for (int64_t b : window_blocks) {
      expected += block_samples[size_t(b)];
      EXPECT_FALSE(seen_blocks.count(b)) << "block " << b;
    }
    EXPECT_EQ(samples, expected) << "window " << windows << " mixes blocks from outside it";
    seen_blocks.insert(window_blocks.begin(), window_blocks.end());
    at = i;
    ++windows;
  }
  EXPECT_EQ(windows, (11 + window - 1) / window);
  // Pure function of (seed, epoch); another epoch or seed gives another order.
  EXPECT_EQ(order, packed_epoch_order(shard_blocks, block_first, block_samples, window, 11, 2));
  EXPECT_NE(order, packed_epoch_order(shard_blocks, block_first, block_samples, window, 11, 3));
  EXPECT_NE(order, packed_epoch_order(shard_blocks, block_first, block_samples, window, 12, 2));
}

TEST(Packed, LoaderBatchesAreDeterministicAndAResumedEpochIsTheTail) {
  testing::TempDir dir;
  const Dataset train = images(300);
  write_pack(dir.file("p"), train, {}, {}, 10, {}, small_blocks(16, 400));
  const PackIndex index = read_pack_index(dir.file("p"));
  PackedSourceOptions options;
  options.shuffle_buffer = 40;  // 3 blocks of 16
  auto source = std::make_shared<PackedSource>(dir.file("p"), index, "train", options);
  auto drain = [](Loader& loader) {
    std::vector<Batch> out;
    while (auto batch = loader.next()) out.push_back(std::move(*batch));
    return out;
  };
  Loader one(source, loader_options(32, 1)), three(source, loader_options(32, 3));
  one.start_epoch(1);
  three.start_epoch(1);
  const std::vector<Batch> a = drain(one), b = drain(three);
  ASSERT_EQ(a.size(), 10u);
  ASSERT_EQ(b.size(), a.size());
  std::set<int64_t> rows;
  for (size_t k = 0; k < a.size(); ++k) {
    EXPECT_EQ(a[k].inputs.to_vector<float>(), b[k].inputs.to_vector<float>()) << "batch " << k;
    EXPECT_EQ(a[k].targets.to_vector<int64_t>(), b[k].targets.to_vector<int64_t>());
    for (int64_t r : a[k].sample_indices.to_vector<int64_t>()) rows.insert(r);
  }
  EXPECT_EQ(rows.size(), 300u);
  // A fresh process (a new source and loader) resuming at batch 6 sees batches 6.. of the full epoch.
  auto again = std::make_shared<PackedSource>(dir.file("p"), index, "train", options);
  Loader resumed(again, loader_options(32, 2));
  resumed.start_epoch(1, 6);
  const std::vector<Batch> tail = drain(resumed);
  ASSERT_EQ(tail.size(), 4u);
  for (size_t k = 0; k < tail.size(); ++k) {
    EXPECT_EQ(tail[k].index, int64_t(k + 6));
    EXPECT_EQ(tail[k].inputs.to_vector<float>(), a[k + 6].inputs.to_vector<float>()) << "batch " << k + 6;
  }
  // Each block was decompressed about once per epoch (the cache spans the window).
  EXPECT_LE(source->blocks_decompressed(), int64_t(2 * 19));
}

TEST(Packed, SetEpochOrderWorksOnPackedRows) {
  testing::TempDir dir;
  write_pack(dir.file("p"), images(100), {}, {}, 10, {}, small_blocks());
  auto source = std::make_shared<PackedSource>(dir.file("p"), read_pack_index(dir.file("p")), "train", PackedSourceOptions{});
  Loader loader(source, loader_options(25));
  loader.set_epoch_order([](int64_t, std::vector<int64_t> shuffled) {
    std::sort(shuffled.begin(), shuffled.end(), std::greater<>());  // any order of rows
    return shuffled;
  });
  loader.start_epoch(0);
  auto first = loader.next();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->sample_indices.to_vector<int64_t>()[0], 99);
  EXPECT_EQ(first->targets.to_vector<int64_t>()[0], 9);
}

TEST(Packed, CorruptedBlockIsNamedWhenRead) {
  testing::TempDir dir;
  const PackReport report = write_pack(dir.file("p"), images(100), {}, {}, 10, {}, small_blocks(16, 1 << 20));
  const PackBlock block = report.index.split("train")->shards[0].blocks[2];
  const std::string shard = dir.file("p/train-00000.shard");
  std::string bytes = read_bytes(shard);
  bytes[block.offset + block.bytes / 2] ^= 0x40;
  write_bytes(shard, bytes);
  PackedSource source(dir.file("p"), read_pack_index(dir.file("p")), "train", {});  // opens: sizes are right
  EXPECT_NO_THROW(source.gather({0, 31}));
  try {
    source.gather({40});
    FAIL() << "a corrupted block was decoded";
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("train-00000.shard"), std::string::npos) << what;
    EXPECT_NE(what.find("block 2 at byte offset " + std::to_string(block.offset)), std::string::npos) << what;
    EXPECT_NE(what.find("checksum"), std::string::npos) << what;
  }
}

TEST(Packed, TruncatedMissingOrForeignShardsAreRefusedAtOpen) {
  testing::TempDir dir;
  write_pack(dir.file("p"), images(100), {}, {}, 10, {}, small_blocks(16, 300));
  write_pack(dir.file("q"), images(100), {}, {}, 12, {}, small_blocks(16, 300));  // same bytes, other class count
  const PackIndex index = read_pack_index(dir.file("p"));
  const std::string shard = dir.file("p/train-00001.shard"), saved = read_bytes(shard);
  auto open_error = [&] {
    try {
      PackedSource source(dir.file("p"), index, "train", {});
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("opened");
  };
  write_bytes(shard, saved.substr(0, saved.size() - 5));
  std::string what = open_error();
  EXPECT_NE(what.find("train-00001.shard: shard 1 of the train split"), std::string::npos) << what;
  EXPECT_NE(what.find("truncated"), std::string::npos) << what;
  fs::remove(shard);
  what = open_error();
  EXPECT_NE(what.find("train-00001.shard: cannot open shard 1"), std::string::npos) << what;
  fs::copy_file(dir.file("q/train-00001.shard"), shard);  // same blocks, another pack
  ASSERT_EQ(fs::file_size(shard), saved.size());
  what = open_error();
  EXPECT_NE(what.find("another pack"), std::string::npos) << what;
  write_bytes(shard, saved);
  EXPECT_EQ(open_error(), "opened");
}

TEST(Packed, DamagedIndexIsRefusedWithItsOffset) {
  testing::TempDir dir;
  write_pack(dir.file("p"), images(50), {}, images(10), 10, {}, small_blocks());
  const std::string path = dir.file("p/index.fpk"), good = read_bytes(path);
  EXPECT_NO_THROW(parse_pack_index(good, path));
  EXPECT_THROW(write_pack(dir.file("p"), images(50), {}, {}, 10, {}, small_blocks()), InputError);  // no overwrite
  auto error = [&](const std::string& bytes) {
    try {
      parse_pack_index(bytes, path);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("parsed");
  };
  std::string flipped = good;
  flipped[40] ^= 1;
  EXPECT_NE(error(flipped).find("checksum does not match"), std::string::npos);
  EXPECT_NE(error(good.substr(0, good.size() / 2)).find("checksum"), std::string::npos);
  EXPECT_NE(error("not an index at all").find("magic FRUGALPK"), std::string::npos);
  // Every truncation and every single-byte change of the index is refused, never crashes.
  for (size_t i = 0; i < good.size(); i += 7) {
    EXPECT_NE(error(good.substr(0, i)), "parsed") << "truncated at " << i;
    std::string changed = good;
    changed[i] = char(changed[i] + 1);
    EXPECT_NE(error(changed), "parsed") << "byte " << i;
  }
  EXPECT_THROW(read_pack_index(dir.file("nowhere")), InputError);
}

}  // namespace
}  // namespace frugal::data
