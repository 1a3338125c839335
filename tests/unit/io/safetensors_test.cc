// safetensors: round trips of every dtype (0-d and empty too), a file written by the official
// `safetensors` package from PyTorch tensors, every corruption the reader must name, and writes that
// fail part way leaving the previous file intact.
#include "frugal/io/safetensors.h"
#include "frugal/io/file_util.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cmath>
#include <cstring>
#include <limits>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "test_util.h"

namespace frugal::io {
namespace {
using testing::random_tensor;

std::string make_temp_dir() {
  std::string pattern = ::testing::TempDir() + "frugal_safetensors_XXXXXX";
  FRUGAL_CHECK(::mkdtemp(pattern.data()) != nullptr, "mkdtemp failed");
  return pattern;
}

using frugal::testing::read_bytes;
using frugal::testing::write_bytes;


// A safetensors file from a header text and data bytes, with the size field given or computed.
std::string make_file(const std::string& header, const std::string& data, int64_t header_size = -1) {
  uint64_t size = header_size < 0 ? header.size() : uint64_t(header_size);
  std::string out(8, '\0');
  std::memcpy(out.data(), &size, 8);
  return out + header + data;
}

std::string packed_bytes(const Tensor& t) {
  Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.raw_data()), c.nbytes());
}

// The read tensor equals `expected` in dtype, shape and every bit.
::testing::AssertionResult same_tensor(const Tensor& actual, const Tensor& expected) {
  if (!actual.defined()) return ::testing::AssertionFailure() << "missing tensor";
  if (actual.dtype() != expected.dtype())
    return ::testing::AssertionFailure() << "dtype " << dtype_name(actual.dtype()) << " vs "
                                         << dtype_name(expected.dtype());
  if (actual.shape() != expected.shape())
    return ::testing::AssertionFailure() << "shape " << shape_str(actual.shape()) << " vs "
                                         << shape_str(expected.shape());
  if (packed_bytes(actual) != packed_bytes(expected))
    return ::testing::AssertionFailure() << "bytes differ: " << actual.str() << " vs " << expected.str();
  return ::testing::AssertionSuccess();
}

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = make_temp_dir(); }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }
  std::string file(const std::string& name) const { return dir_ + "/" + name; }
  std::string dir_;
};

TEST_F(Safetensors, RoundTripEveryDtypeAndShape) {
  const std::vector<DType> dtypes = {DType::f32, DType::f64, DType::bf16, DType::f16,
                                     DType::i8,  DType::u8,  DType::i32,  DType::i64};
  const std::vector<Shape> shapes = {{}, {0}, {0, 3}, {1}, {5}, {3, 7}, {2, 3, 4}, {1, 1, 2, 1, 3}};
  std::vector<std::pair<std::string, Tensor>> tensors;
  uint64_t seed = 1;
  for (DType dtype : dtypes)
    for (const Shape& shape : shapes) {
      // Integers get a range that fits i8/u8; floats get fractions that exercise every mantissa bit.
      bool is_int = !dtype_is_float(dtype);
      Tensor t = random_tensor(shape, seed++, dtype, is_int ? 0.0 : -3.0, is_int ? 100.0 : 3.0);
      tensors.emplace_back(std::string(dtype_name(dtype)) + "/" + shape_str(shape), t);
    }
  // A strided view is written packed.
  tensors.emplace_back("transposed", random_tensor({4, 6}, 99).transpose_view(0, 1));
  const std::string path = file("all.safetensors");
  write_safetensors(path, tensors);

  SafetensorsFile read = read_safetensors(path);
  EXPECT_EQ(read.tensors.size(), tensors.size());
  EXPECT_TRUE(read.metadata.empty());
  for (const auto& [name, t] : tensors) EXPECT_TRUE(same_tensor(read.tensors[name], t)) << name;

  // No temporary file is left behind, and the data section starts 8-byte aligned.
  EXPECT_NE(::access((path + ".tmp").c_str(), F_OK), 0);
  std::string bytes = read_bytes(path);
  uint64_t header_size;
  std::memcpy(&header_size, bytes.data(), 8);
  EXPECT_EQ(header_size % 8, 0u);
  EXPECT_EQ(bytes.find("__metadata__"), std::string::npos);
}

TEST_F(Safetensors, WritesInGivenOrderPacked) {
  Tensor b = Tensor::from_vector<float>({1, 2, 3}, {3});
  Tensor a = Tensor::from_vector<int8_t>({-1, 2}, {2});
  Tensor c = Tensor::from_vector<double>({0.5}, {1});
  const std::string path = file("order.safetensors");
  write_safetensors(path, {{"b", b}, {"a", a}, {"c", c}});
  std::string bytes = read_bytes(path);
  uint64_t header_size;
  std::memcpy(&header_size, bytes.data(), 8);
  std::string header = bytes.substr(8, header_size);
  EXPECT_LT(header.find("\"b\""), header.find("\"a\""));
  EXPECT_LT(header.find("\"a\""), header.find("\"c\""));
  EXPECT_NE(header.find("\"data_offsets\":[12,14]"), std::string::npos) << header;
  EXPECT_EQ(bytes.substr(8 + header_size), packed_bytes(b) + packed_bytes(a) + packed_bytes(c));

  // c starts at data offset 14, not 8-aligned: it is still read correctly (as a copy).
  SafetensorsFile read = read_safetensors(path);
  EXPECT_TRUE(same_tensor(read.tensors["c"], c));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(read.tensors["c"].raw_data()) % 8, 0u);
}

TEST_F(Safetensors, MetadataRoundTrip) {
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"quote\"and\\slash", "line\nbreak"}, {"unicode", "\xC3\xA9t\xC3\xA9 \xE2\x9C\x93"}, {"empty", ""}};
  const std::string path = file("meta.safetensors");
  write_safetensors(path, {{"w", Tensor::ones({2, 2})}}, metadata);
  SafetensorsFile read = read_safetensors(path);
  EXPECT_EQ(read.metadata, metadata);
  EXPECT_TRUE(same_tensor(read.tensors["w"], Tensor::ones({2, 2})));

  // A file with metadata only.
  write_safetensors(path, {}, {{"k", "v"}});
  read = read_safetensors(path);
  EXPECT_TRUE(read.tensors.empty());
  EXPECT_EQ(read.metadata.at("k"), "v");
}

// parse_safetensors (the fuzz target's entry point) reads a file's bytes in memory as the file.
TEST_F(Safetensors, ParseReadsBytesInMemoryAsTheFile) {
  const std::string path = file("mem.safetensors");
  write_safetensors(path, {{"w", Tensor::ones({2, 3})}}, {{"format", "pt"}});
  std::shared_ptr<Storage> bytes = read_whole_file(path);
  SafetensorsFile parsed = parse_safetensors(bytes, "in-memory");
  EXPECT_TRUE(same_tensor(parsed.tensors["w"], Tensor::ones({2, 3})));
  EXPECT_EQ(parsed.metadata.at("format"), "pt");
  auto cut = std::make_shared<Storage>(bytes->data(), 7, bytes);
  EXPECT_INPUT_ERROR(parse_safetensors(cut, "in-memory"), "in-memory: file is 7 bytes, too short");
}

TEST_F(Safetensors, RejectsBadNamesOnWrite) {
  const std::string path = file("names.safetensors");
  EXPECT_THROW(write_safetensors(path, {{"w", Tensor::ones({1})}, {"w", Tensor::ones({1})}}), InputError);
  EXPECT_THROW(write_safetensors(path, {{"__metadata__", Tensor::ones({1})}}), InputError);
  EXPECT_NE(::access(path.c_str(), F_OK), 0);
}

// Written by the official safetensors package from PyTorch tensors (data/make_safetensors_fixture.py).
TEST(SafetensorsPyTorch, ReadsOfficialFile) {
  SafetensorsFile f = read_safetensors(std::string(FRUGAL_SOURCE_DIR) + "/tests/unit/io/data/pytorch_fixture.safetensors");
  EXPECT_EQ(f.metadata, (std::map<std::string, std::string>{{"format", "pt"}, {"producer", "safetensors.torch"}}));
  ASSERT_EQ(f.tensors.size(), 11u);

  std::vector<float> f32;
  for (int i = 0; i < 6; ++i) f32.push_back(float(i) * 0.25f - 0.5f);
  EXPECT_TRUE(same_tensor(f.tensors["f32"], Tensor::from_vector(f32, {2, 3})));
  EXPECT_TRUE(same_tensor(f.tensors["f64"], Tensor::from_vector<double>({1.0 / 3.0, -2.5, 1e300}, {3})));
  EXPECT_TRUE(same_tensor(f.tensors["bf16"], Tensor::from_vector<float>({1.0f, -0.5f, 3.140625f, 256.0f}, {4}).to(DType::bf16)));
  EXPECT_TRUE(same_tensor(f.tensors["f16"], Tensor::from_vector<float>({0.5f, -2.0f, 65504.0f, std::ldexp(1.0f, -24)}, {4}).to(DType::f16)));
  EXPECT_TRUE(same_tensor(f.tensors["i8"], Tensor::from_vector<int8_t>({-128, 0, 127}, {3})));
  EXPECT_TRUE(same_tensor(f.tensors["u8"], Tensor::from_vector<uint8_t>({0, 255, 7}, {3})));
  EXPECT_TRUE(same_tensor(f.tensors["i32"], Tensor::from_vector<int32_t>({INT32_MIN, INT32_MAX}, {2})));
  EXPECT_TRUE(same_tensor(f.tensors["i64"], Tensor::from_vector<int64_t>({INT64_MIN, INT64_MAX}, {2})));
  EXPECT_TRUE(same_tensor(f.tensors["scalar"], Tensor::scalar(7.5)));
  EXPECT_TRUE(same_tensor(f.tensors["empty"], Tensor::empty({0, 3})));
  std::vector<float> weight;
  for (int i = 0; i < 24; ++i) weight.push_back(float(i) / 8.0f);
  EXPECT_TRUE(same_tensor(f.tensors["layer.0.weight"], Tensor::from_vector(weight, {2, 3, 4})));
  EXPECT_EQ(f.tensors["f64"].at({1}), -2.5);
  EXPECT_EQ(f.tensors["layer.0.weight"].at({1, 2, 3}), 23.0 / 8.0);

  // Aligned tensors are views into one buffer holding the file: their addresses differ by their
  // data_offsets (i64 at 0, f64 at 16, f32 at 40 in this file).
  const char* i64 = static_cast<const char*>(f.tensors["i64"].raw_data());
  EXPECT_EQ(static_cast<const char*>(f.tensors["f64"].raw_data()) - i64, 16);
  EXPECT_EQ(static_cast<const char*>(f.tensors["f32"].raw_data()) - i64, 40);
}

// ---- Corruption: each case must be an InputError naming the file and the problem ----

class SafetensorsCorrupt : public Safetensors {
 protected:
  void expect_error(const std::string& bytes, const std::string& expected_words) {
    const std::string path = file("bad" + std::to_string(case_++) + ".safetensors");
    write_bytes(path, bytes);
    try {
      read_safetensors(path);
      ADD_FAILURE() << "no error for a file that should fail with '" << expected_words << "'";
    } catch (const InputError& e) {
      std::string message = e.what();
      EXPECT_NE(message.find(path), std::string::npos) << message;
      EXPECT_NE(message.find(expected_words), std::string::npos) << "expected '" << expected_words << "' in: " << message;
    }
  }
  int case_ = 0;
};

const std::string kData12(12, '\x01');  // three f32 values

std::string one_tensor(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return R"({"w":{"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" + offsets + "}}";
}

TEST_F(SafetensorsCorrupt, SizeAndStructure) {
  expect_error("", "too short");
  expect_error(std::string(5, '\0'), "too short");
  expect_error(make_file(one_tensor("F32", "[3]", "[0,12]"), kData12, 4000), "beyond the end of the file");
  expect_error(make_file(one_tensor("F32", "[3]", "[0,12]"), kData12, int64_t(1) << 40), "100 MB limit");
  expect_error(make_file("[1,2,3]", ""), "starting with '{'");
  expect_error(make_file(" {}", ""), "starting with '{'");
  expect_error(make_file(R"({"w":{"dtype":"F32",,"shape":[3]}})", kData12), "not valid JSON at byte offset 28");
  expect_error(make_file(R"({"w":{"dtype":"F32")", kData12), "not valid JSON");
  // Found by safetensors_fuzz: a number beyond double's range escaped as nlohmann's out_of_range (exit 1).
  expect_error(make_file(R"({"w":{"dtype":"F32","shape":[1E111111],"data_offsets":[0,12]}})", kData12),
               "is not valid JSON: number overflow parsing '1E111111'");
  expect_error(make_file(R"({"w":[1,2]})", ""), "must be an object");
  expect_error(make_file(R"({"w":{"dtype":"F32","shape":[3]}})", kData12), "no \"data_offsets\"");
  expect_error(make_file(R"({"__metadata__":{"a":1}})", ""), "__metadata__[\"a\"] must be a string");
  expect_error(make_file(R"({"__metadata__":[]})", ""), "__metadata__ must be an object");
}

TEST_F(SafetensorsCorrupt, DtypesAndShapes) {
  expect_error(make_file(one_tensor("F33", "[3]", "[0,12]"), kData12), "unknown dtype \"F33\"");
  expect_error(make_file(one_tensor("BOOL", "[12]", "[0,12]"), kData12), "unsupported dtype \"BOOL\"");
  expect_error(make_file(one_tensor("F32", "[-3]", "[0,12]"), kData12), "shape[0] must be a non-negative integer");
  expect_error(make_file(one_tensor("F32", "[1.5]", "[0,12]"), kData12), "shape[0] must be a non-negative integer");
  expect_error(make_file(one_tensor("F32", "3", "[0,12]"), kData12), "shape must be an array");
  expect_error(make_file(one_tensor("F32", "[4294967296,4294967296]", "[0,12]"), kData12), "too large");
  expect_error(make_file(one_tensor("F32", "[2]", "[0,12]"), kData12), "hold 12 bytes but shape (2,) x F32 needs 8");
  expect_error(make_file(one_tensor("F32", "[3]", "[12,0]"), kData12), "end before begin");
  expect_error(make_file(one_tensor("F32", "[3]", "[0]"), kData12), "data_offsets must be [begin, end]");
}

TEST_F(SafetensorsCorrupt, DataOffsets) {
  // Past the end of the data section.
  expect_error(make_file(one_tensor("F32", "[3]", "[4,16]"), kData12), "go past the data section");
  // Two tensors sharing bytes.
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", kData12),
               "overlap tensor 'a'");
  // A hole between tensors, and bytes after the last one (the spec allows neither).
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", kData12),
               "leave a hole of 4 bytes");
  expect_error(make_file(one_tensor("F32", "[2]", "[0,8]"), kData12), "4 bytes not covered");
  expect_error(make_file("{}", "x"), "1 bytes not covered");
  // The valid form of the same file reads (so the cases above fail for the stated reason).
  const std::string path = file("good.safetensors");
  write_bytes(path, make_file(one_tensor("F32", "[3]", "[0,12]") + "    ", kData12));
  EXPECT_EQ(read_safetensors(path).tensors.at("w").shape(), (Shape{3}));
}

TEST_F(SafetensorsCorrupt, MissingAndNonRegularFiles) {
  EXPECT_THROW(read_safetensors(file("does-not-exist.safetensors")), InputError);
  EXPECT_THROW(read_safetensors(dir_), InputError);
}

// ---- Interrupted writes keep the old file ----

TEST_F(Safetensors, FailedWriteLeavesOldFileIntact) {
  const std::string path = file("model.safetensors");
  Tensor old_weight = random_tensor({16, 16}, 5);
  write_safetensors(path, {{"w", old_weight}}, {{"version", "1"}});
  const std::string old_bytes = read_bytes(path);

  // The temporary file cannot be created (a directory has its name).
  ASSERT_EQ(::mkdir((path + ".tmp").c_str(), 0755), 0);
  try {
    write_safetensors(path, {{"w", Tensor::zeros({16, 16})}});
    ADD_FAILURE() << "write over a blocked tmp path did not fail";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_bytes(path), old_bytes);
  ::rmdir((path + ".tmp").c_str());

  // The disk "fills up" part way through the data (a file size limit in a child process): the write
  // fails, the partial temporary file is removed, the old file is untouched.
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::signal(SIGXFSZ, SIG_IGN);  // get EFBIG from write() instead of being killed
    struct rlimit limit = {4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    int code = 1;
    try {
      write_safetensors(path, {{"big", Tensor::zeros({64, 1024})}});  // 256 KB > 4 KB
    } catch (const IoError&) {  // EFBIG: the storage's fault, exit 74
      code = ::access((path + ".tmp").c_str(), F_OK) == 0 ? 3 : 0;
    } catch (...) {
      code = 2;
    }
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: no error, 2: wrong exception type, 3: tmp file left behind";
  EXPECT_EQ(read_bytes(path), old_bytes);
  SafetensorsFile read = read_safetensors(path);
  EXPECT_TRUE(same_tensor(read.tensors["w"], old_weight));
  EXPECT_EQ(read.metadata.at("version"), "1");

  // A directory that does not exist: an error naming the path, nothing created.
  const std::string missing = file("no-such-dir/model.safetensors");
  EXPECT_THROW(write_safetensors(missing, {{"w", old_weight}}), InputError);
}

TEST_F(Safetensors, NonFiniteWeightsNamedByTensorAndElement) {
  const std::string path = file("w.safetensors");
  Tensor weight = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor steps = Tensor::from_vector(std::vector<int64_t>{7}, {1});
  write_safetensors(path, {{"a.weight", weight}, {"count", steps}});
  check_finite_weights(read_safetensors(path), path);  // finite floats and integers pass
  for (DType dtype : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    for (float bad : {std::nanf(""), -std::numeric_limits<float>::infinity()}) {
      std::vector<float> values = {1, 2, 3, 4, bad, 6};
      write_safetensors(path, {{"a.weight", weight}, {"b.weight", Tensor::from_vector(values, {2, 3}).to(dtype)}});
      EXPECT_INPUT_ERROR(check_finite_weights(read_safetensors(path), path), path, "tensor 'b.weight' (2, 3)",
                         std::isnan(bad) ? "NaN" : "inf", "element 4", "expected finite weights");
    }
  }
}

}  // namespace
}  // namespace frugal::io
