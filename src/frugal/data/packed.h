// Packed classification data: zstd-compressed shards of fixed-size blocks plus one index file, written
// by `frugal data pack` and streamed by the Loader with bounded memory (PackedSource). Layout of DIR:
//   index.fpk                  the index (format below; ends with a CRC-32 of everything before it)
//   <split>-00000.shard, ...   per split (train, val, test): a 16-byte header ("FPKSHARD" + the data
//                              set's fingerprint) then compressed blocks back to back
// A block is zstd(labels i32 (n) then inputs (n, ...) in the stored dtype, u8 or f32); the index keeps
// each block's offset, compressed size, sample count and the CRC-32 of its compressed bytes, checked
// every time it is decompressed. Limits: classification only; one sample shape; u8 or f32 inputs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "frugal/data/dataset.h"
#include "frugal/data/sample_source.h"

namespace frugal::data {

constexpr uint32_t kPackVersion = 1;

struct PackBlock {
  uint64_t offset = 0;   // in the shard file
  uint64_t bytes = 0;    // compressed
  uint32_t samples = 0;
  uint32_t crc = 0;      // CRC-32 of the compressed bytes
};

struct PackShard {
  std::string file;      // relative to DIR
  uint64_t file_bytes = 0;
  std::vector<PackBlock> blocks;
};

struct PackSplit {
  std::string name;      // train | val | test
  int64_t samples = 0;
  std::vector<PackShard> shards;
};

struct PackIndex {
  DType dtype = DType::u8;          // stored inputs: u8 (decoded as /255 to f32) or f32
  Shape sample_shape;                // one input, e.g. (1, 28, 28)
  int64_t classes = 0;
  std::vector<std::string> label_names;  // empty: integer labels
  uint64_t fingerprint = 0;          // of the layout and every block's content (FNV-1a over CRCs)
  int64_t block_samples = 0;         // samples per block (the last of a shard may hold fewer)
  // Statistics of the training split's f32 inputs (after /255 for u8), as Normalizer::fit computes
  // them: scalar, and per channel (axis 1 of (N, C, ...); one value for (N, F) data is per column).
  float mean = 0, std = 1;
  std::vector<float> feature_mean, feature_std;
  std::vector<PackSplit> splits;
  const PackSplit* split(const std::string& name) const;  // nullptr when absent
};

// The index as bytes and back; parse_pack_index names `where` and the byte offset of what is wrong.
std::string serialize_pack_index(const PackIndex& index);
PackIndex parse_pack_index(const std::string& bytes, const std::string& where);
PackIndex read_pack_index(const std::string& dir);  // DIR/index.fpk

struct PackOptions {
  int64_t shard_bytes = 64 << 20;  // a new shard once the current one holds this many compressed bytes
  int64_t block_samples = 256;
  int level = 3;                   // zstd level
  int64_t repeat = 1;              // the training split written this many times (benchmarks: a big set)
};

struct PackReport {
  PackIndex index;
  uint64_t raw_bytes = 0, packed_bytes = 0;
};

// Writes `train` (and val / test when defined) to DIR (created; an existing index.fpk is refused).
// Inputs u8 or f32 (N, ...), targets i64 (N) within [0, classes).
PackReport write_pack(const std::string& dir, const Dataset& train, const Dataset& val, const Dataset& test,
                      int64_t classes, const std::vector<std::string>& label_names, const PackOptions& options);

enum class PackNormalize { none, scalar, per_feature };

struct PackedSourceOptions {
  PackNormalize normalize = PackNormalize::scalar;
  int64_t shuffle_buffer = 8192;  // samples shuffled together (rounded up to whole blocks)
  int64_t cache_blocks = 0;       // decompressed blocks kept; 0: two buffers' worth plus 8
};

// The epoch order of packed data, from the block layout alone (no data read): shards in an order
// permuted by (seed, epoch), each shard's blocks permuted, then windows of `window_blocks` consecutive
// blocks whose samples are Fisher-Yates shuffled together. Every sample once; a sample moves less
// than one window from its place in the block stream. `block_first` / `block_samples` list the
// blocks in storage order, grouped by shard (`shard_blocks` per shard).
std::vector<int64_t> packed_epoch_order(const std::vector<int64_t>& shard_blocks, const std::vector<int64_t>& block_first,
                                        const std::vector<int64_t>& block_samples, int64_t window_blocks,
                                        uint64_t seed, int64_t epoch);

// One split of a pack, read by the loader threads: pread of a block's compressed bytes into a
// bounded buffer (no mmap, so consumed data never stays in RSS and a shard truncated while open
// is an error, not SIGBUS), CRC check, zstd decompression, u8 -> f32, normalization. Opening checks
// every shard's header and size against the index. A bad block throws InputError naming the
// file, shard, block and byte offset.
class PackedSource final : public SampleSource {
 public:
  PackedSource(const std::string& dir, const PackIndex& index, const std::string& split, PackedSourceOptions options);
  ~PackedSource() override;
  int64_t size() const override { return samples_; }
  Shape sample_shape() const override { return index_.sample_shape; }
  std::vector<int64_t> shuffled_order(uint64_t seed, int64_t epoch) const override;
  Dataset gather(const std::vector<int64_t>& rows) const override;
  int64_t blocks_decompressed() const;  // cache misses so far (for the summary)
  int64_t cache_blocks() const { return cache_capacity_; }

 private:
  struct Cache;
  std::shared_ptr<const std::vector<uint8_t>> block(int64_t b) const;  // raw block b, cached

  std::string dir_;
  PackIndex index_;
  const PackSplit* split_ = nullptr;
  PackedSourceOptions options_;
  int64_t samples_ = 0, sample_bytes_ = 0, window_blocks_ = 1, cache_capacity_ = 0;
  std::vector<int> fds_;                       // per shard
  std::vector<int64_t> block_shard_, block_first_, block_samples_, shard_blocks_;
  std::vector<const PackBlock*> blocks_;
  std::vector<float> mean_, std_;              // per channel (or one value)
  int64_t channel_elems_ = 0;                  // elements per channel in one sample
  std::unique_ptr<Cache> cache_;
};

// Reads a whole split into memory (val and test splits, which evaluation needs as tensors).
Dataset read_packed_split(const std::string& dir, const PackIndex& index, const std::string& split,
                          PackNormalize normalize);

}  // namespace frugal::data
