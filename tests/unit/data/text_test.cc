// Text reader and the byte-level vocabulary: sorted ids, round trips through encode/decode and
// to_string/from_string, and errors for empty files, unknown characters and malformed saved vocabularies.
#include "frugal/data/readers.h"
#include "test_util.h"
#include "unit/data/temp_files.h"

namespace frugal::data {
namespace {

using frugal::testing::TempDir;

TEST(Text, ReadWholeFileAndRejectEmpty) {
  TempDir dir;
  std::string text = "In the beginning\nGod created the heaven.";
  text += std::string(1, '\0') + "\xff";
  frugal::testing::write_text(dir.file("a.txt"), text);
  EXPECT_EQ(read_text(dir.file("a.txt")), text);
  frugal::testing::write_file(dir.file("a.gz"), frugal::testing::gzip_stored({text.begin(), text.end()}));
  EXPECT_EQ(read_text(dir.file("a.gz")), text);
  frugal::testing::write_text(dir.file("empty.txt"), "");
  EXPECT_INPUT_ERROR(read_text(dir.file("empty.txt")), dir.file("empty.txt"), "empty file");
}

TEST(CharVocab, SortedUniqueBytesAndRoundTrip) {
  CharVocab vocab("hello world");
  EXPECT_EQ(vocab.size(), 8);
  EXPECT_EQ(vocab.chars(), " dehlorw");
  Tensor ids = vocab.encode("hold");
  EXPECT_EQ(ids.dtype(), DType::i64);
  EXPECT_EQ(ids.to_vector<int64_t>(), (std::vector<int64_t>{3, 5, 4, 1}));
  EXPECT_EQ(vocab.decode(ids), "hold");
  EXPECT_EQ(vocab.decode(std::vector<int64_t>{7, 5}), "wo");
  EXPECT_EQ(vocab.to_string(), "[32,100,101,104,108,111,114,119]");
  CharVocab loaded = CharVocab::from_string(vocab.to_string());
  EXPECT_EQ(loaded.chars(), vocab.chars());
  EXPECT_EQ(loaded.encode("world").to_vector<int64_t>(), vocab.encode("world").to_vector<int64_t>());
  CharVocab binary(std::string("\n\x01\xff\x80", 4));
  EXPECT_EQ(binary.to_string(), "[1,10,128,255]");
  EXPECT_EQ(CharVocab::from_string(" [ 1, 10 ,128,255 ]\n").chars(), binary.chars());
  EXPECT_EQ(CharVocab::from_string("[]").size(), 0);
}

TEST(CharVocab, Errors) {
  CharVocab vocab("abc");
  EXPECT_INPUT_ERROR(vocab.encode("cab!"), "character '!' (byte 0x21) at offset 3", "not in the vocabulary");
  EXPECT_INPUT_ERROR(vocab.encode("a\n"), "byte 0x0a at offset 1");
  EXPECT_INPUT_ERROR(vocab.decode(std::vector<int64_t>{0, 3}), "token 3 at position 1");
  EXPECT_INPUT_ERROR(CharVocab::from_string("abc"), "character 0", "expected '['");
  EXPECT_INPUT_ERROR(CharVocab::from_string("[1,1]"), "increasing");
  EXPECT_INPUT_ERROR(CharVocab::from_string("[1,256]"), "at most 255");
  EXPECT_INPUT_ERROR(CharVocab::from_string("[1,2"), "expected ',' or ']'");
  EXPECT_INPUT_ERROR(CharVocab::from_string("[1,2] x"), "unexpected text");
}

}  // namespace
}  // namespace frugal::data
