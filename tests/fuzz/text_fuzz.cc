// libFuzzer target for the text reader (raw or gzip, parse_text) and the character vocabulary saved
// with a model (CharVocab::from_string). Accepted text round-trips through its own vocabulary; an
// accepted saved vocabulary round-trips through to_string.
#include "fuzz_util.h"
#include "frugal/data/readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace frugal;
  const std::string_view bytes = fuzz::as_text(data, size);
  std::string text;
  if (fuzz::accepted([&] { text = data::parse_text(bytes, "fuzz.txt"); })) {
    FUZZ_CHECK(!text.empty());
    data::CharVocab vocab(text);
    FUZZ_CHECK(vocab.size() >= 1 && vocab.size() <= 256);
    Tensor tokens = vocab.encode(text);
    FUZZ_CHECK(tokens.numel() == int64_t(text.size()) && vocab.decode(tokens) == text);
  }
  data::CharVocab saved;
  if (fuzz::accepted([&] { saved = data::CharVocab::from_string(bytes); }))
    FUZZ_CHECK(data::CharVocab::from_string(saved.to_string()).chars() == saved.chars());
  return 0;
}
