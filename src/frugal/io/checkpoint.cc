// Checkpoint writer, reader and directory scan (format in checkpoint.h), plus the XXH64 checksum
// and the Young/Daly interval. The reader trusts nothing: sizes and offsets are checked (with
// overflow checks) before use, and the checksum before the header is believed.
// Limits: little-endian hosts only; the whole file is held in memory while reading and hashing.
#include "frugal/io/checkpoint.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "frugal/base/timer.h"
#include "frugal/io/file_util.h"

namespace frugal::io {
namespace {

static_assert(std::endian::native == std::endian::little, "checkpoint integers are little-endian");

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'F', 'R', 'U', 'G', 'A', 'L', 'C', 'K'};
constexpr uint64_t kFixedBytes = 20;    // magic, version, header length
constexpr uint64_t kTrailerBytes = 16;  // checksum, magic
constexpr uint64_t kAlign = 64;
constexpr char kNamePrefix[] = "checkpoint-";
constexpr char kNameSuffix[] = ".fck";

uint64_t round_up(uint64_t n, uint64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

std::string hex64(uint64_t value) {
  char text[19];
  std::snprintf(text, sizeof text, "0x%016llx", static_cast<unsigned long long>(value));
  return text;
}

// ---- XXH64 (from the published algorithm description) ----

constexpr uint64_t kPrime1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t kPrime2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kPrime3 = 0x165667B19E3779F9ull;
constexpr uint64_t kPrime4 = 0x85EBCA77C2B2AE63ull;
constexpr uint64_t kPrime5 = 0x27D4EB2F165667C5ull;

uint64_t read_u64(const unsigned char* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }
uint32_t read_u32(const unsigned char* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }

uint64_t xxh_round(uint64_t lane, uint64_t input) {
  lane += input * kPrime2;
  return std::rotl(lane, 31) * kPrime1;
}

uint64_t xxh_merge(uint64_t hash, uint64_t lane) {
  hash ^= xxh_round(0, lane);
  return hash * kPrime1 + kPrime4;
}

// ---- File names ----

// The step a checkpoint file name encodes ("checkpoint-<digits>.fck"), or -1 for any other name.
int64_t step_of_name(const std::string& name) {
  const size_t prefix = sizeof kNamePrefix - 1, suffix = sizeof kNameSuffix - 1;
  if (name.size() <= prefix + suffix || name.compare(0, prefix, kNamePrefix) != 0 ||
      name.compare(name.size() - suffix, suffix, kNameSuffix) != 0)
    return -1;
  const std::string digits = name.substr(prefix, name.size() - prefix - suffix);
  if (digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return -1;
  return std::stoll(digits);
}

// ---- Reading ----

DType parse_dtype_name(const std::string& path, const std::string& where, const nlohmann::json& value) {
  constexpr DType kAll[] = {DType::f32, DType::f64, DType::bf16, DType::f16,
                            DType::i8,  DType::u8,  DType::i32,  DType::i64};
  std::string allowed;
  for (DType d : kAll) {
    if (value.is_string() && value.get<std::string>() == dtype_name(d)) return d;
    allowed += std::string(allowed.empty() ? "" : ", ") + std::string(dtype_name(d));
  }
  fail(path, where + ": unknown dtype " + value.dump() + ", expected one of " + allowed);
}

uint64_t checked_uint(const std::string& path, const std::string& where, const nlohmann::json& value) {
  if (!value.is_number_unsigned()) fail(path, where + " must be a non-negative integer, got " + value.dump());
  return value.get<uint64_t>();
}

const nlohmann::json& required(const std::string& path, const nlohmann::json& object, const std::string& where,
                               const char* key) {
  auto it = object.find(key);
  if (it == object.end()) fail(path, where + " has no \"" + key + "\"");
  return *it;
}

}  // namespace

// ---- XXH64 ----

Xxh64::Xxh64(uint64_t seed) : seed_(seed) {
  lanes_[0] = seed + kPrime1 + kPrime2;
  lanes_[1] = seed + kPrime2;
  lanes_[2] = seed;
  lanes_[3] = seed - kPrime1;
}

void Xxh64::update(const void* data, size_t size) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  total_ += size;
  if (buffered_ > 0) {  // finish the partial 32-byte stripe first
    size_t take = std::min(size, 32 - buffered_);
    std::memcpy(buffer_ + buffered_, p, take);
    buffered_ += take;
    p += take;
    size -= take;
    if (buffered_ < 32) return;
    for (int i = 0; i < 4; ++i) lanes_[i] = xxh_round(lanes_[i], read_u64(buffer_ + 8 * i));
    buffered_ = 0;
  }
  uint64_t v0 = lanes_[0], v1 = lanes_[1], v2 = lanes_[2], v3 = lanes_[3];
  for (; size >= 32; p += 32, size -= 32) {
    v0 = xxh_round(v0, read_u64(p));
    v1 = xxh_round(v1, read_u64(p + 8));
    v2 = xxh_round(v2, read_u64(p + 16));
    v3 = xxh_round(v3, read_u64(p + 24));
  }
  lanes_[0] = v0, lanes_[1] = v1, lanes_[2] = v2, lanes_[3] = v3;
  std::memcpy(buffer_, p, size);
  buffered_ = size;
}

uint64_t Xxh64::digest() const {
  uint64_t hash;
  if (total_ >= 32) {
    hash = std::rotl(lanes_[0], 1) + std::rotl(lanes_[1], 7) + std::rotl(lanes_[2], 12) + std::rotl(lanes_[3], 18);
    for (uint64_t lane : lanes_) hash = xxh_merge(hash, lane);
  } else {
    hash = seed_ + kPrime5;
  }
  hash += total_;
  const unsigned char* p = buffer_;
  size_t left = buffered_;
  for (; left >= 8; p += 8, left -= 8) hash = std::rotl(hash ^ xxh_round(0, read_u64(p)), 27) * kPrime1 + kPrime4;
  if (left >= 4) {
    hash = std::rotl(hash ^ (uint64_t(read_u32(p)) * kPrime1), 23) * kPrime2 + kPrime3;
    p += 4;
    left -= 4;
  }
  for (; left > 0; ++p, --left) hash = std::rotl(hash ^ (uint64_t(*p) * kPrime5), 11) * kPrime1;
  hash ^= hash >> 33;
  hash *= kPrime2;
  hash ^= hash >> 29;
  hash *= kPrime3;
  hash ^= hash >> 32;
  return hash;
}

uint64_t xxh64(const void* data, size_t size, uint64_t seed) {
  Xxh64 h(seed);
  h.update(data, size);
  return h.digest();
}

// ---- Files ----

std::string checkpoint_file_name(int64_t step) {
  FRUGAL_CHECK(step >= 0, "checkpoint step must be >= 0, got " + std::to_string(step));
  std::string digits = std::to_string(step);
  if (digits.size() < 12) digits.insert(0, 12 - digits.size(), '0');
  return kNamePrefix + digits + kNameSuffix;
}

CheckpointWrite write_checkpoint(const std::string& dir, const CheckpointState& state, int keep) {
  Timer timer;
  FRUGAL_CHECK(keep >= 1, "write_checkpoint: keep must be >= 1, got " + std::to_string(keep));
  const std::string path = (fs::path(dir) / checkpoint_file_name(state.step)).string();
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) fail(dir, "cannot create the checkpoint directory: " + error.message());

  // Layout: tensors packed in the given order, each starting on a 64-byte boundary.
  nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
  std::vector<Tensor> packed;  // keeps contiguous copies alive until written
  std::vector<uint64_t> offsets;
  std::set<std::string> names;
  uint64_t data_bytes = 0;
  for (const auto& [name, tensor] : state.tensors) {
    FRUGAL_CHECK(tensor.defined(), "write_checkpoint: tensor '" + name + "' is undefined");
    FRUGAL_CHECK(names.insert(name).second, "write_checkpoint: tensor name '" + name + "' given twice");
    Tensor t = tensor.contiguous();
    const uint64_t offset = round_up(data_bytes, kAlign);
    tensors.push_back({{"name", name},
                       {"dtype", std::string(dtype_name(t.dtype()))},
                       {"shape", t.shape()},
                       {"offset", offset},
                       {"length", uint64_t(t.nbytes())}});
    offsets.push_back(offset);
    data_bytes = offset + t.nbytes();
    packed.push_back(t);
  }
  nlohmann::ordered_json header = {{"step", state.step},        {"job_hash", state.job_hash},
                                   {"data_bytes", data_bytes},  {"tensors", tensors},
                                   {"values", state.values}};
  const std::string text = header.dump();
  const uint64_t header_bytes = text.size();
  const uint64_t data_start = round_up(kFixedBytes + header_bytes, kAlign);

  unsigned char fixed[kFixedBytes];
  std::memcpy(fixed, kMagic, 8);
  std::memcpy(fixed + 8, &kCheckpointVersion, 4);
  std::memcpy(fixed + 12, &header_bytes, 8);
  static const char kZeros[kAlign] = {};

  uint64_t written = 0;
  write_file_atomic(path, [&](const WriteBytes& write) {
    Xxh64 checksum;
    // Every byte goes through here, so the checksum covers exactly what is in the file.
    auto emit = [&](const void* bytes, size_t size) {
      checksum.update(bytes, size);
      write(bytes, size);
      written += size;
    };
    emit(fixed, kFixedBytes);
    emit(text.data(), text.size());
    emit(kZeros, data_start - written);
    for (size_t i = 0; i < packed.size(); ++i) {
      emit(kZeros, data_start + offsets[i] - written);
      if (packed[i].nbytes() > 0) emit(packed[i].raw_data(), packed[i].nbytes());
    }
    FRUGAL_CHECK(written == data_start + data_bytes, "write_checkpoint: layout and bytes written disagree");
    unsigned char trailer[kTrailerBytes];
    const uint64_t digest = checksum.digest();
    std::memcpy(trailer, &digest, 8);
    std::memcpy(trailer + 8, kMagic, 8);
    write(trailer, kTrailerBytes);
    written += kTrailerBytes;
  });

  // The new file is durable: now older checkpoints beyond `keep` and torn .tmp files may go.
  CheckpointWrite result;
  result.path = path;
  result.bytes = int64_t(written);
  std::vector<std::pair<int64_t, fs::path>> older;
  std::vector<fs::path> stale;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    const size_t tmp_suffix = 4;  // ".tmp"
    if (name.size() > tmp_suffix && name.compare(name.size() - tmp_suffix, tmp_suffix, ".tmp") == 0 &&
        step_of_name(name.substr(0, name.size() - tmp_suffix)) >= 0) {
      stale.push_back(entry.path());
      continue;
    }
    const int64_t step = step_of_name(name);
    if (step >= 0 && step < state.step) older.emplace_back(step, entry.path());
  }
  if (error) result.warnings.push_back(dir + ": cannot list to remove old checkpoints: " + error.message());
  std::sort(older.begin(), older.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t i = size_t(keep - 1); i < older.size(); ++i) stale.push_back(older[i].second);
  for (const fs::path& victim : stale) {
    if (fs::remove(victim, error)) {
      result.removed.push_back(victim.string());
    } else if (error) {
      result.warnings.push_back(victim.string() + ": cannot remove: " + error.message());
    }
  }
  result.seconds = timer.seconds();
  return result;
}

CheckpointState read_checkpoint(const std::string& path) { return parse_checkpoint(read_whole_file(path), path); }

CheckpointState parse_checkpoint(std::shared_ptr<Storage> buffer, const std::string& path) {
  const unsigned char* bytes = static_cast<const unsigned char*>(buffer->data());
  const uint64_t size = buffer->bytes();
  const std::string at_end = "truncated at byte " + std::to_string(size);

  if (size < 8) fail(path, at_end + ": too short for the 8-byte magic");
  if (std::memcmp(bytes, kMagic, 8) != 0) fail(path, "not a frugal checkpoint: bytes 0-7 are not \"FRUGALCK\"");
  if (size < kFixedBytes) fail(path, at_end + ": too short for the version and header length (bytes 8-19)");
  const uint32_t version = read_u32(bytes + 8);
  if (version != kCheckpointVersion)
    fail(path, "unknown format version " + std::to_string(version) + " at byte offset 8 (this frugal reads version " +
                   std::to_string(kCheckpointVersion) + ")");
  const uint64_t header_bytes = read_u64(bytes + 12);
  if (header_bytes > size - kFixedBytes)
    fail(path, at_end + ": the header length " + std::to_string(header_bytes) +
                   " (bytes 12-19) reaches past the end of the file");

  // The header, if it parses, says how long the file must be: that tells a truncated file (the
  // common case after a crash) from a corrupt one. It is not believed further before the checksum.
  nlohmann::json header;
  std::string parse_error;
  try {
    header = nlohmann::json::parse(bytes + kFixedBytes, bytes + kFixedBytes + header_bytes);
  } catch (const nlohmann::json::parse_error& e) {
    const uint64_t at = kFixedBytes + (e.byte > 0 ? e.byte - 1 : 0);  // e.byte is 1-based
    std::string what = e.what();
    size_t colon = what.find(": ");  // drop "[json.exception.parse_error.101] parse error at ...: "
    if (colon != std::string::npos) what = what.substr(colon + 2);
    parse_error = "header is not valid JSON at byte offset " + std::to_string(at) + ": " + what;
  } catch (const nlohmann::json::out_of_range& e) {  // a number beyond double's range, e.g. 1e999
    std::string what = e.what();
    size_t bracket = what.find("] ");  // drop "[json.exception.out_of_range.406] "
    if (bracket != std::string::npos) what = what.substr(bracket + 2);
    parse_error = "header (bytes " + std::to_string(kFixedBytes) + "-" + std::to_string(kFixedBytes + header_bytes - 1) +
                  ") is not valid JSON: " + what;
  }
  const uint64_t data_start = round_up(kFixedBytes + header_bytes, kAlign);
  uint64_t data_bytes = 0;
  if (parse_error.empty() && !header.is_object()) parse_error = "header at byte offset 20 must be a JSON object";
  if (parse_error.empty() && !(header.contains("data_bytes") && header["data_bytes"].is_number_unsigned()))
    parse_error = "header: data_bytes must be a non-negative integer";
  if (parse_error.empty()) {
    data_bytes = header["data_bytes"].get<uint64_t>();
    if (data_bytes > size) fail(path, at_end + ": the header describes " + std::to_string(data_bytes) + " data bytes");
    const uint64_t expected = data_start + data_bytes + kTrailerBytes;
    if (size < expected) fail(path, at_end + ": the header describes a file of " + std::to_string(expected) + " bytes");
    if (size > expected)
      fail(path, "file is " + std::to_string(size) + " bytes but the header describes " + std::to_string(expected) +
                     " (" + std::to_string(size - expected) + " unexpected bytes at the end)");
  } else if (size < kFixedBytes + header_bytes + kTrailerBytes) {
    fail(path, at_end + ": no room for the checksum and trailing magic after the header");
  }
  if (std::memcmp(bytes + size - 8, kMagic, 8) != 0)
    fail(path, "no trailing magic \"FRUGALCK\" at byte offset " + std::to_string(size - 8) +
                   ": the file is truncated or corrupt");
  const uint64_t stored = read_u64(bytes + size - kTrailerBytes);
  const uint64_t computed = xxh64(bytes, size - kTrailerBytes);
  if (stored != computed)
    fail(path, "checksum mismatch: stored " + hex64(stored) + " at byte offset " + std::to_string(size - kTrailerBytes) +
                   ", computed " + hex64(computed) + " over bytes 0-" + std::to_string(size - kTrailerBytes - 1) +
                   "; the file is corrupt");
  if (!parse_error.empty()) fail(path, parse_error);

  // The checksum holds, so the bytes are what a writer wrote; still check the header describes a
  // valid layout, as a buggy or foreign writer could have produced it.
  CheckpointState state;
  const nlohmann::json& step = required(path, header, "header", "step");
  if (!step.is_number_integer() || step.get<int64_t>() < 0)
    fail(path, "header: step must be a non-negative integer, got " + step.dump());
  state.step = step.get<int64_t>();
  const nlohmann::json& job_hash = required(path, header, "header", "job_hash");
  if (!job_hash.is_string()) fail(path, "header: job_hash must be a string, got " + job_hash.dump());
  state.job_hash = job_hash.get<std::string>();
  const nlohmann::json& values = required(path, header, "header", "values");
  if (!values.is_object()) fail(path, "header: values must be an object of strings");
  for (const auto& [key, value] : values.items()) {
    if (!value.is_string()) fail(path, "header: values[\"" + key + "\"] must be a string, got " + value.dump());
    state.values[key] = value.get<std::string>();
  }

  const nlohmann::json& tensors = required(path, header, "header", "tensors");
  if (!tensors.is_array()) fail(path, "header: tensors must be an array");
  std::set<std::string> names;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [begin, end) within the data section
  for (size_t i = 0; i < tensors.size(); ++i) {
    const nlohmann::json& info = tensors[i];
    std::string where = "header: tensors[" + std::to_string(i) + "]";
    if (!info.is_object()) fail(path, where + " must be an object");
    const nlohmann::json& name = required(path, info, where, "name");
    if (!name.is_string()) fail(path, where + ": name must be a string, got " + name.dump());
    where += " '" + name.get<std::string>() + "'";
    if (!names.insert(name.get<std::string>()).second) fail(path, where + ": name appears twice");
    const DType dtype = parse_dtype_name(path, where, required(path, info, where, "dtype"));
    const nlohmann::json& shape_json = required(path, info, where, "shape");
    if (!shape_json.is_array()) fail(path, where + ": shape must be an array, got " + shape_json.dump());
    Shape shape;
    uint64_t numel = 1;
    bool overflow = false;
    for (size_t d = 0; d < shape_json.size(); ++d) {
      const uint64_t dim = checked_uint(path, where + ": shape[" + std::to_string(d) + "]", shape_json[d]);
      if (dim > uint64_t(INT64_MAX) || (dim != 0 && numel > uint64_t(INT64_MAX) / dim)) overflow = true;
      numel = overflow ? 0 : numel * dim;
      shape.push_back(int64_t(dim));
    }
    if (overflow || numel > uint64_t(INT64_MAX) / dtype_size(dtype))
      fail(path, where + ": shape " + shape_json.dump() + " is too large");
    const uint64_t offset = checked_uint(path, where + ": offset", required(path, info, where, "offset"));
    const uint64_t length = checked_uint(path, where + ": length", required(path, info, where, "length"));
    if (length != numel * dtype_size(dtype))
      fail(path, where + ": length " + std::to_string(length) + " but shape " + shape_str(shape) + " x " +
                     std::string(dtype_name(dtype)) + " needs " + std::to_string(numel * dtype_size(dtype)));
    if (offset % kAlign != 0) fail(path, where + ": offset " + std::to_string(offset) + " is not a multiple of 64");
    if (offset > data_bytes || length > data_bytes - offset)
      fail(path, where + ": bytes [" + std::to_string(offset) + ", " + std::to_string(offset + length) +
                     ") go past the data section (" + std::to_string(data_bytes) + " bytes)");
    ranges.emplace_back(offset, offset + length);
    Tensor t;
    if (length == 0) {
      t = Tensor::empty(shape, dtype);
    } else {  // the buffer is 64-byte aligned and so are data_start and offset
      t = Tensor::from_blob(const_cast<unsigned char*>(bytes) + data_start + offset, shape, dtype, buffer);
    }
    t.impl()->name = name.get<std::string>();
    state.tensors.emplace_back(name.get<std::string>(), t);
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t covered = 0;  // end of the data seen so far; empty tensors occupy nothing
  for (const auto& [begin, end] : ranges) {
    if (begin == end) continue;
    if (begin < covered)
      fail(path, "header: tensor data at [" + std::to_string(begin) + ", " + std::to_string(end) +
                     ") overlaps another tensor's");
    covered = end;
  }
  return state;
}

std::optional<LatestCheckpoint> load_latest_checkpoint(const std::string& dir) {
  std::error_code error;
  if (!fs::exists(dir, error)) return std::nullopt;
  if (!fs::is_directory(dir, error)) fail(dir, "is not a directory (expected a checkpoint directory)");
  std::vector<std::pair<int64_t, std::string>> candidates;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, error)) {
    const int64_t step = step_of_name(entry.path().filename().string());
    if (step >= 0) candidates.emplace_back(step, entry.path().string());
  }
  if (error) fail(dir, "cannot list the checkpoint directory: " + error.message());
  if (candidates.empty()) return std::nullopt;
  std::sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });

  LatestCheckpoint latest;
  for (const auto& [step, path] : candidates) {
    try {
      CheckpointState state = read_checkpoint(path);
      if (state.step != step)
        fail(path, "the header says step " + std::to_string(state.step) + " but the file name says step " +
                       std::to_string(step) + " (renamed?)");
      latest.path = path;
      latest.state = std::move(state);
      return latest;
    } catch (const InputError& e) {
      latest.warnings.push_back(std::string("skipped bad checkpoint ") + e.what());
    }
  }
  std::string message = dir + ": none of the " + std::to_string(candidates.size()) + " checkpoints is usable:";
  for (const std::string& warning : latest.warnings)
    message += "\n  " + warning.substr(std::strlen("skipped bad checkpoint "));
  throw InputError(message);
}

// ---- When to checkpoint ----

double young_daly_interval(double checkpoint_seconds, double mtbi_seconds) {
  const double c = checkpoint_seconds, m = mtbi_seconds;
  FRUGAL_CHECK(c >= 0 && m > 0, "young_daly_interval needs checkpoint_seconds >= 0 and mtbi_seconds > 0, got " +
                                    std::to_string(c) + " and " + std::to_string(m));
  if (c >= 2 * m) return m;
  const double ratio = c / (2 * m);
  return std::sqrt(2 * c * m) * (1 + std::sqrt(ratio) / 3 + ratio / 9) - c;
}

double expected_lost_seconds_per_interruption(double interval_seconds, double checkpoint_seconds) {
  FRUGAL_CHECK(interval_seconds >= 0 && checkpoint_seconds >= 0, "negative interval or checkpoint time");
  return (interval_seconds + checkpoint_seconds) / 2;
}

double expected_lost_work_fraction(double interval_seconds, double checkpoint_seconds, double mtbi_seconds) {
  FRUGAL_CHECK(mtbi_seconds > 0, "mtbi_seconds must be > 0");
  return expected_lost_seconds_per_interruption(interval_seconds, checkpoint_seconds) / mtbi_seconds;
}

double expected_waste_fraction(double interval_seconds, double checkpoint_seconds, double mtbi_seconds) {
  const double cycle = interval_seconds + checkpoint_seconds;
  FRUGAL_CHECK(cycle > 0, "interval_seconds + checkpoint_seconds must be > 0");
  return checkpoint_seconds / cycle + expected_lost_work_fraction(interval_seconds, checkpoint_seconds, mtbi_seconds);
}

}  // namespace frugal::io
