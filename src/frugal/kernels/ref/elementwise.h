// Reference elementwise and reduction kernels (also max, dropout and the embedding gather /
// scatter-add): plain loops over strided operands, accumulating in double. The oracle the fast
// kernels in cpu/ are tested against; also what f64 runs.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "frugal/base/rng.h"
#include "frugal/tensor/tensor.h"

namespace frugal {
namespace kernels {

enum class BinaryOp { add, sub, mul, div };

template <class T>
inline T apply_binary(BinaryOp op, T x, T y) {
  switch (op) {
    case BinaryOp::add: return x + y;
    case BinaryOp::sub: return x - y;
    case BinaryOp::mul: return x * y;
    case BinaryOp::div: return x / y;
  }
  return T(0);
}

namespace ref {

// out[i] = a[i] op b[i] over `shape`; a and b are read through their (broadcast) strides, out is
// contiguous.
template <class T>
void binary(BinaryOp op, const T* a, const Strides& a_strides, const T* b, const Strides& b_strides,
            T* out, const Shape& shape) {
  int64_t i = 0;
  for_each_offset2(shape, a_strides, b_strides, [&](int64_t oa, int64_t ob) {
    out[i++] = T(apply_binary<double>(op, double(a[oa]), double(b[ob])));
  });
}

// out[i] = x[i] * scale + shift over n contiguous elements.
template <class T>
void scale_shift(const T* x, T* out, int64_t n, double scale, double shift) {
  for (int64_t i = 0; i < n; ++i) out[i] = T(double(x[i]) * scale + shift);
}

// Sums x, viewed as (outer, reduce, inner) contiguous, over the middle axis: out (outer, inner).
template <class T>
void sum_middle(const T* x, T* out, int64_t outer, int64_t reduce, int64_t inner) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double total = 0;
      for (int64_t r = 0; r < reduce; ++r) total += double(x[(o * reduce + r) * inner + i]);
      out[o * inner + i] = T(total);
    }
}

// Maximum of x, viewed as (outer, reduce, inner) contiguous, over the middle axis: out and
// argmax (outer, inner). argmax is the FIRST maximal position; a NaN counts as the maximum.
template <class T>
void max_middle(const T* x, T* out, int64_t* argmax, int64_t outer, int64_t reduce, int64_t inner) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const T* col = x + o * reduce * inner + i;
      T best = col[0];
      int64_t best_index = 0;
      for (int64_t r = 1; r < reduce; ++r) {
        T v = col[r * inner];
        if (v > best || (v != v && best == best)) best = v, best_index = r;
      }
      out[o * inner + i] = best;
      argmax[o * inner + i] = best_index;
    }
}

// The dropout draw for element i: word i % 4 of the Philox block (i / 4, stream) under
// mix_key(seed, dropout), as 24 bits in [0, 1). Equals the i-th Rng(seed, stream,
// RandomPurpose::dropout).uniform(), so any element's mask can be recomputed alone.
inline float dropout_uniform(const std::array<uint32_t, 4>& block, int64_t i) {
  return float(block[size_t(i & 3)] >> 8) * (1.0f / 16777216.0f);
}
inline std::array<uint32_t, 4> dropout_block(uint64_t key, uint64_t stream, uint64_t block_index) {
  return philox4x32({uint32_t(block_index), uint32_t(block_index >> 32), uint32_t(stream), uint32_t(stream >> 32)},
                    key);
}
inline uint64_t dropout_key(uint64_t seed) { return mix_key(seed, uint64_t(RandomPurpose::dropout)); }

// out[i] = x[i] * scale where draw(i) >= p, else 0; n contiguous elements. 0 < p < 1.
template <class T>
void dropout(const T* x, T* out, int64_t n, double p, uint64_t seed, uint64_t stream) {
  const uint64_t key = dropout_key(seed);
  const double scale = 1.0 / (1.0 - p);
  std::array<uint32_t, 4> block{};
  for (int64_t i = 0; i < n; ++i) {
    if ((i & 3) == 0) block = dropout_block(key, stream, uint64_t(i) >> 2);
    out[i] = double(dropout_uniform(block, i)) >= p ? T(double(x[i]) * scale) : T(0);
  }
}

// Embedding lookup: out[k, :] = weight[indices[k], :], weight (V, C), out (count, C). Indices are
// checked by the caller.
template <class T, class I>
void embedding_forward(const I* indices, int64_t count, const T* weight, int64_t channels, T* out) {
  for (int64_t k = 0; k < count; ++k)
    for (int64_t c = 0; c < channels; ++c) out[k * channels + c] = weight[int64_t(indices[k]) * channels + c];
}

// grad_weight (V, C) = sum over k with indices[k] == v of grad_out[k, :], summed in double in
// index order.
template <class T, class I>
void embedding_backward(const I* indices, int64_t count, const T* grad_out, int64_t channels, T* grad_weight,
                        int64_t rows) {
  std::vector<double> total(size_t(rows * channels), 0.0);
  for (int64_t k = 0; k < count; ++k)
    for (int64_t c = 0; c < channels; ++c) total[size_t(int64_t(indices[k]) * channels + c)] += double(grad_out[k * channels + c]);
  for (size_t j = 0; j < total.size(); ++j) grad_weight[j] = T(total[j]);
}

}  // namespace ref
}  // namespace kernels
}  // namespace frugal
