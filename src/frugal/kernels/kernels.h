// Kernel selection shared by every op: ref/ kernels (scalar, double accumulation, templated on
// the element type) are the oracle; cpu/ kernels (oneDNN, AVX-512, threads) are what runs.
#pragma once

#include "frugal/tensor/dtype.h"

namespace frugal {
namespace kernels {

// When on (per thread), f32 ops run the reference kernels too; tests use it to compare paths.
void set_reference_mode(bool on);
bool reference_mode();

class ReferenceModeGuard {
 public:
  explicit ReferenceModeGuard(bool on = true) : previous_(reference_mode()) { set_reference_mode(on); }
  ~ReferenceModeGuard() { set_reference_mode(previous_); }

 private:
  bool previous_;
};

// Calls ref(tag) with a value of the element type for the reference path (f64 always; f32 in
// reference mode) and cpu() for the fast f32 path. Other dtypes are an error naming `op`.
template <class Ref, class Cpu>
void dispatch_float(DType dtype, const char* op, Ref&& ref, Cpu&& cpu);

void fail_dtype(const char* op, DType dtype);

template <class Ref, class Cpu>
void dispatch_float(DType dtype, const char* op, Ref&& ref, Cpu&& cpu) {
  if (dtype == DType::f64) {
    ref(double{});
  } else if (dtype == DType::f32) {
    if (reference_mode()) ref(float{});
    else cpu();
  } else {
    fail_dtype(op, dtype);
  }
}

}  // namespace kernels
}  // namespace frugal
