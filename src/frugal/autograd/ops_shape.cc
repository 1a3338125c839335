// Shape ops: reshape, permute, transpose, slice, concat, broadcast_to. Forward makes a view (or
// a packed copy when a view is impossible); backward routes the gradient back to input positions.
// Limits: any dtype moves through these ops, but only float tensors carry gradients.
#include <algorithm>
#include <cstring>
#include <string>

#include "frugal/autograd/ops.h"
#include "frugal/base/parallel.h"

namespace frugal {

namespace {
std::string axes_str(const std::vector<int64_t>& axes) {
  std::string s = "(";
  for (size_t i = 0; i < axes.size(); ++i) s += (i ? ", " : "") + std::to_string(axes[i]);
  return s + ")";
}

// Resolves a possibly negative axis; an out-of-range axis is the caller's input error.
int64_t checked_axis(const char* op, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank)
    throw InputError(std::string(op) + ": axis " + std::to_string(axis) + " out of range for rank " +
                     std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

// Copies a strided view whose last axis is not the source's unit-stride axis (a transpose):
// a plain row-major walk would read with a large stride, so it copies 32x32 tiles between the
// view's last axis and the axis `unit` that has stride 1. Word is the element's size class.
template <class Word>
void tiled_copy(const Tensor& view, int64_t unit, Tensor& out) {
  const int64_t rank = view.rank(), last = rank - 1;
  const Shape& shape = view.shape();
  const Strides& in_strides = view.strides();
  const Strides out_strides = contiguous_strides(shape);
  // Base offsets of every 2-D (unit, last) block: the other axes walked in row-major order.
  Shape outer_shape = shape;
  outer_shape[unit] = 1;
  outer_shape[last] = 1;
  std::vector<std::pair<int64_t, int64_t>> bases;  // (in, out) element offsets
  for_each_offset2(outer_shape, in_strides, out_strides, [&](int64_t i, int64_t o) { bases.emplace_back(i, o); });
  constexpr int64_t kTile = 32;
  const int64_t rows = shape[unit], cols = shape[last];  // rows: stride 1 in, cols: stride 1 out
  const int64_t in_col = in_strides[last], out_row = out_strides[unit];
  const int64_t row_tiles = (rows + kTile - 1) / kTile;
  const Word* src = static_cast<const Word*>(view.raw_data());
  Word* dst = static_cast<Word*>(out.raw_data());
  parallel_for(int64_t(bases.size()) * row_tiles, std::max<int64_t>(1, 16384 / (kTile * std::max<int64_t>(cols, 1))),
               [&](int64_t begin, int64_t end) {
                 for (int64_t t = begin; t < end; ++t) {
                   const auto [in_base, out_base] = bases[size_t(t / row_tiles)];
                   const int64_t r0 = (t % row_tiles) * kTile, r1 = std::min(rows, r0 + kTile);
                   for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
                     const int64_t c1 = std::min(cols, c0 + kTile);
                     for (int64_t r = r0; r < r1; ++r)
                       for (int64_t c = c0; c < c1; ++c)
                         dst[out_base + r * out_row + c] = src[in_base + r + c * in_col];
                   }
                 }
               });
}

// A contiguous result that is a fresh handle, never one of the op's inputs.
Tensor packed_result(const Tensor& view, const Tensor& input) {
  if (view.is_contiguous()) return view.same(input) ? view.detach() : view;
  const int64_t rank = view.rank();
  int64_t unit = -1;
  for (int64_t i = 0; i < rank - 1; ++i)
    if (view.strides()[i] == 1 && view.shape()[i] > 1) unit = i;
  if (unit < 0 || view.shape()[rank - 1] == 1) return view.contiguous();  // the plain copy reads rows in order
  Tensor out = Tensor::empty(view.shape(), view.dtype());
  switch (dtype_size(view.dtype())) {
    case 1: tiled_copy<uint8_t>(view, unit, out); break;
    case 2: tiled_copy<uint16_t>(view, unit, out); break;
    case 4: tiled_copy<uint32_t>(view, unit, out); break;
    case 8: tiled_copy<uint64_t>(view, unit, out); break;
    default: return view.contiguous();
  }
  return out;
}
}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape) {
  Tensor out = x.contiguous().view(shape);
  if (out.storage() == x.storage()) out = out.detach();  // a fresh handle, not x itself
  Shape x_shape = x.shape();
  return autograd::record(out, "reshape", {x}, [x_shape](const Tensor& g) -> std::vector<Tensor> {
    return {reshape(g, x_shape)};
  });
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  Tensor out = x.expand_view(shape).contiguous();
  if (out.storage() == x.storage()) out = out.detach();
  Shape x_shape = x.shape();
  return autograd::record(out, "broadcast_to", {x}, [x_shape](const Tensor& g) -> std::vector<Tensor> {
    return {autograd::reduce_to_shape(g, x_shape)};
  });
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& axes_in) {
  const int64_t rank = x.rank();
  if (int64_t(axes_in.size()) != rank)
    throw InputError("permute: axes " + axes_str(axes_in) + " do not match rank " + std::to_string(rank) +
                     " of shape " + shape_str(x.shape()));
  std::vector<int64_t> axes(rank), inverse(rank, -1);
  for (int64_t i = 0; i < rank; ++i) {
    axes[i] = checked_axis("permute", axes_in[i], rank);
    if (inverse[axes[i]] >= 0) throw InputError("permute: axes " + axes_str(axes_in) + " repeat an axis");
    inverse[axes[i]] = i;
  }
  Tensor out = packed_result(x.permute_view(axes), x);
  return autograd::record(out, "permute", {x}, [inverse](const Tensor& g) -> std::vector<Tensor> {
    return {permute(g, inverse)};
  });
}

Tensor transpose(const Tensor& x, int64_t a, int64_t b) {
  const int64_t rank = x.rank();
  a = checked_axis("transpose", a, rank);
  b = checked_axis("transpose", b, rank);
  Tensor out = packed_result(x.transpose_view(a, b), x);
  return autograd::record(out, "transpose", {x}, [a, b](const Tensor& g) -> std::vector<Tensor> {
    return {transpose(g, a, b)};
  });
}

Tensor slice(const Tensor& x, int64_t axis, int64_t start, int64_t stop, int64_t step) {
  axis = checked_axis("slice", axis, x.rank());
  if (step <= 0) throw InputError("slice: step must be positive, got " + std::to_string(step));
  Tensor out = packed_result(x.slice_view(axis, start, stop, step), x);
  Shape x_shape = x.shape();
  return autograd::record(out, "slice", {x}, [=](const Tensor& g) -> std::vector<Tensor> {
    // Positions the slice skipped get zero gradient.
    Tensor gx = Tensor::zeros(x_shape, g.dtype());
    gx.slice_view(axis, start, stop, step).copy_from(g);
    return {gx};
  });
}

Tensor concat(const std::vector<Tensor>& xs, int64_t axis) {
  if (xs.empty()) throw InputError("concat: no tensors given");
  const Tensor& first = xs.front();
  const int64_t rank = first.rank();
  axis = checked_axis("concat", axis, rank);
  Shape shape = first.shape();
  shape[axis] = 0;
  std::vector<int64_t> sizes;
  for (size_t k = 0; k < xs.size(); ++k) {
    const Tensor& x = xs[k];
    bool same_other_axes = x.rank() == rank;
    for (int64_t i = 0; same_other_axes && i < rank; ++i)
      if (i != axis && x.shape()[i] != first.shape()[i]) same_other_axes = false;
    if (!same_other_axes)
      throw InputError("concat: tensor " + std::to_string(k) + " has shape " + shape_str(x.shape()) +
                       ", expected " + shape_str(first.shape()) + " except along axis " + std::to_string(axis));
    if (x.dtype() != first.dtype())
      throw InputError("concat: tensor " + std::to_string(k) + " is " + std::string(dtype_name(x.dtype())) +
                       ", expected " + std::string(dtype_name(first.dtype())));
    sizes.push_back(x.shape()[axis]);
    shape[axis] += x.shape()[axis];
  }
  Tensor out = Tensor::empty(shape, first.dtype());
  // Viewed as (outer, total * inner): each input fills a block of columns in every outer row.
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= shape[i];
  for (int64_t i = axis + 1; i < rank; ++i) inner *= shape[i];
  const size_t elem = dtype_size(first.dtype());
  const int64_t out_row = shape[axis] * inner;
  int64_t column = 0;
  for (size_t k = 0; k < xs.size(); ++k) {
    const int64_t block = sizes[k] * inner;
    if (block > 0 && outer > 0) {
      Tensor src = xs[k].contiguous();
      const char* s = static_cast<const char*>(src.raw_data());
      char* d = static_cast<char*>(out.raw_data()) + column * int64_t(elem);
      parallel_for(outer, std::max<int64_t>(1, 16384 / block), [&](int64_t o0, int64_t o1) {
        for (int64_t o = o0; o < o1; ++o)
          std::memcpy(d + o * out_row * int64_t(elem), s + o * block * int64_t(elem), size_t(block) * elem);
      });
    }
    column += block;
  }
  std::vector<bool> need(xs.size());
  for (size_t k = 0; k < xs.size(); ++k) need[k] = xs[k].requires_grad();
  return autograd::record(out, "concat", xs, [=](const Tensor& g) -> std::vector<Tensor> {
    std::vector<Tensor> grads(sizes.size());
    int64_t start = 0;
    for (size_t k = 0; k < sizes.size(); ++k) {
      if (need[k]) grads[k] = slice(g, axis, start, start + sizes[k]);
      start += sizes[k];
    }
    return grads;
  });
}

}  // namespace frugal
