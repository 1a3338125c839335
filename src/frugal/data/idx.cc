// IDX reader (the MNIST family's format): magic 00 00 <type> <rank>, rank big-endian u32 dims, then
// big-endian elements in C order. Size is checked exactly: short or long files are errors.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "frugal/data/file_bytes.h"
#include "frugal/data/readers.h"

namespace frugal::data {

namespace {

uint32_t load_be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

struct IdxType {
  DType dtype;        // what frugal returns
  int64_t file_size;  // bytes per element in the file
};

bool idx_type(uint8_t code, IdxType& type) {
  switch (code) {
    case 0x08: type = {DType::u8, 1}; return true;
    case 0x09: type = {DType::i8, 1}; return true;
    case 0x0B: type = {DType::i32, 2}; return true;  // i16 widened: frugal has no i16
    case 0x0C: type = {DType::i32, 4}; return true;
    case 0x0D: type = {DType::f32, 4}; return true;
    case 0x0E: type = {DType::f64, 8}; return true;
  }
  return false;
}

std::string dims_text(const Shape& shape) {
  std::string text;
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? " x " : "") + std::to_string(shape[i]);
  return text;
}

// The file size the IDX header promises, once `head` holds the header; no bound (INT64_MAX) when
// the header is malformed (read_idx then says what is wrong with it).
ExpectedSize idx_expected_size(const std::vector<uint8_t>& head) {
  const int64_t unbounded = INT64_MAX;
  IdxType type{};
  if (head.size() < 4) return {};
  if (head[0] != 0 || head[1] != 0 || !idx_type(head[2], type) || head[3] == 0 || head[3] > 8) return {unbounded, ""};
  const int64_t header = 4 + 4 * int64_t(head[3]);
  if (int64_t(head.size()) < header) return {};
  Shape shape(head[3], 0);
  int64_t numel = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    shape[d] = load_be32(&head[4 + 4 * d]);
    if (shape[d] == 0 || numel > (int64_t(1) << 40) / shape[d]) return {unbounded, ""};
    numel *= shape[d];
  }
  return {header + numel * type.file_size, "its IDX header (" + dims_text(shape) + ")"};
}


// The IDX content of `file` (loaded from `path`, which names it in messages).
Tensor idx_from(const FileBytes& file, const std::string& path) {
  const std::vector<uint8_t>& bytes = file.bytes;
  const int64_t size = int64_t(bytes.size());
  auto fail = [&](const std::string& what) { fail_file(file, path, what); };
  if (size < 4) fail("truncated at byte " + std::to_string(size) + ": expected a 4-byte IDX magic (00 00 <type> <rank>)");
  char magic[32];
  std::snprintf(magic, sizeof magic, "%02x %02x %02x %02x", bytes[0], bytes[1], bytes[2], bytes[3]);
  IdxType type{};
  if (bytes[0] != 0 || bytes[1] != 0 || !idx_type(bytes[2], type) || bytes[3] == 0 || bytes[3] > 8)
    fail(std::string("bad IDX magic ") + magic +
         " at byte 0: expected 00 00 <type 08/09/0b/0c/0d/0e> <rank 1..8>");
  const int64_t rank = bytes[3];
  const int64_t header = 4 + 4 * rank;
  if (size < header)
    fail("truncated at byte " + std::to_string(size) + " inside the header (" + std::to_string(header) +
         " bytes expected for rank " + std::to_string(rank) + ")");
  Shape shape(size_t(rank), 0);
  int64_t numel = 1;
  for (int64_t d = 0; d < rank; ++d) {
    shape[size_t(d)] = load_be32(&bytes[size_t(4 + 4 * d)]);
    if (shape[size_t(d)] == 0)
      fail("dimension " + std::to_string(d) + " is 0 (header at byte " + std::to_string(4 + 4 * d) +
           "); expected a positive size");
    if (numel > (int64_t(1) << 40) / shape[size_t(d)]) fail("header dims " + dims_text(shape) + " are implausibly large");
    numel *= shape[size_t(d)];
  }
  const int64_t expected = header + numel * type.file_size;
  const std::string says = " (header says " + dims_text(shape) + ")";
  if (size < expected)
    fail("truncated at byte " + std::to_string(size) + " of " + std::to_string(expected) + " expected" + says);
  if (size > expected)
    fail(std::to_string(size - expected) + " trailing bytes after byte " + std::to_string(expected) + says);
  check_gzip_complete(file, path);

  Tensor out = Tensor::empty(shape, type.dtype);
  const uint8_t* src = bytes.data() + header;
  switch (bytes[2]) {
    case 0x08:
    case 0x09: std::memcpy(out.raw_data(), src, size_t(numel)); break;
    case 0x0B: {
      int32_t* dst = out.data<int32_t>();
      for (int64_t i = 0; i < numel; ++i) dst[i] = int16_t(uint16_t(src[2 * i] << 8 | src[2 * i + 1]));
      break;
    }
    case 0x0C: {
      int32_t* dst = out.data<int32_t>();
      for (int64_t i = 0; i < numel; ++i) dst[i] = int32_t(load_be32(src + 4 * i));
      break;
    }
    case 0x0D: {
      float* dst = out.data<float>();
      for (int64_t i = 0; i < numel; ++i) {
        uint32_t u = load_be32(src + 4 * i);
        std::memcpy(&dst[i], &u, 4);
      }
      break;
    }
    case 0x0E: {
      double* dst = out.data<double>();
      for (int64_t i = 0; i < numel; ++i) {
        uint64_t u = uint64_t(load_be32(src + 8 * i)) << 32 | load_be32(src + 8 * i + 4);
        std::memcpy(&dst[i], &u, 8);
      }
      break;
    }
  }
  return out;
}

}  // namespace

Tensor read_idx(const std::string& path) { return idx_from(load_file(path, idx_expected_size), path); }

Tensor parse_idx(std::string_view bytes, const std::string& name) {
  return idx_from(decode_bytes(std::vector<uint8_t>(bytes.begin(), bytes.end()), name, idx_expected_size), name);
}

Tensor unit_float(const Tensor& pixels) {
  FRUGAL_CHECK(pixels.dtype() == DType::u8, "unit_float expects u8 pixels");
  Tensor packed = pixels.contiguous();
  Tensor out = Tensor::empty(packed.shape(), DType::f32);
  const uint8_t* src = packed.data<uint8_t>();
  float* dst = out.data<float>();
  for (int64_t i = 0; i < packed.numel(); ++i) dst[i] = float(src[i]) / 255.0f;
  return out;
}

Dataset read_idx_dataset(const std::string& images_path, const std::string& labels_path, bool scale) {
  Tensor images = read_idx(images_path);  // u8 (N, H, W) or (N, C, H, W)
  Tensor labels = read_idx(labels_path);  // u8 (N)
  if (images.dtype() != DType::u8)
    throw InputError(images_path + ": expected unsigned byte pixels (IDX type 08), got " +
                     std::string(dtype_name(images.dtype())));
  if (images.rank() != 3 && images.rank() != 4)
    throw InputError(images_path + ": expected images (N x H x W) or (N x C x H x W), header says " +
                     dims_text(images.shape()));
  if (labels.rank() != 1 || dtype_is_float(labels.dtype()))
    throw InputError(labels_path + ": expected integer labels (N), header says " + dims_text(labels.shape()) + " of " +
                     std::string(dtype_name(labels.dtype())));
  const int64_t n = images.size(0);
  if (labels.size(0) != n)
    throw InputError("image and label counts differ: " + images_path + " has " + std::to_string(n) + " images, " +
                     labels_path + " has " + std::to_string(labels.size(0)) + " labels");
  Shape shape = images.shape();
  if (images.rank() == 3) shape.insert(shape.begin() + 1, 1);
  Dataset dataset;
  dataset.inputs = images.view(shape);  // (N, C, H, W) u8
  if (scale) dataset.inputs = unit_float(dataset.inputs);
  dataset.targets = labels.to(DType::i64);
  return dataset;
}

}  // namespace frugal::data
