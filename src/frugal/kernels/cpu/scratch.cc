#include "frugal/kernels/cpu/scratch.h"

#include <array>
#include <memory>

#include "frugal/tensor/tensor.h"

namespace frugal {
namespace kernels {
namespace cpu {

void* scratch_bytes(Scratch role, size_t bytes) {
  thread_local std::array<std::unique_ptr<Storage>, kScratchRoles> buffers;
  std::unique_ptr<Storage>& buffer = buffers[role];
  if (!buffer || buffer->bytes() < bytes) {
    MemoryCategoryGuard workspace(MemoryCategory::workspace);
    buffer = std::make_unique<Storage>(bytes);
  }
  return buffer->data();
}

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
