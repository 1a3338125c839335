// libFuzzer target for the safetensors reader, through parse_safetensors on an exactly sized buffer
// (so a read past the end is an ASan report). Accepted tensors lie inside the buffer; the finite
// weights check may refuse them, as it does for a model file.
#include <cstring>
#include <memory>
#include <new>

#include "fuzz_util.h"
#include "frugal/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace frugal;
  // 64-byte aligned as read_whole_file's buffer, but sized exactly.
  void* bytes = ::operator new(size ? size : 1, std::align_val_t(64));
  if (size) std::memcpy(bytes, data, size);
  std::shared_ptr<void> owner(bytes, [](void* p) { ::operator delete(p, std::align_val_t(64)); });
  auto buffer = std::make_shared<Storage>(bytes, size, owner);
  io::SafetensorsFile file;
  if (!fuzz::accepted([&] { file = io::parse_safetensors(buffer, "fuzz.safetensors"); })) return 0;
  uint64_t total = 0;
  for (const auto& [name, tensor] : file.tensors) {
    FUZZ_CHECK(!name.empty() && name != "__metadata__");
    total += tensor.nbytes();
  }
  FUZZ_CHECK(total + 8 <= size);
  fuzz::accepted([&] { io::check_finite_weights(file, "fuzz.safetensors"); });
  return 0;
}
