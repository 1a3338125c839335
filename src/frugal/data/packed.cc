// The packed format's index (binary, little-endian, checked field by field with byte offsets) and its
// writer. Limits: the writer holds the splits it packs in memory (they come from the readers); only
// the repetition of the training split (--repeat) makes a pack larger than that.
#include "frugal/data/packed.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "frugal/base/error.h"
#include "frugal/data/readers.h"

namespace frugal::data {

namespace {

constexpr char kIndexMagic[8] = {'F', 'R', 'U', 'G', 'A', 'L', 'P', 'K'};
constexpr uint32_t kMaxRank = 8;

class ByteWriter {
 public:
  template <typename T>
  void put(T value) {
    char bytes[sizeof(T)];
    std::memcpy(bytes, &value, sizeof(T));  // little-endian hosts only (x86-64, aarch64)
    out_.append(bytes, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint32_t>(uint32_t(s.size()));
    out_ += s;
  }
  std::string& bytes() { return out_; }

 private:
  std::string out_;
};

class ByteReader {
 public:
  ByteReader(const std::string& bytes, size_t end, std::string where) : bytes_(bytes), end_(end), where_(std::move(where)) {}
  template <typename T>
  T get(const char* what) {
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  std::string get_string(const char* what) {
    const uint32_t n = get<uint32_t>(what);
    if (n > 4096) fail(std::string(what) + " of at most 4096 bytes, found a length of " + std::to_string(n));
    need(n, what);
    std::string s = bytes_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  // A count of items each at least `item_bytes` long, refused when the rest of the file cannot hold it.
  uint32_t get_count(const char* what, size_t item_bytes) {
    const size_t at = pos_;
    const uint32_t n = get<uint32_t>(what);
    if (uint64_t(n) * item_bytes > end_ - pos_)
      fail_at(at, std::string(what) + " that fits the file; " + std::to_string(n) + " do not");
    return n;
  }
  [[noreturn]] void fail(const std::string& expected) const { fail_at(pos_, expected); }
  [[noreturn]] void fail_at(size_t at, const std::string& expected) const {
    throw InputError(where_ + ": byte offset " + std::to_string(at) + ": expected " + expected);
  }
  size_t pos() const { return pos_; }

 private:
  void need(size_t n, const char* what) const {
    if (n > end_ - pos_) fail(std::string(what) + " (" + std::to_string(n) + " bytes), but the index ends first");
  }
  const std::string& bytes_;
  size_t end_, pos_ = 0;
  std::string where_;
};

uint8_t dtype_code(DType dtype) { return dtype == DType::u8 ? 0 : 1; }

uint64_t fnv1a(uint64_t hash, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) hash = (hash ^ p[i]) * 0x100000001b3ull;
  return hash;
}

}  // namespace

const PackSplit* PackIndex::split(const std::string& name) const {
  for (const PackSplit& s : splits)
    if (s.name == name) return &s;
  return nullptr;
}

std::string serialize_pack_index(const PackIndex& index) {
  ByteWriter w;
  w.bytes().append(kIndexMagic, 8);
  w.put<uint32_t>(kPackVersion);
  w.put<uint8_t>(dtype_code(index.dtype));
  w.put<uint32_t>(uint32_t(index.sample_shape.size()));
  for (int64_t d : index.sample_shape) w.put<int64_t>(d);
  w.put<int64_t>(index.classes);
  w.put<uint32_t>(uint32_t(index.label_names.size()));
  for (const std::string& name : index.label_names) w.put_string(name);
  w.put<uint64_t>(index.fingerprint);
  w.put<int64_t>(index.block_samples);
  w.put<float>(index.mean);
  w.put<float>(index.std);
  w.put<uint32_t>(uint32_t(index.feature_mean.size()));
  for (size_t i = 0; i < index.feature_mean.size(); ++i) {
    w.put<float>(index.feature_mean[i]);
    w.put<float>(index.feature_std[i]);
  }
  w.put<uint32_t>(uint32_t(index.splits.size()));
  for (const PackSplit& split : index.splits) {
    w.put_string(split.name);
    w.put<int64_t>(split.samples);
    w.put<uint32_t>(uint32_t(split.shards.size()));
    for (const PackShard& shard : split.shards) {
      w.put_string(shard.file);
      w.put<uint64_t>(shard.file_bytes);
      w.put<uint32_t>(uint32_t(shard.blocks.size()));
      for (const PackBlock& block : shard.blocks) {
        w.put<uint64_t>(block.offset);
        w.put<uint64_t>(block.bytes);
        w.put<uint32_t>(block.samples);
        w.put<uint32_t>(block.crc);
      }
    }
  }
  const uint32_t crc = uint32_t(crc32(0, reinterpret_cast<const Bytef*>(w.bytes().data()), uInt(w.bytes().size())));
  w.put<uint32_t>(crc);
  return w.bytes();
}

PackIndex parse_pack_index(const std::string& bytes, const std::string& where) {
  if (bytes.size() < 12 || std::memcmp(bytes.data(), kIndexMagic, 8) != 0)
    throw InputError(where + ": byte offset 0: expected a frugal pack index (magic FRUGALPK); is this a `frugal data pack` directory?");
  uint32_t stored_crc;
  std::memcpy(&stored_crc, bytes.data() + bytes.size() - 4, 4);
  const uint32_t crc = uint32_t(crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), uInt(bytes.size() - 4)));
  if (crc != stored_crc)
    throw InputError(where + ": byte offset " + std::to_string(bytes.size() - 4) +
                     ": the index checksum does not match its content (truncated or corrupted index); repack");
  ByteReader r(bytes, bytes.size() - 4, where);
  r.get<uint64_t>("magic");
  const uint32_t version = r.get<uint32_t>("version");
  if (version != kPackVersion)
    r.fail_at(8, "pack format version " + std::to_string(kPackVersion) + ", found " + std::to_string(version));
  PackIndex index;
  const uint8_t dtype = r.get<uint8_t>("dtype");
  if (dtype > 1) r.fail_at(r.pos() - 1, "dtype 0 (u8) or 1 (f32), found " + std::to_string(dtype));
  index.dtype = dtype == 0 ? DType::u8 : DType::f32;
  const uint32_t rank = r.get<uint32_t>("rank");
  if (rank < 1 || rank > kMaxRank) r.fail_at(r.pos() - 4, "a sample rank of 1.." + std::to_string(kMaxRank));
  int64_t elems = 1;
  for (uint32_t i = 0; i < rank; ++i) {
    const int64_t d = r.get<int64_t>("dimension");
    if (d < 1 || d > (1 << 24) || elems * d > (int64_t(1) << 28)) r.fail_at(r.pos() - 8, "a positive sample dimension (sample under 2^28 elements)");
    elems *= d;
    index.sample_shape.push_back(d);
  }
  index.classes = r.get<int64_t>("class count");
  if (index.classes < 2 || index.classes > (1 << 20)) r.fail_at(r.pos() - 8, "a class count of 2..2^20");
  const uint32_t names = r.get_count("label name count", 4);
  if (names != 0 && names != index.classes) r.fail_at(r.pos() - 4, "0 label names or one per class (" + std::to_string(index.classes) + ")");
  for (uint32_t i = 0; i < names; ++i) index.label_names.push_back(r.get_string("label name"));
  index.fingerprint = r.get<uint64_t>("fingerprint");
  index.block_samples = r.get<int64_t>("block size");
  if (index.block_samples < 1 || index.block_samples > (1 << 20)) r.fail_at(r.pos() - 8, "a block size of 1..2^20 samples");
  index.mean = r.get<float>("mean");
  index.std = r.get<float>("std");
  const uint32_t features = r.get_count("feature count", 8);
  for (uint32_t i = 0; i < features; ++i) {
    index.feature_mean.push_back(r.get<float>("feature mean"));
    index.feature_std.push_back(r.get<float>("feature std"));
  }
  const uint32_t splits = r.get_count("split count", 16);
  for (uint32_t s = 0; s < splits; ++s) {
    PackSplit split;
    split.name = r.get_string("split name");
    if (split.name != "train" && split.name != "val" && split.name != "test")
      r.fail("a split named train, val or test, found \"" + split.name + "\"");
    if (index.split(split.name)) r.fail("each split once; \"" + split.name + "\" appears twice");
    split.samples = r.get<int64_t>("sample count");
    const uint32_t shards = r.get_count("shard count", 16);
    int64_t counted = 0;
    for (uint32_t h = 0; h < shards; ++h) {
      PackShard shard;
      shard.file = r.get_string("shard file name");
      if (shard.file.empty() || shard.file.find('/') != std::string::npos || shard.file[0] == '.')
        r.fail("a plain shard file name inside the pack directory, found \"" + shard.file + "\"");
      shard.file_bytes = r.get<uint64_t>("shard size");
      const uint32_t blocks = r.get_count("block count", 24);
      uint64_t next = 16;  // after the shard header
      for (uint32_t b = 0; b < blocks; ++b) {
        PackBlock block;
        block.offset = r.get<uint64_t>("block offset");
        block.bytes = r.get<uint64_t>("block size");
        block.samples = r.get<uint32_t>("block sample count");
        block.crc = r.get<uint32_t>("block checksum");
        if (block.offset != next || block.bytes == 0 || block.bytes > (uint64_t(1) << 31))
          r.fail_at(r.pos() - 24, "block " + std::to_string(b) + " of " + shard.file + " right after the previous one (offset " +
                                      std::to_string(next) + ") with a size of 1 byte..2 GiB");
        if (block.samples < 1 || int64_t(block.samples) > index.block_samples)
          r.fail_at(r.pos() - 8, "a block sample count of 1.." + std::to_string(index.block_samples));
        next = block.offset + block.bytes;
        counted += block.samples;
        shard.blocks.push_back(block);
      }
      if (shard.file_bytes != next)
        r.fail("shard " + shard.file + " to end with its last block at " + std::to_string(next) + ", the index says " +
               std::to_string(shard.file_bytes) + " bytes");
      split.shards.push_back(std::move(shard));
    }
    if (counted != split.samples)
      r.fail("split " + split.name + " to hold " + std::to_string(split.samples) + " samples; its blocks hold " + std::to_string(counted));
    index.splits.push_back(std::move(split));
  }
  if (!index.split("train")) r.fail("a train split");
  if (r.pos() != bytes.size() - 4) r.fail("the checksum right after the last split");
  return index;
}

PackIndex read_pack_index(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "index.fpk").string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open the pack index (is " + dir + " a directory written by `frugal data pack`?)");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_pack_index(buffer.str(), path);
}

namespace {

// Appends blocks to numbered shard files of one split, starting a new file past shard_bytes.
class SplitWriter {
 public:
  SplitWriter(std::string dir, std::string name, const PackOptions& options, ZSTD_CCtx* context)
      : dir_(std::move(dir)), options_(options), context_(context) {
    split_.name = std::move(name);
  }
  ~SplitWriter() { close_shard(); }

  void write_block(const std::vector<uint8_t>& raw, uint32_t samples) {
    if (fd_ < 0) open_shard();
    compressed_.resize(ZSTD_compressBound(raw.size()));
    const size_t n = ZSTD_compressCCtx(context_, compressed_.data(), compressed_.size(), raw.data(), raw.size(), options_.level);
    if (ZSTD_isError(n)) throw InternalError(std::string("zstd compression failed: ") + ZSTD_getErrorName(n));
    PackShard& shard = split_.shards.back();
    PackBlock block{shard.file_bytes, n, samples, uint32_t(crc32(0, compressed_.data(), uInt(n)))};
    write_all(compressed_.data(), n, block.offset);
    shard.file_bytes += n;
    shard.blocks.push_back(block);
    split_.samples += samples;
    raw_bytes += raw.size();
    if (int64_t(shard.file_bytes) >= options_.shard_bytes) close_shard();
  }
  PackSplit finish() {
    close_shard();
    return split_;
  }
  uint64_t raw_bytes = 0;

 private:
  void open_shard() {
    char name[64];
    std::snprintf(name, sizeof name, "%s-%05zu.shard", split_.name.c_str(), split_.shards.size());
    path_ = (std::filesystem::path(dir_) / name).string();
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd_ < 0) fail_system(path_ + ": cannot create the shard", errno);
    PackShard shard;
    shard.file = name;
    shard.file_bytes = 16;
    split_.shards.push_back(shard);
    const char header[16] = {'F', 'P', 'K', 'S', 'H', 'A', 'R', 'D'};  // fingerprint patched in at the end
    write_all(header, 16, 0);
  }
  void close_shard() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void write_all(const void* data, size_t n, uint64_t offset) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::pwrite(fd_, p, n, off_t(offset));
      if (w < 0) fail_system(path_ + ": cannot write the shard", errno);
      p += w, n -= size_t(w), offset += uint64_t(w);
    }
  }
  std::string dir_, path_;
  const PackOptions& options_;
  ZSTD_CCtx* context_;
  PackSplit split_;
  int fd_ = -1;
  std::vector<uint8_t> compressed_;
};

void check_split(const Dataset& set, const char* name, DType dtype, const Shape& sample, int64_t classes) {
  if (!set.inputs.defined()) return;
  Shape shape(set.inputs.shape().begin() + 1, set.inputs.shape().end());
  if (set.inputs.dtype() != dtype || shape != sample)
    throw InputError(std::string("the ") + name + " split holds " + std::string(dtype_name(set.inputs.dtype())) + " " + shape_str(shape) +
                     " samples; the training split " + std::string(dtype_name(dtype)) + " " + shape_str(sample));
  for (int64_t label : set.targets.to_vector<int64_t>())
    if (label < 0 || label >= classes)
      throw InputError(std::string("the ") + name + " split has label " + std::to_string(label) + ", outside 0.." +
                       std::to_string(classes - 1));
}

}  // namespace

PackReport write_pack(const std::string& dir, const Dataset& train, const Dataset& val, const Dataset& test,
                      int64_t classes, const std::vector<std::string>& label_names, const PackOptions& options) {
  FRUGAL_CHECK(train.inputs.defined() && train.size() > 0, "write_pack needs a training split");
  if (train.inputs.dtype() != DType::u8 && train.inputs.dtype() != DType::f32)
    throw InputError("packed inputs are u8 or f32, not " + std::string(dtype_name(train.inputs.dtype())));
  if (options.block_samples < 1 || options.shard_bytes < 1 || options.repeat < 1)
    throw InputError("pack options: block size, shard size and repeat must be positive");
  std::filesystem::create_directories(dir);
  const std::string index_path = (std::filesystem::path(dir) / "index.fpk").string();
  if (std::filesystem::exists(index_path)) throw InputError(index_path + ": already exists; pack into a new directory");

  PackIndex index;
  index.dtype = train.inputs.dtype();
  index.sample_shape = Shape(train.inputs.shape().begin() + 1, train.inputs.shape().end());
  index.classes = classes;
  index.label_names = label_names;
  index.block_samples = options.block_samples;
  check_split(train, "train", index.dtype, index.sample_shape, classes);
  check_split(val, "val", index.dtype, index.sample_shape, classes);
  check_split(test, "test", index.dtype, index.sample_shape, classes);
  {  // the statistics the in-memory path would fit on the same split (repeats do not change them)
    Tensor f32 = index.dtype == DType::u8 ? unit_float(train.inputs) : train.inputs;
    Normalizer scalar = Normalizer::fit(f32, false), features = Normalizer::fit(f32, true);
    index.mean = scalar.mean.to_vector<float>()[0];
    index.std = scalar.std.to_vector<float>()[0];
    index.feature_mean = features.mean.to_vector<float>();
    index.feature_std = features.std.to_vector<float>();
  }

  PackReport report;
  ZSTD_CCtx* context = ZSTD_createCCtx();
  try {
    const int64_t sample_bytes = shape_numel(index.sample_shape) * int64_t(dtype_size(index.dtype));
    for (auto [set, name, repeat] : {std::tuple{&train, "train", options.repeat}, std::tuple{&val, "val", int64_t(1)},
                                     std::tuple{&test, "test", int64_t(1)}}) {
      if (!set->inputs.defined() || set->size() == 0) continue;
      Tensor inputs = set->inputs.contiguous();
      const auto* pixels = static_cast<const uint8_t*>(inputs.raw_data());
      std::vector<int64_t> labels = set->targets.to_vector<int64_t>();
      SplitWriter writer(dir, name, options, context);
      const int64_t n = set->size(), total = n * repeat;
      std::vector<uint8_t> raw;
      for (int64_t first = 0; first < total; first += options.block_samples) {
        const int64_t count = std::min(options.block_samples, total - first);
        raw.resize(size_t(count * (4 + sample_bytes)));
        for (int64_t i = 0; i < count; ++i) {
          const int64_t row = (first + i) % n;
          const int32_t label = int32_t(labels[size_t(row)]);
          std::memcpy(raw.data() + i * 4, &label, 4);
          std::memcpy(raw.data() + count * 4 + i * sample_bytes, pixels + row * sample_bytes, size_t(sample_bytes));
        }
        writer.write_block(raw, uint32_t(count));
      }
      report.raw_bytes += writer.raw_bytes;
      index.splits.push_back(writer.finish());
    }
  } catch (...) {
    ZSTD_freeCCtx(context);
    throw;
  }
  ZSTD_freeCCtx(context);

  uint64_t hash = 0xcbf29ce484222325ull;
  const uint8_t code = dtype_code(index.dtype);
  hash = fnv1a(hash, &code, 1);
  hash = fnv1a(hash, index.sample_shape.data(), index.sample_shape.size() * 8);
  hash = fnv1a(hash, &index.classes, 8);
  for (const PackSplit& split : index.splits) {
    hash = fnv1a(hash, split.name.data(), split.name.size());
    for (const PackShard& shard : split.shards)
      for (const PackBlock& block : shard.blocks) {
        hash = fnv1a(hash, &block.samples, 4);
        hash = fnv1a(hash, &block.crc, 4);
      }
  }
  index.fingerprint = hash;
  for (const PackSplit& split : index.splits)
    for (const PackShard& shard : split.shards) {
      const std::string path = (std::filesystem::path(dir) / shard.file).string();
      const int fd = ::open(path.c_str(), O_WRONLY);
      if (fd < 0) fail_system(path + ": cannot reopen the shard", errno);
      const bool ok = ::pwrite(fd, &hash, 8, 8) == 8;
      const int error = errno;
      ::close(fd);
      if (!ok) fail_system(path + ": cannot write the shard header", error);
      report.packed_bytes += shard.file_bytes;
    }
  const std::string bytes = serialize_pack_index(index);
  const std::string tmp = index_path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    if (!out.flush()) fail_system(tmp + ": cannot write the pack index", errno);
  }
  std::filesystem::rename(tmp, index_path);  // the index appears only once every shard is complete
  report.packed_bytes += bytes.size();
  report.index = std::move(index);
  return report;
}

}  // namespace frugal::data
