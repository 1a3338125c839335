// Checkpoint files: XXH64 against the reference library's values, the documented byte layout, round
// trips of every dtype, keep-K pruning, every truncation and every flipped byte detected, fallback to
// the previous good file with a warning, all-corrupt refused without touching anything, a writer
// killed with SIGKILL mid-write, and the Young/Daly interval against hand-computed numbers.
#include "frugal/io/checkpoint.h"
#include "frugal/io/file_util.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace frugal::io {
namespace {
namespace fs = std::filesystem;
using testing::random_tensor;

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "frugal_checkpoint_XXXXXX";
    FRUGAL_CHECK(::mkdtemp(pattern.data()) != nullptr, "mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

using frugal::testing::read_bytes;
using frugal::testing::write_bytes;


std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string packed_bytes(const Tensor& t) {
  Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.raw_data()), c.nbytes());
}


// A small state with a few tensors and values, different per step.
CheckpointState small_state(int64_t step) {
  CheckpointState state;
  state.step = step;
  state.job_hash = "job-abc123";
  state.tensors = {{"model.weight", random_tensor({3, 5}, 100 + uint64_t(step))},
                   {"model.bias", random_tensor({5}, 200 + uint64_t(step), DType::f64)},
                   {"rng", Tensor::from_vector(std::vector<int64_t>{step, 7, -1}, {3})}};
  state.values = {{"step", std::to_string(step)}, {"epoch", "1"}, {"meters", "{\"seconds\": 2.5}"}};
  return state;
}

::testing::AssertionResult same_state(const CheckpointState& actual, const CheckpointState& expected) {
  if (actual.step != expected.step) return ::testing::AssertionFailure() << "step " << actual.step;
  if (actual.job_hash != expected.job_hash) return ::testing::AssertionFailure() << "job_hash " << actual.job_hash;
  if (actual.values != expected.values) return ::testing::AssertionFailure() << "values differ";
  if (actual.tensors.size() != expected.tensors.size())
    return ::testing::AssertionFailure() << actual.tensors.size() << " tensors";
  for (size_t i = 0; i < expected.tensors.size(); ++i) {
    const auto& [name, t] = actual.tensors[i];
    const auto& [expected_name, e] = expected.tensors[i];
    if (name != expected_name) return ::testing::AssertionFailure() << "tensor " << i << " is named " << name;
    if (t.dtype() != e.dtype() || t.shape() != e.shape())
      return ::testing::AssertionFailure() << name << ": " << dtype_name(t.dtype()) << " " << shape_str(t.shape());
    if (packed_bytes(t) != packed_bytes(e)) return ::testing::AssertionFailure() << name << ": bytes differ";
  }
  return ::testing::AssertionSuccess();
}

// ---- XXH64 ----

std::string pattern_bytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = char((i * 7 + 3) & 0xFF);
  return s;
}

TEST(Xxh64, MatchesTheReferenceLibrary) {
  // Values from libxxhash 0.8.1 (XXH64 over pattern_bytes(n)) via Python ctypes; they cover every
  // tail path (0-3 bytes, 4-7, 8+) below and above the 32-byte stripe.
  struct Case { size_t size; uint64_t seed; uint64_t hash; };
  const Case cases[] = {
      {0, 0x0ull, 0xef46db3751d8e999ull},    {1, 0x0ull, 0x1f25c8d0bc1f4bb6ull},
      {3, 0x0ull, 0x31d2363f52e564c9ull},    {4, 0x0ull, 0x9bb64b7d66ee9fdaull},
      {7, 0x0ull, 0x9a7b149959ce60d8ull},    {8, 0x0ull, 0xdab99d95c6f90092ull},
      {13, 0x0ull, 0xf78b031308f5bfc8ull},   {31, 0x0ull, 0xa2aa5f33cc4a6119ull},
      {32, 0x0ull, 0x23c3c17ef790fd97ull},   {33, 0x0ull, 0x50a7cfc7ba588784ull},
      {63, 0x0ull, 0x5e3e54b431c7493cull},   {100, 0x0ull, 0xa61f8d4c170fe531ull},
      {1000, 0x0ull, 0x5f235fa033f1a3fbull}, {0, 0x2aull, 0x98b1582b0977e704ull},
      {100, 0x9e3779b97f4a7c15ull, 0xf6d8f65c625abb4full},
  };
  for (const Case& c : cases) {
    std::string data = pattern_bytes(c.size);
    EXPECT_EQ(xxh64(data.data(), data.size(), c.seed), c.hash) << "size " << c.size << " seed " << c.seed;
  }
  EXPECT_EQ(xxh64("abc", 3), 0x44bc2cf5ad770999ull);  // the published test value
}

TEST(Xxh64, StreamingInAnyPiecesEqualsOneShot) {
  const std::string data = pattern_bytes(1000);
  const uint64_t whole = xxh64(data.data(), data.size());
  for (size_t piece : {1, 3, 7, 31, 32, 33, 64, 333}) {
    Xxh64 h;
    for (size_t at = 0; at < data.size(); at += piece) h.update(data.data() + at, std::min(piece, data.size() - at));
    EXPECT_EQ(h.digest(), whole) << "pieces of " << piece;
  }
}

// ---- Format and round trips ----

TEST(Checkpoint, FileNameIsZeroPaddedStep) {
  EXPECT_EQ(checkpoint_file_name(0), "checkpoint-000000000000.fck");
  EXPECT_EQ(checkpoint_file_name(1234), "checkpoint-000000001234.fck");
  EXPECT_EQ(checkpoint_file_name(1234567890123), "checkpoint-1234567890123.fck");
}

TEST(Checkpoint, RoundTripsEveryDtypeAndValue) {
  TempDir dir;
  CheckpointState state;
  state.step = 42;
  state.job_hash = "sha256:0123456789abcdef";
  state.values = {{"epoch", "3"}, {"batch_index", "17"}, {"early_stopping", "{\"best\": 0.25, \"bad\": 2}"},
                  {"empty", ""}, {"utf8", "caf\xc3\xa9"}};
  const DType dtypes[] = {DType::f32, DType::f64, DType::bf16, DType::f16,
                          DType::i8,  DType::u8,  DType::i32,  DType::i64};
  uint64_t seed = 1;
  for (DType dtype : dtypes) {
    const bool integer = !dtype_is_float(dtype);
    const double low = integer ? 0 : -3, high = integer ? 100 : 3;
    state.tensors.emplace_back(std::string(dtype_name(dtype)), random_tensor({7, 3}, seed++, dtype, low, high));
    state.tensors.emplace_back(std::string(dtype_name(dtype)) + ".scalar", random_tensor({}, seed++, dtype, low, high));
    state.tensors.emplace_back(std::string(dtype_name(dtype)) + ".empty", Tensor::empty({0, 4}, dtype));
  }
  // Special values keep their bits; a transposed view is written packed.
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                            -0.0f, std::numeric_limits<float>::denorm_min(), 1e38f, -1.0f};
  state.tensors.emplace_back("specials", Tensor::from_vector(std::vector<float>(std::begin(specials), std::end(specials)), {6}));
  Tensor base = random_tensor({4, 6}, 99);
  state.tensors.emplace_back("transposed", base.transpose_view(0, 1));

  CheckpointWrite written = write_checkpoint(dir.path(), state, 3);
  EXPECT_EQ(written.path, dir.file("checkpoint-000000000042.fck"));
  EXPECT_EQ(written.bytes, int64_t(fs::file_size(written.path)));
  EXPECT_GE(written.seconds, 0);
  EXPECT_TRUE(written.removed.empty());
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"checkpoint-000000000042.fck"});

  CheckpointState read = read_checkpoint(written.path);
  EXPECT_TRUE(same_state(read, state));
  for (const auto& [name, t] : read.tensors) {
    if (t.numel() > 0) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u) << name;
    }
    EXPECT_EQ(t.impl()->name, name);
  }
  // The transposed view came back with the transposed values, not the storage order.
  const auto& transposed = read.tensors.back().second;
  EXPECT_EQ(transposed.shape(), (Shape{6, 4}));
  EXPECT_EQ(transposed.at({5, 2}), base.at({2, 5}));
}

TEST(Checkpoint, EmptyStateRoundTrips) {
  TempDir dir;
  CheckpointState state;
  CheckpointWrite written = write_checkpoint(dir.path(), state, 1);
  EXPECT_TRUE(same_state(read_checkpoint(written.path), state));
}

// parse_checkpoint (the fuzz target's entry point) reads a file's bytes in memory as the file.
TEST(Checkpoint, ParseReadsBytesInMemoryAsTheFile) {
  TempDir dir;
  CheckpointState state;
  state.step = 7;
  state.values = {{"epoch", "1"}};
  state.tensors.emplace_back("w", random_tensor({2, 3}, 5));
  CheckpointWrite written = write_checkpoint(dir.path(), state, 1);
  std::shared_ptr<Storage> bytes = read_whole_file(written.path);
  EXPECT_TRUE(same_state(parse_checkpoint(bytes, "in-memory"), state));
  auto cut = std::make_shared<Storage>(bytes->data(), bytes->bytes() - 1, bytes);
  EXPECT_INPUT_ERROR(parse_checkpoint(cut, "in-memory"), "in-memory: truncated at byte");
}

TEST(Checkpoint, BytesFollowTheDocumentedLayout) {
  TempDir dir;
  const std::string path = write_checkpoint(dir.path(), small_state(5), 2).path;
  const std::string bytes = read_bytes(path);
  ASSERT_GT(bytes.size(), 36u);
  EXPECT_EQ(bytes.substr(0, 8), "FRUGALCK");
  uint32_t version;
  uint64_t header_bytes;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&header_bytes, bytes.data() + 12, 8);
  EXPECT_EQ(version, 1u);
  nlohmann::json header = nlohmann::json::parse(bytes.substr(20, header_bytes));
  EXPECT_EQ(header["step"], 5);
  EXPECT_EQ(header["job_hash"], "job-abc123");
  EXPECT_EQ(header["values"]["epoch"], "1");
  const uint64_t data_start = (20 + header_bytes + 63) / 64 * 64;
  const uint64_t data_bytes = header["data_bytes"].get<uint64_t>();
  EXPECT_EQ(bytes.size(), data_start + data_bytes + 16);
  for (uint64_t i = 20 + header_bytes; i < data_start; ++i) EXPECT_EQ(bytes[i], '\0') << "padding byte " << i;

  const CheckpointState state = small_state(5);
  ASSERT_EQ(header["tensors"].size(), state.tensors.size());
  for (size_t i = 0; i < state.tensors.size(); ++i) {
    const nlohmann::json& info = header["tensors"][i];
    const Tensor& t = state.tensors[i].second;
    EXPECT_EQ(info["name"], state.tensors[i].first);
    EXPECT_EQ(info["dtype"], std::string(dtype_name(t.dtype())));
    EXPECT_EQ(info["shape"].get<Shape>(), t.shape());
    const uint64_t offset = info["offset"].get<uint64_t>(), length = info["length"].get<uint64_t>();
    EXPECT_EQ(offset % 64, 0u);
    EXPECT_EQ(length, t.nbytes());
    EXPECT_EQ(bytes.substr(data_start + offset, length), packed_bytes(t)) << info["name"];
  }
  uint64_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - 16, 8);
  EXPECT_EQ(stored, xxh64(bytes.data(), bytes.size() - 16));
  EXPECT_EQ(bytes.substr(bytes.size() - 8), "FRUGALCK");
}

// ---- Pruning ----

TEST(Checkpoint, KeepsTheNewestKAndRemovesTheRest) {
  TempDir dir;
  for (int64_t step = 1; step <= 6; ++step) {
    CheckpointWrite written = write_checkpoint(dir.path(), small_state(step * 10), 3);
    if (step == 4) {
      EXPECT_EQ(written.removed, std::vector<std::string>{dir.file("checkpoint-000000000010.fck")});
    }
    EXPECT_TRUE(written.warnings.empty());
  }
  EXPECT_EQ(list_dir(dir.path()), (std::vector<std::string>{"checkpoint-000000000040.fck", "checkpoint-000000000050.fck",
                                                            "checkpoint-000000000060.fck"}));
  write_checkpoint(dir.path(), small_state(70), 1);
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"checkpoint-000000000070.fck"});
  EXPECT_TRUE(same_state(read_checkpoint(dir.file("checkpoint-000000000070.fck")), small_state(70)));
}

TEST(Checkpoint, PruningSparesLaterStepsOtherFilesAndRemovesStaleTmp) {
  TempDir dir;
  write_checkpoint(dir.path(), small_state(1), 5);
  write_checkpoint(dir.path(), small_state(2), 5);
  write_checkpoint(dir.path(), small_state(9), 5);  // a run that went further, then resumed from step 2
  write_bytes(dir.file("checkpoint-000000000003.fck.tmp"), "torn");
  write_bytes(dir.file("notes.txt"), "keep me");
  CheckpointWrite written = write_checkpoint(dir.path(), small_state(3), 1);
  EXPECT_EQ(list_dir(dir.path()),
            (std::vector<std::string>{"checkpoint-000000000003.fck", "checkpoint-000000000009.fck", "notes.txt"}));
  EXPECT_EQ(written.removed.size(), 2u);  // step 1 and 2; the .tmp was overwritten and renamed
  write_bytes(dir.file("checkpoint-000000000001.fck.tmp"), "torn");
  written = write_checkpoint(dir.path(), small_state(4), 2);
  EXPECT_EQ(list_dir(dir.path()), (std::vector<std::string>{"checkpoint-000000000003.fck", "checkpoint-000000000004.fck",
                                                            "checkpoint-000000000009.fck", "notes.txt"}));
  EXPECT_EQ(written.removed, std::vector<std::string>{dir.file("checkpoint-000000000001.fck.tmp")});
}

TEST(Checkpoint, RewritingTheSameStepReplacesIt) {
  TempDir dir;
  CheckpointState first = small_state(8), second = small_state(8);
  second.values["epoch"] = "2";
  write_checkpoint(dir.path(), first, 2);
  write_checkpoint(dir.path(), second, 2);
  EXPECT_EQ(list_dir(dir.path()).size(), 1u);
  EXPECT_TRUE(same_state(read_checkpoint(dir.file(checkpoint_file_name(8))), second));
}

TEST(Checkpoint, CreatesTheDirectoryAndReportsAnUnwritableOne) {
  TempDir dir;
  const std::string nested = dir.file("a/b");
  EXPECT_EQ(write_checkpoint(nested, small_state(1), 1).path, nested + "/checkpoint-000000000001.fck");
  write_bytes(dir.file("plain"), "x");
  EXPECT_INPUT_ERROR(write_checkpoint(dir.file("plain"), small_state(1), 1), dir.file("plain"));
}

// ---- Damage detection ----

TEST(Checkpoint, EveryTruncationIsReportedWithItsLength) {
  TempDir dir;
  const std::string good = write_checkpoint(dir.path(), small_state(3), 1).path;
  const std::string bytes = read_bytes(good);
  const std::string cut = dir.file("cut.fck");
  for (size_t size = 0; size < bytes.size(); ++size) {
    write_bytes(cut, bytes.substr(0, size));
    SCOPED_TRACE("cut at " + std::to_string(size));
    EXPECT_INPUT_ERROR(read_checkpoint(cut), cut + ": ", "truncated at byte " + std::to_string(size));
  }
}

TEST(Checkpoint, EveryFlippedByteIsDetected) {
  TempDir dir;
  const std::string good = write_checkpoint(dir.path(), small_state(3), 1).path;
  const std::string bytes = read_bytes(good);
  const std::string bad = dir.file("bad.fck");
  int checksum_errors = 0;
  for (unsigned char mask : {0x01, 0x80, 0xFF}) {
    for (size_t at = 0; at < bytes.size(); ++at) {
      std::string flipped = bytes;
      flipped[at] = char(flipped[at] ^ mask);
      write_bytes(bad, flipped);
      try {
        read_checkpoint(bad);
        ADD_FAILURE() << "flipping byte " << at << " with mask " << int(mask) << " went unnoticed";
      } catch (const InputError& e) {
        EXPECT_EQ(std::string(e.what()).rfind(bad + ": ", 0), 0u) << e.what();
        if (std::string(e.what()).find("checksum mismatch") != std::string::npos) ++checksum_errors;
      }
    }
  }
  EXPECT_GT(checksum_errors, int(bytes.size()));  // the data and most header bytes end at the checksum
}

TEST(Checkpoint, NamesEachKindOfDamage) {
  TempDir dir;
  const std::string good = write_checkpoint(dir.path(), small_state(3), 1).path;
  const std::string bytes = read_bytes(good);
  const std::string bad = dir.file("bad.fck");

  write_bytes(bad, "PK\x03\x04" + bytes.substr(4));
  EXPECT_INPUT_ERROR(read_checkpoint(bad), bad, "not a frugal checkpoint");
  std::string v2 = bytes;
  v2[8] = 2;
  write_bytes(bad, v2);
  EXPECT_INPUT_ERROR(read_checkpoint(bad), bad, "unknown format version 2", "reads version 1");
  write_bytes(bad, bytes + "extra");
  EXPECT_INPUT_ERROR(read_checkpoint(bad), bad, "5 unexpected bytes at the end");
  std::string data_flip = bytes;
  data_flip[bytes.size() - 20] ^= 0x10;  // last data byte
  write_bytes(bad, data_flip);
  EXPECT_INPUT_ERROR(read_checkpoint(bad), bad, "checksum mismatch");
  std::string trailer = bytes;
  trailer[bytes.size() - 1] = 'X';
  write_bytes(bad, trailer);
  EXPECT_INPUT_ERROR(read_checkpoint(bad), bad, "no trailing magic");
  EXPECT_INPUT_ERROR(read_checkpoint(dir.file("missing.fck")), dir.file("missing.fck"), "cannot open");
}

// A file with a correct checksum around a hand-written header: what a buggy writer could produce.
std::string forged_file(const std::string& header, const std::string& data) {
  std::string out = "FRUGALCK";
  const uint32_t version = 1;
  const uint64_t header_bytes = header.size();
  out.append(reinterpret_cast<const char*>(&version), 4).append(reinterpret_cast<const char*>(&header_bytes), 8);
  out += header;
  out.append((64 - out.size() % 64) % 64, '\0');
  out += data;
  const uint64_t checksum = xxh64(out.data(), out.size());
  out.append(reinterpret_cast<const char*>(&checksum), 8);
  return out + "FRUGALCK";
}

TEST(Checkpoint, ValidatesTheHeaderBehindAGoodChecksum) {
  TempDir dir;
  const std::string bad = dir.file("forged.fck");
  auto header = [](const std::string& tensors, uint64_t data_bytes) {
    return "{\"step\": 1, \"job_hash\": \"h\", \"values\": {}, \"data_bytes\": " + std::to_string(data_bytes) +
           ", \"tensors\": [" + tensors + "]}";
  };
  const std::string data(128, '\0');
  write_bytes(bad, forged_file(header("", 128), data));
  EXPECT_EQ(read_checkpoint(bad).tensors.size(), 0u);  // the forging itself is right

  write_bytes(bad, forged_file(header(R"({"name": "w", "dtype": "q7", "shape": [2], "offset": 0, "length": 8})", 128), data));
  EXPECT_INPUT_ERROR(read_checkpoint(bad), bad, "tensors[0] 'w'", "unknown dtype \"q7\"", "f32");
  write_bytes(bad, forged_file(header(R"({"name": "w", "dtype": "f32", "shape": [3], "offset": 0, "length": 8})", 128), data));
  EXPECT_INPUT_ERROR(read_checkpoint(bad), bad, "length 8 but shape (3,) x f32 needs 12");
  write_bytes(bad, forged_file(header(R"({"name": "w", "dtype": "f32", "shape": [4294967296, 4294967296], "offset": 0, "length": 0})", 128), data));
  EXPECT_INPUT_ERROR(read_checkpoint(bad), bad, "shape [4294967296,4294967296] is too large");
  write_bytes(bad, forged_file(header(R"({"name": "w", "dtype": "f32", "shape": [2], "offset": 8, "length": 8})", 128), data));
  EXPECT_INPUT_ERROR(read_checkpoint(bad), bad, "offset 8 is not a multiple of 64");
  write_bytes(bad, forged_file(header(R"({"name": "w", "dtype": "f64", "shape": [16], "offset": 64, "length": 128})", 128), data));
  EXPECT_INPUT_ERROR(read_checkpoint(bad), bad, "go past the data section (128 bytes)");
  write_bytes(bad, forged_file(header(R"({"name": "a", "dtype": "f64", "shape": [16], "offset": 0, "length": 128},
                                         {"name": "b", "dtype": "f32", "shape": [2], "offset": 64, "length": 8})", 128), data));
  EXPECT_INPUT_ERROR(read_checkpoint(bad), bad, "overlaps");
  write_bytes(bad, forged_file(header(R"({"name": "a", "dtype": "f32", "shape": [2], "offset": 0, "length": 8},
                                         {"name": "a", "dtype": "f32", "shape": [2], "offset": 64, "length": 8})", 128), data));
  EXPECT_INPUT_ERROR(read_checkpoint(bad), bad, "'a': name appears twice");
  write_bytes(bad, forged_file(R"({"step": -1, "job_hash": "h", "values": {}, "data_bytes": 0, "tensors": []})", ""));
  EXPECT_INPUT_ERROR(read_checkpoint(bad), bad, "step must be a non-negative integer");
  write_bytes(bad, forged_file(R"({"step": 1, "job_hash": "h", "values": {"x": 1}, "data_bytes": 0, "tensors": []})", ""));
  EXPECT_INPUT_ERROR(read_checkpoint(bad), bad, "values[\"x\"] must be a string");
  write_bytes(bad, forged_file(R"({"step": 1, "job_hash": "h", "values": {}, "tensors": []})", ""));
  EXPECT_INPUT_ERROR(read_checkpoint(bad), bad, "data_bytes must be a non-negative integer");
  write_bytes(bad, forged_file("{\"step\": 1,", ""));
  EXPECT_INPUT_ERROR(read_checkpoint(bad), bad, "header is not valid JSON at byte offset");
  // Found by checkpoint_fuzz: a number beyond double's range escaped as nlohmann's out_of_range (exit 1).
  write_bytes(bad, forged_file(R"({"step": 1, "job_hash": "h", "values": {}, "data_bytes": 1e999, "tensors": []})", ""));
  EXPECT_INPUT_ERROR(read_checkpoint(bad), bad, "header (bytes 20-", "is not valid JSON: number overflow parsing '1e999'");
}

// ---- Finding the newest good checkpoint ----

TEST(LoadLatest, NothingThereIsNullopt) {
  TempDir dir;
  EXPECT_FALSE(load_latest_checkpoint(dir.file("does-not-exist")).has_value());
  EXPECT_FALSE(load_latest_checkpoint(dir.path()).has_value());
  write_bytes(dir.file("checkpoint-000000000005.fck.tmp"), "torn write");
  write_bytes(dir.file("checkpoint-x.fck"), "not a step");
  EXPECT_FALSE(load_latest_checkpoint(dir.path()).has_value());
  EXPECT_EQ(list_dir(dir.path()).size(), 2u);  // nothing removed by looking
}

TEST(LoadLatest, PicksTheNewestByStepAndIgnoresTmp) {
  TempDir dir;
  for (int64_t step : {9, 100, 10}) write_checkpoint(dir.path(), small_state(step), 5);
  write_bytes(dir.file("checkpoint-000000000200.fck.tmp"), "torn write");
  std::optional<LatestCheckpoint> latest = load_latest_checkpoint(dir.path());
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->path, dir.file("checkpoint-000000000100.fck"));
  EXPECT_TRUE(same_state(latest->state, small_state(100)));
  EXPECT_TRUE(latest->warnings.empty());
}

TEST(LoadLatest, FallsBackPastTornAndCorruptFilesWithWarnings) {
  TempDir dir;
  for (int64_t step = 1; step <= 3; ++step) write_checkpoint(dir.path(), small_state(step), 3);
  const std::string newest = dir.file("checkpoint-000000000003.fck"), middle = dir.file("checkpoint-000000000002.fck");

  const std::string bytes = read_bytes(newest);
  write_bytes(newest, bytes.substr(0, bytes.size() / 2));  // torn
  std::optional<LatestCheckpoint> latest = load_latest_checkpoint(dir.path());
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->state.step, 2);
  ASSERT_EQ(latest->warnings.size(), 1u);
  EXPECT_NE(latest->warnings[0].find(newest), std::string::npos) << latest->warnings[0];
  EXPECT_NE(latest->warnings[0].find("truncated"), std::string::npos) << latest->warnings[0];

  std::string flipped = read_bytes(middle);
  flipped[flipped.size() / 2] ^= 0x04;
  write_bytes(middle, flipped);
  latest = load_latest_checkpoint(dir.path());
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->path, dir.file("checkpoint-000000000001.fck"));
  EXPECT_TRUE(same_state(latest->state, small_state(1)));
  ASSERT_EQ(latest->warnings.size(), 2u);
  EXPECT_NE(latest->warnings[1].find(middle), std::string::npos) << latest->warnings[1];
}

TEST(LoadLatest, SkipsAFileWhoseNameDisagreesWithItsStep) {
  TempDir dir;
  const std::string path = write_checkpoint(dir.path(), small_state(4), 2).path;
  fs::copy_file(path, dir.file("checkpoint-000000000009.fck"));
  std::optional<LatestCheckpoint> latest = load_latest_checkpoint(dir.path());
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->path, path);
  ASSERT_EQ(latest->warnings.size(), 1u);
  EXPECT_NE(latest->warnings[0].find("header says step 4 but the file name says step 9"), std::string::npos);
}

TEST(LoadLatest, AllCorruptIsAnErrorListingEachFileAndTouchesNothing) {
  TempDir dir;
  for (int64_t step = 1; step <= 3; ++step) write_checkpoint(dir.path(), small_state(step), 3);
  const std::string one = dir.file("checkpoint-000000000001.fck"), two = dir.file("checkpoint-000000000002.fck"),
                    three = dir.file("checkpoint-000000000003.fck");
  std::string b1 = read_bytes(one), b2 = read_bytes(two), b3 = read_bytes(three);
  b1[100] ^= 1;
  b2 = b2.substr(0, 50);
  b3[b3.size() - 3] ^= 1;
  write_bytes(one, b1);
  write_bytes(two, b2);
  write_bytes(three, b3);
  write_bytes(dir.file("checkpoint-000000000004.fck.tmp"), "torn");
  const std::vector<std::string> before = list_dir(dir.path());
  EXPECT_INPUT_ERROR(load_latest_checkpoint(dir.path()), dir.path() + ": none of the 3 checkpoints is usable",
                     one + ": checksum mismatch", two + ": truncated at byte 50", three + ": no trailing magic");
  EXPECT_EQ(list_dir(dir.path()), before);
  EXPECT_EQ(read_bytes(one), b1);
  EXPECT_EQ(read_bytes(two), b2);
  EXPECT_EQ(read_bytes(three), b3);
}

// ---- Killed mid-write ----

CheckpointState big_state() {
  CheckpointState big = small_state(2);
  big.tensors.emplace_back("big", Tensor::full({12 << 20}, 0.5));  // 48 MB of f32: a write of ~0.1 s
  return big;
}

TEST(Checkpoint, SigkillDuringAWriteLeavesAGoodCheckpoint) {
  TempDir dir;
  // How long one write takes here sets the kill moments: from right after the temporary file appears
  // to past the end of the write (the rename, directory fsync and pruning included).
  const double write_seconds = write_checkpoint(dir.file("timing"), big_state(), 1).seconds;
  fs::remove_all(dir.file("timing"));
  write_checkpoint(dir.path(), small_state(1), 1);
  const std::string next = dir.file(checkpoint_file_name(2));
  const std::string next_tmp = next + ".tmp";
  int killed_mid_write = 0, finished = 0;
  const double fractions[] = {0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.2, 2.0};
  for (double fraction : fractions) {
    SCOPED_TRACE("kill at " + std::to_string(fraction) + " of a write");
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      CheckpointState big = big_state();
      try {
        write_checkpoint(dir.path(), big, 1);
      } catch (...) {
        ::_exit(3);
      }
      ::_exit(0);
    }
    bool saw_tmp = false;
    for (int i = 0; i < 20000 && !saw_tmp; ++i) {  // up to 2 s for the child to start writing
      struct stat st {};
      saw_tmp = ::stat(next_tmp.c_str(), &st) == 0;
      if (!saw_tmp) ::usleep(100);
    }
    ::usleep(useconds_t(fraction * write_seconds * 1e6));
    ::kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << "the child's write failed";
    if (saw_tmp && WIFSIGNALED(status) && !fs::exists(next)) ++killed_mid_write;

    std::optional<LatestCheckpoint> latest = load_latest_checkpoint(dir.path());
    ASSERT_TRUE(latest.has_value());
    EXPECT_TRUE(latest->warnings.empty()) << latest->warnings[0];
    if (latest->state.step == 1) {
      EXPECT_TRUE(same_state(latest->state, small_state(1)));
    } else {  // the rename happened before the kill: the new file must be complete
      ++finished;
      ASSERT_EQ(latest->state.step, 2);
      EXPECT_TRUE(same_state(latest->state, big_state()));
      fs::remove(next);  // start the next attempt from step 1 alone again
      if (!fs::exists(dir.file(checkpoint_file_name(1)))) write_checkpoint(dir.path(), small_state(1), 1);
    }
  }
  std::printf("one write: %.3f s; of %zu kills, %d landed mid-write and %d after the rename\n", write_seconds,
              std::size(fractions), killed_mid_write, finished);
  EXPECT_GE(killed_mid_write, 1) << "no kill landed during a write; the test did not test anything";
}

// ---- Young/Daly ----

TEST(YoungDaly, MatchesHandComputedValues) {
  // C = 60 s, M = 3600 s: sqrt(2 C M) = sqrt(432000) = 657.26707; C/(2M) = 1/120;
  // factor = 1 + sqrt(1/120)/3 + (1/120)/9 = 1 + 0.0304290 + 0.0009259 = 1.0313549;
  // T = 657.26707 * 1.0313549 - 60 = 617.87565.
  EXPECT_NEAR(young_daly_interval(60, 3600), 617.87565, 1e-4);
  // C = 10 s, M = 1 day: sqrt(1728000) = 1314.53414; C/(2M) = 5.787037e-5;
  // factor = 1 + 0.0025358 + 0.0000064 = 1.0025422; T = 1317.87592 - 10 = 1307.87592.
  EXPECT_NEAR(young_daly_interval(10, 86400), 1307.87592, 1e-4);
  // C >= 2M: checkpointing costs more than it saves; Daly's rule is T = M.
  EXPECT_DOUBLE_EQ(young_daly_interval(100, 50), 50);
  EXPECT_DOUBLE_EQ(young_daly_interval(100, 40), 40);
  EXPECT_DOUBLE_EQ(young_daly_interval(0, 3600), 0);
  // Close to Young's first-order sqrt(2 C M) when C << M.
  EXPECT_NEAR(young_daly_interval(1, 1e6) / std::sqrt(2e6), 1.0, 1e-3);
}

TEST(YoungDaly, ExpectedLossAndWaste) {
  // T = 600, C = 60: an interruption loses (600 + 60) / 2 = 330 s; one per hour is 330/3600 of the time.
  EXPECT_DOUBLE_EQ(expected_lost_seconds_per_interruption(600, 60), 330);
  EXPECT_DOUBLE_EQ(expected_lost_work_fraction(600, 60, 3600), 330.0 / 3600);
  // Waste = 60/660 writing + 330/3600 redoing = 0.0909091 + 0.0916667 = 0.1825758.
  EXPECT_NEAR(expected_waste_fraction(600, 60, 3600), 0.1825758, 1e-7);
  // Daly's interval is (near) the minimum of the waste.
  const double best = young_daly_interval(60, 3600);
  const double at_best = expected_waste_fraction(best, 60, 3600);
  EXPECT_LT(at_best, expected_waste_fraction(best * 0.7, 60, 3600));
  EXPECT_LT(at_best, expected_waste_fraction(best * 1.4, 60, 3600));
}

}  // namespace
}  // namespace frugal::io
