// libFuzzer target for the IDX reader (raw or gzip), through parse_idx. An accepted file has a rank
// 1..8 header with positive dims, and an uncompressed one is exactly header + elements long.
#include "fuzz_util.h"
#include "frugal/data/readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace frugal;
  Tensor t;
  if (!fuzz::accepted([&] { t = data::parse_idx(fuzz::as_text(data, size), "fuzz.idx"); })) return 0;
  FUZZ_CHECK(t.rank() >= 1 && t.rank() <= 8 && t.numel() > 0);
  const bool gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  if (!gzip) {
    const size_t file_size = data[2] == 0x0B ? 2 : data[2] == 0x0D || data[2] == 0x0C ? 4 : data[2] == 0x0E ? 8 : 1;
    FUZZ_CHECK(size == size_t(4 + 4 * t.rank()) + size_t(t.numel()) * file_size);
  }
  return 0;
}
