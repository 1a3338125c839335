// NPY reader: a file written by NumPy itself (bytes embedded), each supported dtype, versions 1-3,
// and the errors (fortran order, big-endian, truncated, trailing, bad magic, malformed header).
#include <cmath>
#include <cstring>
#include <limits>

#include "frugal/data/readers.h"
#include "test_util.h"
#include "unit/data/temp_files.h"

namespace frugal::data {
namespace {

using frugal::testing::Bytes;
using frugal::testing::TempDir;

// An NPY file as NumPy lays it out: preamble, dict padded with spaces to a multiple of 64, '\n', data.
Bytes npy_bytes(const std::string& descr, const std::string& shape, const void* data, size_t data_bytes,
                int version = 1, bool fortran = false) {
  std::string header = "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
                       ", 'shape': " + shape + ", }";
  const size_t preamble = version == 1 ? 10 : 12;
  while ((preamble + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  Bytes out = {0x93, 'N', 'U', 'M', 'P', 'Y', uint8_t(version), 0};
  if (version == 1) frugal::testing::put_le16(out, uint32_t(header.size()));
  else frugal::testing::put_le32(out, uint32_t(header.size()));
  out.insert(out.end(), header.begin(), header.end());
  const uint8_t* bytes = static_cast<const uint8_t*>(data);
  out.insert(out.end(), bytes, bytes + data_bytes);
  return out;
}

Bytes from_hex(const std::string& hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(uint8_t(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

TEST(Npy, FileWrittenByNumpy) {
  // np.save(f, np.array([[1.5, -2], [3, 4]], dtype='<f4')) with NumPy 1.24.
  Bytes file = from_hex(
      "934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2046616c73652c2027"
      "7368617065273a2028322c2032292c207d2020202020202020202020202020202020202020202020202020202020202020202020"
      "20202020202020202020202020202020202020202020200a0000c03f000000c00000404000008040");
  TempDir dir;
  frugal::testing::write_file(dir.file("a.npy"), file);
  Tensor t = read_npy(dir.file("a.npy"));
  EXPECT_EQ(t.dtype(), DType::f32);
  EXPECT_EQ(t.shape(), (Shape{2, 2}));
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{1.5f, -2, 3, 4}));
}

TEST(Npy, EveryDtypeAndVersion) {
  TempDir dir;
  const std::string path = dir.file("x.npy");
  std::vector<double> f8 = {0.25, -1e300, 3};
  frugal::testing::write_file(path, npy_bytes("<f8", "(3,)", f8.data(), 24, 2));
  Tensor a = read_npy(path);
  EXPECT_EQ(a.dtype(), DType::f64);
  EXPECT_EQ(a.to_vector<double>(), f8);
  std::vector<int64_t> i8 = {1, -2, int64_t(1) << 40, 4, 5, 6};
  frugal::testing::write_file(path, npy_bytes("<i8", "(2, 3)", i8.data(), 48, 3));
  Tensor b = read_npy(path);
  EXPECT_EQ(b.dtype(), DType::i64);
  EXPECT_EQ(b.shape(), (Shape{2, 3}));
  EXPECT_EQ(b.to_vector<int64_t>(), i8);
  std::vector<int32_t> i4 = {-7, 8};
  frugal::testing::write_file(path, npy_bytes("<i4", "(1, 2, 1)", i4.data(), 8));
  Tensor c = read_npy(path);
  EXPECT_EQ(c.dtype(), DType::i32);
  EXPECT_EQ(c.shape(), (Shape{1, 2, 1}));
  EXPECT_EQ(c.to_vector<int32_t>(), i4);
  std::vector<uint8_t> u1 = {0, 255, 9};
  frugal::testing::write_file(path, npy_bytes("|u1", "(3,)", u1.data(), 3));
  Tensor d = read_npy(path);
  EXPECT_EQ(d.dtype(), DType::u8);
  EXPECT_EQ(d.to_vector<uint8_t>(), u1);
  uint8_t scalar = 42;
  frugal::testing::write_file(path, npy_bytes("|u1", "()", &scalar, 1));
  Tensor e = read_npy(path);
  EXPECT_EQ(e.rank(), 0);
  EXPECT_EQ(e.item(), 42);
  frugal::testing::write_file(path, npy_bytes("<f4", "(0, 5)", nullptr, 0));
  EXPECT_EQ(read_npy(path).shape(), (Shape{0, 5}));
  // gzip-wrapped .npy is read too (detected by magic).
  std::vector<float> f4 = {1, 2};
  frugal::testing::write_file(dir.file("x.npy.gz"), frugal::testing::gzip_stored(npy_bytes("<f4", "(2,)", f4.data(), 8)));
  EXPECT_EQ(read_npy(dir.file("x.npy.gz")).to_vector<float>(), f4);
}

TEST(Npy, Errors) {
  TempDir dir;
  const std::string path = dir.file("x.npy");
  std::vector<float> f4 = {1, 2, 3, 4, 5, 6};
  frugal::testing::write_file(path, npy_bytes("<f4", "(2, 3)", f4.data(), 24, 1, true));
  EXPECT_INPUT_ERROR(read_npy(path), path, "fortran_order is True", "C order");
  frugal::testing::write_file(path, npy_bytes(">f4", "(2, 3)", f4.data(), 24));
  EXPECT_INPUT_ERROR(read_npy(path), "dtype '>f4' is not supported");
  frugal::testing::write_file(path, npy_bytes("<c8", "(3,)", f4.data(), 24));
  EXPECT_INPUT_ERROR(read_npy(path), "dtype '<c8' is not supported");
  frugal::testing::write_file(path, npy_bytes("<f4", "(2, 3)", f4.data(), 20));
  EXPECT_INPUT_ERROR(read_npy(path), path, "truncated at byte 148 of 152 expected", "needs 24 data bytes from byte 128");
  frugal::testing::write_file(path, npy_bytes("<f4", "(2, 2)", f4.data(), 24));
  EXPECT_INPUT_ERROR(read_npy(path), "8 trailing bytes after byte 144");
  Bytes cut = npy_bytes("<f4", "(2, 3)", f4.data(), 24);
  cut.resize(40);
  frugal::testing::write_file(path, cut);
  EXPECT_INPUT_ERROR(read_npy(path), "truncated at byte 40 inside the header", "header ends at byte 128");
  frugal::testing::write_file(path, Bytes{'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0, 0});
  EXPECT_INPUT_ERROR(read_npy(path), "bad magic at byte 0");
  frugal::testing::write_file(path, Bytes{0x93, 'N', 'U', 'M'});
  EXPECT_INPUT_ERROR(read_npy(path), "truncated at byte 4");
  Bytes v9 = npy_bytes("<f4", "(1,)", f4.data(), 4);
  v9[6] = 9;
  frugal::testing::write_file(path, v9);
  EXPECT_INPUT_ERROR(read_npy(path), "unsupported NPY version 9.0 at byte 6");
  frugal::testing::write_file(path, npy_bytes("<f4", "(2, x)", f4.data(), 8));
  EXPECT_INPUT_ERROR(read_npy(path), "NPY header at byte", "expected a non-negative integer dimension");
  std::string no_shape = "{'descr': '<f4', 'fortran_order': False, }";
  Bytes missing = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  frugal::testing::put_le16(missing, uint32_t(no_shape.size()));
  missing.insert(missing.end(), no_shape.begin(), no_shape.end());
  frugal::testing::write_file(path, missing);
  EXPECT_INPUT_ERROR(read_npy(path), "missing one of the keys");
}

// Found by tests/fuzz/npy_fuzz: an empty file reached memcmp with a null pointer (UBSan).
TEST(Npy, EmptyFileIsBadMagic) {
  TempDir dir;
  const std::string path = dir.file("empty.npy");
  frugal::testing::write_file(path, Bytes{});
  EXPECT_INPUT_ERROR(read_npy(path), path, "bad magic at byte 0", "not a .npy file");
  EXPECT_INPUT_ERROR(parse_npy("", "mem.npy"), "mem.npy", "bad magic at byte 0");
}

TEST(Npy, NonFiniteFloatsRefusedNamingTheElement) {
  TempDir dir;
  const std::string path = dir.file("x.npy");
  std::vector<float> f4 = {1, 2, 3, 4, 5, std::numeric_limits<float>::infinity()};
  frugal::testing::write_file(path, npy_bytes("<f4", "(2, 3)", f4.data(), 24));
  EXPECT_INPUT_ERROR(read_npy(path), path, "row 1, column 2", "flat index 5", "inf", "expected finite");
  f4[5] = 6;
  f4[1] = -std::numeric_limits<float>::infinity();
  frugal::testing::write_file(path, npy_bytes("<f4", "(2, 3)", f4.data(), 24));
  EXPECT_INPUT_ERROR(read_npy(path), "row 0, column 1", "inf");
  f4[1] = std::nanf("");
  frugal::testing::write_file(path, npy_bytes("<f4", "(6,)", f4.data(), 24));
  EXPECT_INPUT_ERROR(read_npy(path), "element 1", "NaN");
  frugal::testing::write_file(path, npy_bytes("<f4", "(1, 2, 3)", f4.data(), 24));
  EXPECT_INPUT_ERROR(read_npy(path), "row 0, element 1 of the row", "NaN");
  std::vector<double> f8 = {0, 1, std::nan("")};
  frugal::testing::write_file(path, npy_bytes("<f8", "(3,)", f8.data(), 24));
  EXPECT_INPUT_ERROR(read_npy(path), "element 2", "NaN");
  f8[2] = 1e300;  // finite in f64: kept as it is
  frugal::testing::write_file(path, npy_bytes("<f8", "(3,)", f8.data(), 24));
  EXPECT_EQ(read_npy(path).to_vector<double>(), f8);
}

}  // namespace
}  // namespace frugal::data
