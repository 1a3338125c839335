#include "frugal/kernels/cpu/elementwise.h"

#include "frugal/base/parallel.h"

namespace frugal {
namespace kernels {
namespace cpu {

namespace {
constexpr int64_t kGrain = 16384;  // elements per thread chunk below which one thread is faster

template <BinaryOp Op>
void binary_contiguous(const float* a, const float* b, float* out, int64_t n) {
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = apply_binary<float>(Op, a[i], b[i]);
  });
}

// a (rows, cols) contiguous, b broadcast along rows: b[j] (row_b) or b[i] (col_b).
template <BinaryOp Op, bool kBRow>
void binary_rows(const float* a, const float* b, float* out, int64_t rows, int64_t cols, bool swap) {
  parallel_for(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(cols, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* ar = a + r * cols;
      float* o = out + r * cols;
      if constexpr (kBRow) {
        if (swap) for (int64_t j = 0; j < cols; ++j) o[j] = apply_binary<float>(Op, b[j], ar[j]);
        else for (int64_t j = 0; j < cols; ++j) o[j] = apply_binary<float>(Op, ar[j], b[j]);
      } else {
        float br = b[r];
        if (swap) for (int64_t j = 0; j < cols; ++j) o[j] = apply_binary<float>(Op, br, ar[j]);
        else for (int64_t j = 0; j < cols; ++j) o[j] = apply_binary<float>(Op, ar[j], br);
      }
    }
  });
}

bool is_packed(const Strides& strides, const Shape& shape) { return strides == contiguous_strides(shape); }

// True when `strides` reads a tensor of shape `shape` as a packed block of the last `tail` axes
// repeated over the leading axes (stride 0 there): a row-vector broadcast.
bool is_row_broadcast(const Strides& strides, const Shape& shape, size_t tail) {
  size_t lead = shape.size() - tail;
  for (size_t i = 0; i < lead; ++i) if (strides[i] != 0 && shape[i] != 1) return false;
  int64_t expected = 1;
  for (size_t i = shape.size(); i-- > lead;) {
    if (shape[i] != 1 && strides[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

template <BinaryOp Op>
void binary_dispatch(const float* a, const Strides& as, const float* b, const Strides& bs, float* out,
                     const Shape& shape) {
  const int64_t n = shape_numel(shape);
  const bool a_packed = is_packed(as, shape), b_packed = is_packed(bs, shape);
  if (a_packed && b_packed) return binary_contiguous<Op>(a, b, out, n);
  // One packed operand and the other broadcast over leading axes (bias add, scaling by a row).
  for (int pass = 0; pass < 2; ++pass) {
    const bool swap = pass == 1;
    const float* x = swap ? b : a;
    const float* y = swap ? a : b;
    const Strides& xs = swap ? bs : as;
    const Strides& ys = swap ? as : bs;
    if (!is_packed(xs, shape)) continue;
    for (size_t tail = 1; tail <= shape.size(); ++tail) {
      if (!is_row_broadcast(ys, shape, tail)) continue;
      int64_t cols = 1;
      for (size_t i = shape.size() - tail; i < shape.size(); ++i) cols *= shape[i];
      return binary_rows<Op, true>(x, y, out, n / std::max<int64_t>(cols, 1), cols, swap);
    }
    // Column broadcast: y varies along leading axes only, constant over the last axis.
    if (shape.size() >= 2 && ys.back() == 0) {
      Shape lead_shape(shape.begin(), shape.end() - 1);
      Strides lead_strides(ys.begin(), ys.end() - 1);
      if (is_packed(lead_strides, lead_shape))
        return binary_rows<Op, false>(x, y, out, n / shape.back(), shape.back(), swap);
    }
  }
  ref::binary<float>(Op, a, as, b, bs, out, shape);  // general strided case
}
}  // namespace

void binary(BinaryOp op, const float* a, const Strides& as, const float* b, const Strides& bs, float* out,
            const Shape& shape) {
  switch (op) {
    case BinaryOp::add: return binary_dispatch<BinaryOp::add>(a, as, b, bs, out, shape);
    case BinaryOp::sub: return binary_dispatch<BinaryOp::sub>(a, as, b, bs, out, shape);
    case BinaryOp::mul: return binary_dispatch<BinaryOp::mul>(a, as, b, bs, out, shape);
    case BinaryOp::div: return binary_dispatch<BinaryOp::div>(a, as, b, bs, out, shape);
  }
}

void scale_shift(const float* x, float* out, int64_t n, double scale, double shift) {
  const float s = float(scale), t = float(shift);
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = x[i] * s + t;
  });
}

void sum_middle(const float* x, float* out, int64_t outer, int64_t reduce, int64_t inner) {
  if (inner == 1) {
    // Reduce contiguous rows: 16 f32 lanes per row, lanes combined in double.
    parallel_for(outer, std::max<int64_t>(1, kGrain / std::max<int64_t>(reduce, 1)), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        const float* row = x + o * reduce;
        float lanes[16] = {};
        int64_t r = 0;
        for (; r + 16 <= reduce; r += 16)
          for (int l = 0; l < 16; ++l) lanes[l] += row[r + l];
        double total = 0;
        for (int l = 0; l < 16; ++l) total += lanes[l];
        for (; r < reduce; ++r) total += row[r];
        out[o] = float(total);
      }
    });
    return;
  }
  // Reduce over a strided axis: accumulate whole inner rows (vectorized over inner) in f32.
  parallel_for(outer * inner, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t idx = begin; idx < end;) {
      int64_t o = idx / inner, i0 = idx % inner;
      int64_t i1 = std::min(inner, i0 + (end - idx));
      float* dst = out + o * inner;
      for (int64_t i = i0; i < i1; ++i) dst[i] = 0.0f;
      for (int64_t r = 0; r < reduce; ++r) {
        const float* src = x + (o * reduce + r) * inner;
        for (int64_t i = i0; i < i1; ++i) dst[i] += src[i];
      }
      idx += i1 - i0;
    }
  });
}

}  // namespace cpu
}  // namespace kernels
}  // namespace frugal
