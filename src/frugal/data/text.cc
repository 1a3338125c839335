// Plain text and the byte-level character vocabulary of the char-level language models.
// Limits: a "character" is a byte; multi-byte UTF-8 characters become several tokens.
#include <cstdio>
#include <string>

#include "frugal/data/file_bytes.h"
#include "frugal/data/readers.h"

namespace frugal::data {

namespace {

std::string describe_byte(uint8_t byte) {
  char text[40];
  if (byte >= 0x20 && byte < 0x7f) std::snprintf(text, sizeof text, "'%c' (byte 0x%02x)", byte, byte);
  else std::snprintf(text, sizeof text, "byte 0x%02x", byte);
  return text;
}

std::string text_from(const FileBytes& file, const std::string& path) {
  check_gzip_complete(file, path);
  if (file.bytes.empty()) throw InputError(path + ": empty file; expected training text");
  return std::string(file.bytes.begin(), file.bytes.end());
}

}  // namespace

std::string read_text(const std::string& path) { return text_from(load_file(path), path); }

std::string parse_text(std::string_view bytes, const std::string& name) {
  return text_from(decode_bytes(std::vector<uint8_t>(bytes.begin(), bytes.end())), name);
}

CharVocab::CharVocab(std::string_view text) {
  bool seen[256] = {};
  for (char c : text) seen[uint8_t(c)] = true;
  for (int b = 0; b < 256; ++b)
    if (seen[b]) {
      index_[size_t(b)] = int16_t(chars_.size());
      chars_ += char(b);
    }
}

Tensor CharVocab::encode(std::string_view text) const {
  Tensor tokens = Tensor::empty({int64_t(text.size())}, DType::i64);  // (len)
  int64_t* out = tokens.data<int64_t>();
  for (size_t i = 0; i < text.size(); ++i) {
    int16_t id = index_[uint8_t(text[i])];
    if (id < 0)
      throw InputError("character " + describe_byte(uint8_t(text[i])) + " at offset " + std::to_string(i) +
                       " is not in the vocabulary (" + std::to_string(size()) +
                       " characters, built from the training text)");
    out[i] = id;
  }
  return tokens;
}

std::string CharVocab::decode(const std::vector<int64_t>& tokens) const {
  std::string text;
  text.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= size())
      throw InputError("token " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                       " is outside the vocabulary [0, " + std::to_string(size()) + ")");
    text += chars_[size_t(tokens[i])];
  }
  return text;
}

std::string CharVocab::decode(const Tensor& tokens) const {
  FRUGAL_CHECK(!dtype_is_float(tokens.dtype()), "CharVocab::decode of a float tensor");
  return decode(tokens.to_vector<int64_t>());
}

std::string CharVocab::to_string() const {
  std::string saved = "[";
  for (size_t i = 0; i < chars_.size(); ++i) {
    if (i) saved += ',';
    saved += std::to_string(uint8_t(chars_[i]));
  }
  return saved + "]";
}

CharVocab CharVocab::from_string(std::string_view saved) {
  auto fail = [&](size_t offset, const std::string& what) -> void {
    throw InputError("saved vocabulary at character " + std::to_string(offset) + ": " + what +
                     " (expected a JSON array of increasing byte values, e.g. [10,32,33])");
  };
  CharVocab vocab;
  size_t i = 0;
  auto skip = [&] { while (i < saved.size() && (saved[i] == ' ' || saved[i] == '\n' || saved[i] == '\t' || saved[i] == '\r')) ++i; };
  skip();
  if (i >= saved.size() || saved[i] != '[') fail(i, "expected '['");
  ++i;
  skip();
  int previous = -1;
  if (i < saved.size() && saved[i] == ']') ++i;
  else
    while (true) {
      skip();
      size_t start = i;
      int value = 0;
      while (i < saved.size() && saved[i] >= '0' && saved[i] <= '9' && value <= 255) value = value * 10 + (saved[i++] - '0');
      if (i == start) fail(i, "expected a byte value");
      if (value > 255 || value <= previous) fail(start, "byte values must be increasing and at most 255");
      vocab.index_[size_t(value)] = int16_t(vocab.chars_.size());
      vocab.chars_ += char(value);
      previous = value;
      skip();
      if (i < saved.size() && saved[i] == ',') { ++i; continue; }
      if (i < saved.size() && saved[i] == ']') { ++i; break; }
      fail(i, "expected ',' or ']'");
    }
  skip();
  if (i != saved.size()) fail(i, "unexpected text after ']'");
  return vocab;
}

}  // namespace frugal::data
