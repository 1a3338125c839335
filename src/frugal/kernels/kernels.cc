#include "frugal/kernels/kernels.h"

#include <string>

#include "frugal/base/error.h"

namespace frugal {
namespace kernels {

namespace {
thread_local bool t_reference_mode = false;
}

void set_reference_mode(bool on) { t_reference_mode = on; }
bool reference_mode() { return t_reference_mode; }

void fail_dtype(const char* op, DType dtype) {
  throw InputError(std::string(op) + ": dtype " + std::string(dtype_name(dtype)) +
                   " is not supported (expected f32 or f64)");
}

}  // namespace kernels
}  // namespace frugal
