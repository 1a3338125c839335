// Scratch buffers of the hand kernels (conv.cc, winograd.cc, stem.cc): one per thread and role. A buffer
// grows to the largest request, never shrinks, and counts as workspace in the memory accounting
// (tensor.h), as dense.cc's reorder buffers do. A kernel holds each role once; kernels on one
// thread run one after the other. Called inside a parallel region, each worker gets its own.
#pragma once

#include <cstddef>
#include <cstdint>

namespace frugal {
namespace kernels {
namespace cpu {

enum Scratch : size_t {
  kPartials,  // conv.cc: the weight gradient's partial sums
  kImage,     // conv.cc: one image's (or image group's) padded x buffer
  kPairs,     // conv.cc: bf16 gradient pairs
  kRow,       // conv.cc: one padded bf16 row
  kWinoWeights,  // winograd.cc: the transformed weights
  kWinoTiles,    // winograd.cc: one block of transformed input and output tiles
  kStemImage,     // stem.cc: one padded input image
  kStemPartials,  // stem.cc: per-image partial sums (the calling thread's, shared by the workers)
  kScratchRoles
};

// At least `bytes` bytes, 64-byte aligned, this thread's for `role`.
void* scratch_bytes(Scratch role, size_t bytes);

template <class T>
T* scratch(Scratch role, int64_t count) {
  return static_cast<T*>(scratch_bytes(role, size_t(count > 1 ? count : 1) * sizeof(T)));
}

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
