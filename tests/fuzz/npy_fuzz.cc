// libFuzzer target for the NPY reader (raw or gzip), through parse_npy. An accepted array holds no
// more data than the file and, when it is float, only finite values.
#include <cmath>

#include "fuzz_util.h"
#include "frugal/data/readers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace frugal;
  Tensor t;
  if (!fuzz::accepted([&] { t = data::parse_npy(fuzz::as_text(data, size), "fuzz.npy"); })) return 0;
  const bool gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  if (!gzip) FUZZ_CHECK(t.nbytes() + 10 <= size);
  FUZZ_CHECK(t.is_contiguous());
  if (t.dtype() == DType::f32)
    for (int64_t i = 0; i < t.numel(); ++i) FUZZ_CHECK(std::isfinite(t.data<float>()[i]));
  if (t.dtype() == DType::f64)
    for (int64_t i = 0; i < t.numel(); ++i) FUZZ_CHECK(std::isfinite(t.data<double>()[i]));
  return 0;
}
