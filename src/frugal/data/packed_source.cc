// PackedSource: packed shards read block by block on the loader threads, with a small LRU cache of
// decompressed blocks; and the packed epoch order (shards, blocks, windowed shuffle). Limits: a
// row asked for far from the current window (set_epoch_order with an arbitrary order) costs one
// block decompression per cache miss.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <list>
#include <mutex>
#include <set>
#include <unordered_map>

#include "frugal/base/error.h"
#include "frugal/base/rng.h"
#include "frugal/data/packed.h"

namespace frugal::data {

std::vector<int64_t> packed_epoch_order(const std::vector<int64_t>& shard_blocks, const std::vector<int64_t>& block_first,
                                        const std::vector<int64_t>& block_samples, int64_t window_blocks,
                                        uint64_t seed, int64_t epoch) {
  Rng rng(seed, mix_key(uint64_t(epoch), 0x7061636bull /* "pack" */), RandomPurpose::shuffle);
  auto permute = [&](std::vector<int64_t>& v) {  // Fisher-Yates
    for (int64_t i = int64_t(v.size()) - 1; i > 0; --i) std::swap(v[size_t(i)], v[rng.below(uint64_t(i + 1))]);
  };
  std::vector<int64_t> shard_first(shard_blocks.size() + 1, 0);
  for (size_t s = 0; s < shard_blocks.size(); ++s) shard_first[s + 1] = shard_first[s] + shard_blocks[s];
  std::vector<int64_t> shards(shard_blocks.size());
  for (size_t s = 0; s < shards.size(); ++s) shards[s] = int64_t(s);
  permute(shards);
  std::vector<int64_t> stream;  // blocks in the epoch's reading order
  stream.reserve(block_first.size());
  for (int64_t s : shards) {
    std::vector<int64_t> blocks;
    for (int64_t b = shard_first[size_t(s)]; b < shard_first[size_t(s) + 1]; ++b) blocks.push_back(b);
    permute(blocks);
    stream.insert(stream.end(), blocks.begin(), blocks.end());
  }
  std::vector<int64_t> order;
  order.reserve(block_first.empty() ? 0 : size_t(block_first.back() + block_samples.back()));
  const int64_t window = std::max<int64_t>(window_blocks, 1);
  for (size_t w = 0; w < stream.size(); w += size_t(window)) {
    const size_t start = order.size();
    for (size_t k = w; k < std::min(stream.size(), w + size_t(window)); ++k)
      for (int64_t i = 0; i < block_samples[size_t(stream[k])]; ++i) order.push_back(block_first[size_t(stream[k])] + i);
    for (size_t i = order.size() - 1; i > start; --i)
      std::swap(order[i], order[start + rng.below(uint64_t(i - start + 1))]);
  }
  return order;
}

struct PackedSource::Cache {
  std::mutex mutex;
  std::condition_variable done;  // a block in flight was cached (or failed)
  std::set<int64_t> in_flight;   // blocks a thread is decompressing: others wait rather than decompress twice
  std::list<int64_t> recent;  // most recent first
  std::unordered_map<int64_t, std::pair<std::shared_ptr<const std::vector<uint8_t>>, std::list<int64_t>::iterator>> blocks;
  int64_t misses = 0;
};

PackedSource::PackedSource(const std::string& dir, const PackIndex& index, const std::string& split,
                           PackedSourceOptions options)
    : dir_(dir), index_(index), options_(options), cache_(std::make_unique<Cache>()) {
  split_ = index_.split(split);
  if (!split_) throw InputError((std::filesystem::path(dir) / "index.fpk").string() + ": the pack has no " + split + " split");
  if (options_.shuffle_buffer < 1)
    throw InputError("shuffle_buffer must be a positive number of samples, got " + std::to_string(options_.shuffle_buffer));
  samples_ = split_->samples;
  sample_bytes_ = shape_numel(index_.sample_shape) * int64_t(dtype_size(index_.dtype));
  window_blocks_ = (options_.shuffle_buffer + index_.block_samples - 1) / index_.block_samples;
  cache_capacity_ = options_.cache_blocks > 0 ? options_.cache_blocks : 2 * window_blocks_ + 8;
  for (size_t s = 0; s < split_->shards.size(); ++s) {
    const PackShard& shard = split_->shards[s];
    const std::string path = (std::filesystem::path(dir) / shard.file).string();
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      for (int open_fd : fds_) ::close(open_fd);
      fail_system(path + ": cannot open shard " + std::to_string(s) + " of the " + split + " split (listed in index.fpk)", errno);
    }
    fds_.push_back(fd);
    struct stat st{};
    char header[16] = {};
    const bool sized = ::fstat(fd, &st) == 0;
    const ssize_t got = ::pread(fd, header, 16, 0);
    uint64_t fingerprint = 0;
    std::memcpy(&fingerprint, header + 8, 8);
    std::string problem;
    if (!sized || uint64_t(st.st_size) != shard.file_bytes)
      problem = "byte offset " + std::to_string(sized ? uint64_t(st.st_size) : 0) + ": the shard holds " +
                std::to_string(sized ? uint64_t(st.st_size) : 0) + " bytes, the index expects " +
                std::to_string(shard.file_bytes) + (sized && uint64_t(st.st_size) < shard.file_bytes ? " (truncated)" : "");
    else if (got != 16 || std::memcmp(header, "FPKSHARD", 8) != 0)
      problem = "byte offset 0: expected the shard header FPKSHARD";
    else if (fingerprint != index_.fingerprint)
      problem = "byte offset 8: the shard belongs to another pack (fingerprint differs from index.fpk's)";
    if (!problem.empty()) {
      for (int open_fd : fds_) ::close(open_fd);
      throw InputError(path + ": shard " + std::to_string(s) + " of the " + split + " split: " + problem + "; repack");
    }
    shard_blocks_.push_back(int64_t(shard.blocks.size()));
    for (const PackBlock& block : shard.blocks) {
      block_shard_.push_back(int64_t(s));
      block_first_.push_back(block_first_.empty() ? 0 : block_first_.back() + block_samples_.back());
      block_samples_.push_back(block.samples);
      blocks_.push_back(&block);
    }
  }
  const Shape& shape = index_.sample_shape;
  if (options_.normalize == PackNormalize::scalar) {
    mean_ = {index_.mean};
    std_ = {index_.std};
  } else if (options_.normalize == PackNormalize::per_feature) {
    mean_ = index_.feature_mean;
    std_ = index_.feature_std;
    if (shape.size() < 1 || int64_t(mean_.size()) != shape[0])
      throw InputError((std::filesystem::path(dir) / "index.fpk").string() + ": per-feature statistics for " +
                       std::to_string(mean_.size()) + " features; the samples " + shape_str(shape) + " have " +
                       std::to_string(shape.empty() ? 0 : shape[0]));
  }
}

PackedSource::~PackedSource() {
  for (int fd : fds_) ::close(fd);
}

std::vector<int64_t> PackedSource::shuffled_order(uint64_t seed, int64_t epoch) const {
  return packed_epoch_order(shard_blocks_, block_first_, block_samples_, window_blocks_, seed, epoch);
}

int64_t PackedSource::blocks_decompressed() const {
  std::lock_guard<std::mutex> lock(cache_->mutex);
  return cache_->misses;
}

std::shared_ptr<const std::vector<uint8_t>> PackedSource::block(int64_t b) const {
  {
    std::unique_lock<std::mutex> lock(cache_->mutex);
    while (true) {
      if (auto it = cache_->blocks.find(b); it != cache_->blocks.end()) {
        cache_->recent.splice(cache_->recent.begin(), cache_->recent, it->second.second);
        return it->second.first;
      }
      if (cache_->in_flight.insert(b).second) break;  // this thread decompresses it
      cache_->done.wait(lock);
    }
  }
  // Whatever happens below (a corrupted block throws), b is no longer in flight and waiters wake.
  struct Landing {
    Cache& cache;
    int64_t b;
    ~Landing() {
      {
        std::lock_guard<std::mutex> lock(cache.mutex);
        cache.in_flight.erase(b);
      }
      cache.done.notify_all();
    }
  } landing{*cache_, b};
  // Decompressed outside the lock, so the loader threads decode different blocks at once.
  const PackBlock& info = *blocks_[size_t(b)];
  const int64_t shard = block_shard_[size_t(b)];
  const std::string path = (std::filesystem::path(dir_) / split_->shards[size_t(shard)].file).string();
  const std::string where = path + ": shard " + std::to_string(shard) + " of the " + split_->name + " split, block " +
                            std::to_string(std::count(block_shard_.begin(), block_shard_.begin() + b, shard)) +
                            " at byte offset " + std::to_string(info.offset);
  thread_local std::vector<uint8_t> compressed;
  compressed.resize(info.bytes);
  size_t done = 0;
  while (done < info.bytes) {
    const ssize_t got = ::pread(fds_[size_t(shard)], compressed.data() + done, info.bytes - done, off_t(info.offset + done));
    if (got < 0) fail_system(where + ": cannot read", errno);
    if (got == 0) throw InputError(where + ": the shard ends at byte " + std::to_string(info.offset + done) + " (truncated while open); repack");
    done += size_t(got);
  }
  const uint32_t crc = uint32_t(crc32(0, compressed.data(), uInt(info.bytes)));
  if (crc != info.crc)
    throw InputError(where + ": checksum mismatch (CRC-32 " + std::to_string(crc) + ", the index says " +
                     std::to_string(info.crc) + "): the block is corrupted; repack");
  const size_t expected = size_t(info.samples) * size_t(4 + sample_bytes_);
  auto raw = std::make_shared<std::vector<uint8_t>>(expected);
  const size_t n = ZSTD_decompress(raw->data(), expected, compressed.data(), info.bytes);
  if (ZSTD_isError(n) || n != expected)
    throw InputError(where + ": the block does not decompress to " + std::to_string(info.samples) + " samples of " +
                     std::to_string(sample_bytes_) + " bytes (" + (ZSTD_isError(n) ? ZSTD_getErrorName(n) : "size differs") +
                     "): an index for another layout?");
  for (uint32_t i = 0; i < info.samples; ++i) {
    int32_t label;
    std::memcpy(&label, raw->data() + 4 * i, 4);
    if (label < 0 || label >= index_.classes)
      throw InputError(where + ": sample " + std::to_string(i) + " has label " + std::to_string(label) + ", outside 0.." +
                       std::to_string(index_.classes - 1));
  }
  std::lock_guard<std::mutex> lock(cache_->mutex);
  ++cache_->misses;
  cache_->recent.push_front(b);
  cache_->blocks.emplace(b, std::make_pair(raw, cache_->recent.begin()));
  while (int64_t(cache_->blocks.size()) > cache_capacity_) {
    cache_->blocks.erase(cache_->recent.back());
    cache_->recent.pop_back();
  }
  return raw;
}

Dataset PackedSource::gather(const std::vector<int64_t>& rows) const {
  const int64_t B = int64_t(rows.size()), elems = shape_numel(index_.sample_shape);
  Shape shape{B};
  shape.insert(shape.end(), index_.sample_shape.begin(), index_.sample_shape.end());
  Dataset out{Tensor::empty(shape, DType::f32), Tensor::empty({B}, DType::i64)};  // (B, ...), (B)
  float* x = out.inputs.data<float>();
  int64_t* y = out.targets.data<int64_t>();
  const int64_t features = int64_t(mean_.size()), rest = features ? elems / features : 0;
  for (int64_t i = 0; i < B; ++i) {
    const int64_t row = rows[size_t(i)];
    FRUGAL_CHECK(row >= 0 && row < samples_, "packed row " + std::to_string(row) + " out of range");
    const int64_t b = int64_t(std::upper_bound(block_first_.begin(), block_first_.end(), row) - block_first_.begin()) - 1;
    std::shared_ptr<const std::vector<uint8_t>> raw = block(b);
    const int64_t k = row - block_first_[size_t(b)], count = block_samples_[size_t(b)];
    int32_t label;
    std::memcpy(&label, raw->data() + 4 * k, 4);
    y[i] = label;
    const uint8_t* sample = raw->data() + count * 4 + k * sample_bytes_;
    float* dst = x + i * elems;
    if (index_.dtype == DType::u8)
      for (int64_t e = 0; e < elems; ++e) dst[e] = float(sample[e]) / 255.0f;  // as unit_float
    else
      std::memcpy(dst, sample, size_t(sample_bytes_));
    for (int64_t f = 0; f < features; ++f) {  // as Normalizer::apply
      const float mf = mean_[size_t(f)], sf = std_[size_t(f)];
      for (int64_t r = 0; r < rest; ++r) dst[f * rest + r] = (dst[f * rest + r] - mf) / sf;
    }
  }
  return out;
}

Dataset read_packed_split(const std::string& dir, const PackIndex& index, const std::string& split, PackNormalize normalize) {
  PackedSourceOptions options;
  options.normalize = normalize;
  options.cache_blocks = 2;  // read in order: each block once
  PackedSource source(dir, index, split, options);
  std::vector<int64_t> rows(size_t(source.size()));
  for (int64_t i = 0; i < source.size(); ++i) rows[size_t(i)] = i;
  return source.gather(rows);
}

}  // namespace frugal::data
