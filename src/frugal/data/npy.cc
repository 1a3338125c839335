// NPY reader: "\x93NUMPY", version (1|2|3).x, header length (u16 for v1, u32 for v2/v3), a Python
// dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (N, ...)}, then the raw data.
// Limits: little-endian (or byte-sized) numeric dtypes only, C order, no object or structured dtypes;
// assumes a little-endian host (data is copied as is). Float data must be finite: a NaN or inf is
// refused naming its element (one inf makes every sample NaN after normalization).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <string_view>

#include "frugal/base/format.h"
#include "frugal/data/file_bytes.h"
#include "frugal/data/readers.h"

namespace frugal::data {

namespace {

// Just enough of a Python literal parser for the NPY header dict.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& path, int64_t offset)
      : text_(text), path_(path), offset_(offset) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw InputError(path_ + ": NPY header at byte " + std::to_string(offset_ + int64_t(position_)) + ": " + what +
                     " (header: " + echo_text(text_) + ")");
  }
  void skip_space() {
    while (position_ < text_.size() && (text_[position_] == ' ' || text_[position_] == '\t' ||
                                        text_[position_] == '\n' || text_[position_] == '\r'))
      ++position_;
  }
  bool accept(char c) {
    skip_space();
    if (position_ < text_.size() && text_[position_] == c) { ++position_; return true; }
    return false;
  }
  void expect(char c) {
    if (!accept(c)) fail(std::string("expected '") + c + "'");
  }
  std::string string_literal() {
    skip_space();
    if (position_ >= text_.size() || (text_[position_] != '\'' && text_[position_] != '"')) fail("expected a string");
    char quote = text_[position_++];
    size_t end = text_.find(quote, position_);
    if (end == std::string_view::npos) fail("unterminated string");
    std::string value(text_.substr(position_, end - position_));
    position_ = end + 1;
    return value;
  }
  bool boolean() {
    skip_space();
    for (auto [word, value] : {std::pair<std::string_view, bool>{"True", true}, {"False", false}}) {
      if (text_.substr(position_, word.size()) == word) { position_ += word.size(); return value; }
    }
    fail("expected True or False");
  }
  Shape tuple() {
    expect('(');
    Shape shape;
    while (!accept(')')) {
      skip_space();
      int64_t value = 0;
      size_t start = position_;
      while (position_ < text_.size() && text_[position_] >= '0' && text_[position_] <= '9') {
        if (value > (int64_t(1) << 50)) fail("dimension too large");
        value = value * 10 + (text_[position_++] - '0');
      }
      if (position_ == start) fail("expected a non-negative integer dimension");
      if (position_ < text_.size() && text_[position_] == 'L') ++position_;  // Python 2 long
      shape.push_back(value);
      if (!accept(',')) { expect(')'); break; }
    }
    return shape;
  }

 private:
  std::string_view text_;
  const std::string& path_;
  int64_t offset_;
  size_t position_ = 0;
};

// The first NaN or inf of float data, as an InputError naming its element: (row, column) of a 2-d
// array, row and flat index within the row beyond, the flat index of a 1-d one.
template <typename T>
void check_finite(const T* values, const Shape& shape, const std::string& path) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  for (int64_t i = 0; i < numel; ++i) {
    if (std::isfinite(values[i])) continue;
    const int64_t row_size = shape.size() >= 2 ? numel / shape[0] : 1;
    std::string where;
    if (shape.size() == 2) where = "row " + std::to_string(i / row_size) + ", column " + std::to_string(i % row_size);
    else if (shape.size() > 2)
      where = "row " + std::to_string(i / row_size) + ", element " + std::to_string(i % row_size) + " of the row";
    else where = "element " + std::to_string(i);
    throw InputError(path + ": " + where + " (flat index " + std::to_string(i) + ", 0-based, shape " +
                     shape_str(shape) + "): " + (std::isnan(values[i]) ? "NaN" : "inf") +
                     "; expected finite numbers (clean or drop the sample, e.g. np.nan_to_num)");
  }
}

// The NPY content of `file` (loaded from `path`, which names it in messages).
Tensor npy_from(const FileBytes& file, const std::string& path) {
  const std::vector<uint8_t>& bytes = file.bytes;
  const int64_t size = int64_t(bytes.size());
  auto fail = [&](const std::string& what) { fail_file(file, path, what); };
  static const uint8_t kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  // size first: an empty file has no buffer, and memcmp must not see a null pointer.
  if (size == 0 || std::memcmp(bytes.data(), kMagic, size_t(std::min<int64_t>(size, 6))) != 0)
    fail("bad magic at byte 0: expected \\x93NUMPY (not a .npy file)");
  if (size < 10) fail("truncated at byte " + std::to_string(size) + " inside the NPY preamble (10 bytes expected)");
  const int major = bytes[6];
  if (major < 1 || major > 3)
    fail("unsupported NPY version " + std::to_string(major) + "." + std::to_string(bytes[7]) + " at byte 6; expected 1, 2 or 3");
  int64_t header_length, header_start;
  if (major == 1) {
    header_length = bytes[8] | int64_t(bytes[9]) << 8;
    header_start = 10;
  } else {
    if (size < 12) fail("truncated at byte " + std::to_string(size) + " inside the NPY preamble (12 bytes expected)");
    header_length = bytes[8] | int64_t(bytes[9]) << 8 | int64_t(bytes[10]) << 16 | int64_t(bytes[11]) << 24;
    header_start = 12;
  }
  const int64_t data_start = header_start + header_length;
  if (size < data_start)
    fail("truncated at byte " + std::to_string(size) + " inside the header (header ends at byte " +
         std::to_string(data_start) + ")");
  std::string_view header_text(reinterpret_cast<const char*>(bytes.data() + header_start), size_t(header_length));

  HeaderParser parser(header_text, path, header_start);
  std::string descr;
  bool fortran_order = false, have_descr = false, have_order = false, have_shape = false;
  Shape shape;
  parser.expect('{');
  while (!parser.accept('}')) {
    std::string key = parser.string_literal();
    parser.expect(':');
    if (key == "descr") descr = parser.string_literal(), have_descr = true;
    else if (key == "fortran_order") fortran_order = parser.boolean(), have_order = true;
    else if (key == "shape") shape = parser.tuple(), have_shape = true;
    else parser.fail("unexpected key '" + echo_text(key) + "'; expected descr, fortran_order, shape");
    if (!parser.accept(',')) { parser.expect('}'); break; }
  }
  if (!have_descr || !have_order || !have_shape) parser.fail("missing one of the keys descr, fortran_order, shape");
  if (fortran_order)
    fail("fortran_order is True; expected C order (save with np.ascontiguousarray(a) or np.save of a C-order array)");

  DType dtype;
  if (descr == "<f4") dtype = DType::f32;
  else if (descr == "<f8") dtype = DType::f64;
  else if (descr == "|u1" || descr == "<u1" || descr == "u1") dtype = DType::u8;
  else if (descr == "|i1" || descr == "<i1" || descr == "i1") dtype = DType::i8;
  else if (descr == "<i8") dtype = DType::i64;
  else if (descr == "<i4") dtype = DType::i32;
  else
    fail("dtype '" + echo_text(descr) + "' is not supported; expected <f4, <f8, |u1, |i1, <i4 or <i8 (little-endian)");

  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d != 0 && numel > (int64_t(1) << 44) / d) fail("shape " + shape_str(shape) + " is implausibly large");
    numel *= d;
  }
  const int64_t data_bytes = numel * int64_t(dtype_size(dtype));
  const int64_t expected = data_start + data_bytes;
  if (size < expected)
    fail("truncated at byte " + std::to_string(size) + " of " + std::to_string(expected) + " expected (" +
         std::string(dtype_name(dtype)) + " " + shape_str(shape) + " needs " + std::to_string(data_bytes) +
         " data bytes from byte " + std::to_string(data_start) + ")");
  if (size > expected)
    fail(std::to_string(size - expected) + " trailing bytes after byte " + std::to_string(expected) + " (" +
         std::string(dtype_name(dtype)) + " " + shape_str(shape) + ")");
  check_gzip_complete(file, path);
  Tensor out = Tensor::empty(shape, dtype);
  if (data_bytes > 0) std::memcpy(out.raw_data(), bytes.data() + data_start, size_t(data_bytes));
  if (dtype == DType::f32) check_finite(out.data<float>(), shape, path);
  if (dtype == DType::f64) check_finite(out.data<double>(), shape, path);
  return out;
}

}  // namespace

Tensor read_npy(const std::string& path) { return npy_from(load_file(path), path); }

Tensor parse_npy(std::string_view bytes, const std::string& name) {
  return npy_from(decode_bytes(std::vector<uint8_t>(bytes.begin(), bytes.end())), name);
}

}  // namespace frugal::data
