// The one oneDNN CPU engine and the per-thread stream every cpu/ kernel runs its primitives on,
// and the fixed-size key their per-thread primitive caches use. Internal to kernels/cpu (the only
// folder that includes oneDNN).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include <dnnl.hpp>

#include "frugal/base/error.h"

namespace frugal {
namespace kernels {
namespace cpu {

dnnl::engine& onednn_engine();
dnnl::stream& onednn_stream();  // in-order, one per thread

// A primitive cache key: building it allocates nothing.
struct PrimitiveKey {
  std::array<int64_t, 28> values{};
  int count = 0;
  PrimitiveKey& add(int64_t v) {
    FRUGAL_CHECK(count < int(values.size()), "primitive cache key too long");
    values[size_t(count++)] = v;
    return *this;
  }
  bool operator==(const PrimitiveKey& other) const { return values == other.values; }
};

struct PrimitiveKeyHash {
  size_t operator()(const PrimitiveKey& key) const {
    uint64_t h = 1469598103934665603ull;
    for (int64_t v : key.values) h = (h ^ uint64_t(v)) * 1099511628211ull;
    return size_t(h);
  }
};

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
