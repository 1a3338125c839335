// IDX reader: the real Fashion-MNIST test split (known values checked against an independent
// decoder), every element type, and each way a file can be wrong (raw and gzip).
#include <filesystem>

#include "frugal/data/readers.h"
#include "test_util.h"
#include "unit/data/temp_files.h"

namespace frugal::data {
namespace {

using frugal::testing::Bytes;
using frugal::testing::TempDir;

const std::string kFashion = "/usr/share/datasets/fashion-mnist/";

Bytes idx_bytes(uint8_t type, const std::vector<uint32_t>& dims, const Bytes& data) {
  Bytes out = {0, 0, type, uint8_t(dims.size())};
  for (uint32_t d : dims) frugal::testing::put_be32(out, d);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Bytes u8_range(size_t n) {
  Bytes data(n);
  for (size_t i = 0; i < n; ++i) data[i] = uint8_t(i * 7 + 3);
  return data;
}

TEST(Idx, FashionMnistTestSplit) {
  if (!std::filesystem::exists(kFashion + "t10k-images-idx3-ubyte.gz")) GTEST_SKIP() << "no Fashion-MNIST";
  Tensor images = read_idx(kFashion + "t10k-images-idx3-ubyte.gz");
  Tensor labels = read_idx(kFashion + "t10k-labels-idx1-ubyte.gz");
  ASSERT_EQ(images.shape(), (Shape{10000, 28, 28}));
  ASSERT_EQ(labels.shape(), (Shape{10000}));
  EXPECT_EQ(images.dtype(), DType::u8);
  std::vector<uint8_t> l = labels.to_vector<uint8_t>();
  EXPECT_EQ(std::vector<uint8_t>(l.begin(), l.begin() + 10), (std::vector<uint8_t>{9, 2, 1, 1, 6, 1, 4, 6, 5, 7}));
  std::vector<int64_t> per_class(10, 0);
  for (uint8_t v : l) {
    ASSERT_LT(v, 10);
    ++per_class[v];
  }
  for (int64_t count : per_class) EXPECT_EQ(count, 1000);
  // Reference values computed with Python's gzip module on the same file.
  std::vector<uint8_t> pixels = images.to_vector<uint8_t>();
  int64_t total = 0, first = 0, last = 0;
  for (size_t i = 0; i < pixels.size(); ++i) total += pixels[i];
  for (size_t i = 0; i < 784; ++i) first += pixels[i], last += pixels[9999 * 784 + i];
  EXPECT_EQ(total, 573469082);
  EXPECT_EQ(first, 33456);
  EXPECT_EQ(last, 24390);
  std::vector<uint8_t> row14(pixels.begin() + 14 * 28, pixels.begin() + 15 * 28);
  EXPECT_EQ(row14, (std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 2, 4, 1, 0, 0, 0, 98, 136, 110, 109, 110, 162, 135, 144,
                                         149, 159, 167, 144, 158, 169, 119, 0}));

  Dataset dataset = read_idx_dataset(kFashion + "t10k-images-idx3-ubyte.gz", kFashion + "t10k-labels-idx1-ubyte.gz");
  ASSERT_EQ(dataset.inputs.shape(), (Shape{10000, 1, 28, 28}));
  EXPECT_EQ(dataset.inputs.dtype(), DType::f32);
  EXPECT_EQ(dataset.targets.dtype(), DType::i64);
  EXPECT_EQ(dataset.size(), 10000);
  EXPECT_EQ(dataset.targets.at({0}), 9);
  EXPECT_FLOAT_EQ(float(dataset.inputs.at({0, 0, 14, 12})), 98.0f / 255.0f);
  EXPECT_FLOAT_EQ(float(dataset.inputs.at({0, 0, 14, 25})), 169.0f / 255.0f);
}

TEST(Idx, TruncatedGzipOfRealFile) {
  // The first 4096 bytes of the real .gz: the gzip stream and the IDX data both end early.
  if (!std::filesystem::exists(kFashion + "t10k-images-idx3-ubyte.gz")) GTEST_SKIP() << "no Fashion-MNIST";
  std::ifstream in(kFashion + "t10k-images-idx3-ubyte.gz", std::ios::binary);
  Bytes head(4096);
  in.read(reinterpret_cast<char*>(head.data()), 4096);
  TempDir dir;
  frugal::testing::write_file(dir.file("cut.gz"), head);
  EXPECT_INPUT_ERROR(read_idx(dir.file("cut.gz")), dir.file("cut.gz"), "truncated at byte", "of 7840016 expected",
                     "header says 10000 x 28 x 28", "gzip stream truncated");
}

TEST(Idx, RawAndGzipGiveTheSameTensor) {
  TempDir dir;
  Bytes file = idx_bytes(0x08, {3, 4, 5}, u8_range(60));
  frugal::testing::write_file(dir.file("a.idx"), file);
  // Name says nothing about gzip: detection is by magic.
  frugal::testing::write_file(dir.file("b.idx"), frugal::testing::gzip_stored(file));
  Tensor raw = read_idx(dir.file("a.idx")), gz = read_idx(dir.file("b.idx"));
  ASSERT_EQ(raw.shape(), (Shape{3, 4, 5}));
  EXPECT_EQ(raw.to_vector<uint8_t>(), u8_range(60));
  EXPECT_EQ(gz.to_vector<uint8_t>(), u8_range(60));
  // Multi-block gzip (stored blocks of 65535 bytes).
  Bytes big = idx_bytes(0x08, {200000}, u8_range(200000));
  frugal::testing::write_file(dir.file("big.gz"), frugal::testing::gzip_stored(big));
  EXPECT_EQ(read_idx(dir.file("big.gz")).to_vector<uint8_t>(), u8_range(200000));
}

TEST(Idx, OtherElementTypesAreBigEndian) {
  TempDir dir;
  Bytes i16 = {0x01, 0x02, 0xFF, 0xFE};  // 258, -2
  frugal::testing::write_file(dir.file("i16"), idx_bytes(0x0B, {2}, i16));
  EXPECT_EQ(read_idx(dir.file("i16")).to_vector<int32_t>(), (std::vector<int32_t>{258, -2}));
  Bytes i32 = {0x00, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFD};  // 65536, -3
  frugal::testing::write_file(dir.file("i32"), idx_bytes(0x0C, {2, 1}, i32));
  Tensor t = read_idx(dir.file("i32"));
  EXPECT_EQ(t.shape(), (Shape{2, 1}));
  EXPECT_EQ(t.to_vector<int32_t>(), (std::vector<int32_t>{65536, -3}));
  Bytes f32 = {0x3F, 0xC0, 0x00, 0x00};  // 1.5
  frugal::testing::write_file(dir.file("f32"), idx_bytes(0x0D, {1}, f32));
  EXPECT_EQ(read_idx(dir.file("f32")).to_vector<float>(), (std::vector<float>{1.5f}));
  Bytes f64 = {0xC0, 0x04, 0, 0, 0, 0, 0, 0};  // -2.5
  frugal::testing::write_file(dir.file("f64"), idx_bytes(0x0E, {1}, f64));
  EXPECT_EQ(read_idx(dir.file("f64")).to_vector<double>(), (std::vector<double>{-2.5}));
  Bytes i8 = {0x80, 0x7F};
  frugal::testing::write_file(dir.file("i8"), idx_bytes(0x09, {2}, i8));
  Tensor s = read_idx(dir.file("i8"));
  EXPECT_EQ(s.dtype(), DType::i8);
  EXPECT_EQ(s.at({0}), -128);
  EXPECT_EQ(s.at({1}), 127);
}

TEST(Idx, Errors) {
  TempDir dir;
  const std::string path = dir.file("x.idx");
  Bytes good = idx_bytes(0x08, {6, 28, 28}, u8_range(6 * 784));

  Bytes truncated(good.begin(), good.end() - 100);
  frugal::testing::write_file(path, truncated);
  EXPECT_INPUT_ERROR(read_idx(path), path, "truncated at byte 4620 of 4720 expected", "header says 6 x 28 x 28");
  frugal::testing::write_file(dir.file("t.gz"), frugal::testing::gzip_stored(truncated));
  EXPECT_INPUT_ERROR(read_idx(dir.file("t.gz")), dir.file("t.gz"), "truncated at byte 4620 of 4720 expected");
  // A gzip stream cut short: the IDX size check reports it, with the gzip problem attached.
  Bytes gz = frugal::testing::gzip_stored(good);
  frugal::testing::write_file(dir.file("cut.gz"), Bytes(gz.begin(), gz.begin() + 1000));
  EXPECT_INPUT_ERROR(read_idx(dir.file("cut.gz")), "truncated at byte", "of 4720 expected", "gzip stream truncated");
  // Only the gzip trailer missing: data complete but the stream is not.
  frugal::testing::write_file(dir.file("notrailer.gz"), Bytes(gz.begin(), gz.end() - 8));
  EXPECT_INPUT_ERROR(read_idx(dir.file("notrailer.gz")), "notrailer.gz", "gzip stream truncated");
  // Corrupt CRC.
  Bytes bad_crc = gz;
  bad_crc[bad_crc.size() - 8] ^= 0xFF;
  frugal::testing::write_file(dir.file("crc.gz"), bad_crc);
  EXPECT_INPUT_ERROR(read_idx(dir.file("crc.gz")), "crc.gz", "corrupt gzip data");

  Bytes trailing = good;
  trailing.push_back(0);
  frugal::testing::write_file(path, trailing);
  EXPECT_INPUT_ERROR(read_idx(path), "1 trailing bytes after byte 4720");

  Bytes bad_magic = good;
  bad_magic[0] = 0x12;
  frugal::testing::write_file(path, bad_magic);
  EXPECT_INPUT_ERROR(read_idx(path), path, "bad IDX magic 12 00 08 03 at byte 0");
  Bytes bad_type = good;
  bad_type[2] = 0x07;
  frugal::testing::write_file(path, bad_type);
  EXPECT_INPUT_ERROR(read_idx(path), "bad IDX magic 00 00 07 03");

  frugal::testing::write_file(path, idx_bytes(0x08, {6, 0, 28}, {}));
  EXPECT_INPUT_ERROR(read_idx(path), "dimension 1 is 0", "byte 8");

  frugal::testing::write_file(path, Bytes{0, 0, 8, 3, 0, 0});
  EXPECT_INPUT_ERROR(read_idx(path), "truncated at byte 6 inside the header");
  frugal::testing::write_file(path, Bytes{0, 0});
  EXPECT_INPUT_ERROR(read_idx(path), "truncated at byte 2");
  frugal::testing::write_file(path, Bytes{});
  EXPECT_INPUT_ERROR(read_idx(path), "truncated at byte 0");
  EXPECT_INPUT_ERROR(read_idx(dir.file("missing.idx")), "missing.idx", "cannot open");
}

TEST(Idx, DatasetCountMismatchNamesBothFiles) {
  TempDir dir;
  frugal::testing::write_file(dir.file("images"), idx_bytes(0x08, {3, 2, 2}, u8_range(12)));
  frugal::testing::write_file(dir.file("labels"), idx_bytes(0x08, {4}, {1, 2, 3, 4}));
  EXPECT_INPUT_ERROR(read_idx_dataset(dir.file("images"), dir.file("labels")), dir.file("images") + " has 3 images",
                     dir.file("labels") + " has 4 labels");
  frugal::testing::write_file(dir.file("labels"), idx_bytes(0x08, {3}, {1, 0, 7}));
  Dataset d = read_idx_dataset(dir.file("images"), dir.file("labels"));
  EXPECT_EQ(d.inputs.shape(), (Shape{3, 1, 2, 2}));
  EXPECT_EQ(d.targets.to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 7}));
  std::vector<float> pixels = d.inputs.to_vector<float>();
  for (size_t i = 0; i < 12; ++i) EXPECT_EQ(pixels[i], float(uint8_t(i * 7 + 3)) / 255.0f);
  // Images must be pixels, labels a vector.
  EXPECT_INPUT_ERROR(read_idx_dataset(dir.file("labels"), dir.file("labels")), "expected images");
}

}  // namespace
}  // namespace frugal::data
