// libFuzzer target for the checkpoint reader, through parse_checkpoint on an exactly sized buffer.
// Each input is read as is and again with its trailer rewritten (correct checksum and magic), so the
// mutations reach the header and layout checks behind the checksum.
#include <cstring>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "fuzz_util.h"
#include "frugal/io/checkpoint.h"

namespace {

void parse(const uint8_t* data, size_t size) {
  using namespace frugal;
  void* bytes = ::operator new(size ? size : 1, std::align_val_t(64));
  if (size) std::memcpy(bytes, data, size);
  std::shared_ptr<void> owner(bytes, [](void* p) { ::operator delete(p, std::align_val_t(64)); });
  auto buffer = std::make_shared<Storage>(bytes, size, owner);
  io::CheckpointState state;
  if (!fuzz::accepted([&] { state = io::parse_checkpoint(buffer, "fuzz.fck"); })) return;
  FUZZ_CHECK(state.step >= 0);
  uint64_t total = 0;
  for (const auto& [name, tensor] : state.tensors) total += tensor.nbytes();
  FUZZ_CHECK(total + 36 <= size);  // fixed header (20) and trailer (16) bytes around the data
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  parse(data, size);
  if (size < 20 + 16) return 0;
  std::vector<uint8_t> sealed(data, data + size);
  const uint64_t checksum = frugal::io::xxh64(sealed.data(), size - 16);
  std::memcpy(sealed.data() + size - 16, &checksum, 8);
  std::memcpy(sealed.data() + size - 8, "FRUGALCK", 8);
  parse(sealed.data(), size);
  return 0;
}
