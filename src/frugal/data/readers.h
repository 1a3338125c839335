// Readers for the input formats frugal trains on: IDX (MNIST family, raw or gzip), CSV tables,
// NumPy .npy arrays and plain text with a byte-level character vocabulary. Every problem with a file
// is an InputError naming the file, the byte offset or line/column, and what was expected.
// Limits: whole files are read into memory; CSV fields cannot span lines; NPY is little-endian C order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "frugal/data/dataset.h"
#include "frugal/tensor/tensor.h"

namespace frugal::data {

// IDX file (gzip detected by its magic, not the name). Element types: 0x08 u8, 0x09 i8, 0x0B i16
// (returned as i32), 0x0C i32, 0x0D f32, 0x0E f64, all big-endian. Shape from the header, e.g.
// u8 (N, H, W) for images or (N) for labels.
Tensor read_idx(const std::string& path);

// MNIST-style pair: images f32 (N, 1, H, W) scaled to [0, 1] (u8 pixels / 255), labels i64 (N).
// With scale = false the images stay u8 (a quarter of the bytes, e.g. to split before scaling);
// unit_float() then gives exactly what scale = true would have.
Dataset read_idx_dataset(const std::string& images_path, const std::string& labels_path, bool scale = true);
Tensor unit_float(const Tensor& pixels);  // u8 -> f32 pixel / 255 (as torchvision's ToTensor)

struct CsvOptions {
  std::string label_column;  // header name of the label column; if empty, label_index is used
  int64_t label_index = -1;  // 0-based column; -1: the last column
  enum class Header { detect, yes, no } header = Header::detect;
  char delimiter = ',';
  bool label_names = false;  // false: labels are class indices 0, 1, 2, ...; true: class names
  int64_t skip_lines = 0;    // file lines skipped before anything else (a count, a title); line numbers still count them
  std::string comment;       // when not empty, a line starting with it (after blanks) is skipped, e.g. "#"
};

struct CsvTable {
  Tensor features;  // f32 (N, F)
  Tensor labels;    // i64 (N)
  std::vector<std::string> feature_names;  // from the header, else "column_<k>" (k 0-based, file order)
  std::vector<std::string> label_names;    // with CsvOptions::label_names: class index -> name, sorted; else empty
  std::vector<int64_t> lines;              // (N) the file line (1-based) of each data row
};

// Numeric features and one label column. Labels are class indices (integers >= 0; anything else is
// an InputError naming the line and column), or with options.label_names each distinct label text is
// a class, numbered in sorted (byte) order of the names in this file.
// Header detection: the first row is a header when most of its fields are not numbers in columns
// whose next rows (up to 8) are mostly numbers; a first data row with one corrupted field stays data
// and is refused at its line and column. Blank lines are skipped; fields may be quoted ("a,b" and "" for a
// quote). Line endings LF or CRLF; a CR without LF (classic Mac OS files) is an error that says so.
CsvTable read_csv(const std::string& path, const CsvOptions& options = {});

// NPY v1/v2/v3 arrays with dtype <f4, <f8, |u1, <i8 or <i4 (also |i1), C order. Returns the same
// dtype (f32, f64, u8, i64, i32, i8) and shape; a 0-d array gives a rank-0 tensor.
Tensor read_npy(const std::string& path);

// The whole file as bytes (gzip inflated); an empty file is an error.
std::string read_text(const std::string& path);

// In-memory forms of the readers above: `bytes` is a file's content (gzip inflated likewise) and
// `name` stands for its path in messages. The read_* functions load the file and call these; the
// fuzz targets (tests/fuzz) call them directly.
Tensor parse_idx(std::string_view bytes, const std::string& name);
CsvTable parse_csv(std::string_view bytes, const std::string& name, const CsvOptions& options = {});
Tensor parse_npy(std::string_view bytes, const std::string& name);
std::string parse_text(std::string_view bytes, const std::string& name);

// Byte-level vocabulary: the sorted distinct bytes of the training text, class index = rank.
class CharVocab {
 public:
  CharVocab() = default;
  explicit CharVocab(std::string_view text);
  int64_t size() const { return int64_t(chars_.size()); }
  // i64 (len) token ids; InputError naming the character and its offset if it is not in the vocabulary.
  Tensor encode(std::string_view text) const;
  std::string decode(const Tensor& tokens) const;  // any integer dtype, any shape (read row-major)
  std::string decode(const std::vector<int64_t>& tokens) const;
  // Saved with the model as a JSON array of byte values, e.g. "[10,32,33]".
  std::string to_string() const;
  static CharVocab from_string(std::string_view saved);  // InputError if malformed
  const std::string& chars() const { return chars_; }

 private:
  std::string chars_;             // sorted distinct bytes
  std::vector<int16_t> index_ = std::vector<int16_t>(256, -1);  // byte -> id or -1
};

}  // namespace frugal::data
