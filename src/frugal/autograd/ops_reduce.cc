// Reductions over axes (sum, mean, max) and softmax / log_softmax along one axis.
// Reductions view x as (outer, reduce, inner) after moving the reduced axes together.
#include <algorithm>

#include "frugal/autograd/ops.h"
#include "frugal/kernels/cpu/elementwise.h"
#include "frugal/kernels/cpu/softmax.h"
#include "frugal/kernels/kernels.h"
#include "frugal/kernels/ref/softmax.h"

namespace frugal {

namespace {
std::vector<int64_t> normalized_axes(const std::vector<int64_t>& axes, int64_t rank) {
  std::vector<int64_t> out;
  if (axes.empty()) {
    for (int64_t i = 0; i < rank; ++i) out.push_back(i);
    return out;
  }
  for (int64_t a : axes) out.push_back(normalize_axis(a, rank));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Shape reduced_shape(const Shape& shape, const std::vector<int64_t>& axes, bool keepdim) {
  Shape out;
  for (int64_t i = 0; i < int64_t(shape.size()); ++i) {
    bool reduced = std::find(axes.begin(), axes.end(), i) != axes.end();
    if (!reduced) out.push_back(shape[i]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

// Sums x over `axes` (sorted, unique). Moves kept axes first, reduced last when they are not
// already one contiguous run, then reduces the middle of (outer, reduce, inner).
Tensor sum_forward(const Tensor& x, const std::vector<int64_t>& axes, bool keepdim) {
  const int64_t rank = x.rank();
  Tensor src = x;
  int64_t outer = 1, reduce = 1, inner = 1;
  bool run = axes.empty() || axes.back() - axes.front() + 1 == int64_t(axes.size());
  if (run && !axes.empty()) {
    for (int64_t i = 0; i < axes.front(); ++i) outer *= x.shape()[i];
    for (int64_t a : axes) reduce *= x.shape()[a];
    for (int64_t i = axes.back() + 1; i < rank; ++i) inner *= x.shape()[i];
    src = x.contiguous();
  } else {
    std::vector<int64_t> order;
    for (int64_t i = 0; i < rank; ++i)
      if (std::find(axes.begin(), axes.end(), i) == axes.end()) { order.push_back(i); outer *= x.shape()[i]; }
    for (int64_t a : axes) { order.push_back(a); reduce *= x.shape()[a]; }
    src = x.permute_view(order).contiguous();
  }
  Tensor out = Tensor::empty(reduced_shape(x.shape(), axes, keepdim), x.dtype());
  kernels::dispatch_float(
      x.dtype(), "sum",
      [&](auto tag) {
        using T = decltype(tag);
        kernels::ref::sum_middle<T>(src.data<T>(), out.data<T>(), outer, reduce, inner);
      },
      [&] { kernels::cpu::sum_middle(src.data<float>(), out.data<float>(), outer, reduce, inner); });
  return out;
}

// (outer, n, inner) sizes of a contiguous tensor around `axis`.
struct AxisSplit {
  int64_t outer = 1, n = 1, inner = 1;
};
AxisSplit split_at(const Shape& shape, int64_t axis) {
  AxisSplit s;
  for (int64_t i = 0; i < int64_t(shape.size()); ++i) {
    if (i < axis) s.outer *= shape[i];
    else if (i == axis) s.n = shape[i];
    else s.inner *= shape[i];
  }
  return s;
}

int64_t checked_axis(const char* op, int64_t axis, const Tensor& x) {
  const int64_t rank = x.rank();
  if (axis < -rank || axis >= rank)
    throw InputError(std::string(op) + ": axis " + std::to_string(axis) + " out of range for shape " +
                     shape_str(x.shape()));
  return axis < 0 ? axis + rank : axis;
}

// y = softmax or log_softmax of x along axis (contiguous, same shape as x).
Tensor softmax_forward(const Tensor& x, int64_t axis, bool log, const char* name) {
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  const AxisSplit s = split_at(x.shape(), axis);
  kernels::dispatch_float(
      x.dtype(), name,
      [&](auto tag) {
        using T = decltype(tag);
        kernels::ref::softmax_forward<T>(xc.data<T>(), out.data<T>(), s.outer, s.n, s.inner, log);
      },
      [&] { kernels::cpu::softmax_forward(xc.data<float>(), out.data<float>(), s.outer, s.n, s.inner, log); });
  return out;
}

Tensor softmax_backward(const Tensor& y, const Tensor& grad_y, int64_t axis, bool log, const char* name) {
  Tensor g = grad_y.contiguous();
  Tensor grad_x = Tensor::empty(y.shape(), y.dtype());
  const AxisSplit s = split_at(y.shape(), axis);
  kernels::dispatch_float(
      y.dtype(), name,
      [&](auto tag) {
        using T = decltype(tag);
        kernels::ref::softmax_backward<T>(y.data<T>(), g.data<T>(), grad_x.data<T>(), s.outer, s.n, s.inner, log);
      },
      [&] {
        kernels::cpu::softmax_backward(y.data<float>(), g.data<float>(), grad_x.data<float>(), s.outer, s.n,
                                       s.inner, log);
      });
  return grad_x;
}

Tensor softmax_op(const Tensor& x, int64_t axis_in, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  const int64_t axis = checked_axis(name, axis_in, x);
  Tensor out = softmax_forward(x, axis, log, name);
  if (!autograd::needs_grad({&x})) return out;
  Tensor saved = out.detach();
  return autograd::record(out, name, {x}, [=](const Tensor& g) -> std::vector<Tensor> {
    return {softmax_backward(saved, g, axis, log, name)};
  });
}

// Gradient of a reduction: g (reduced shape) reshaped with kept axes, broadcast to x's shape.
Tensor expand_reduced_grad(const Tensor& g, const Shape& x_shape, const std::vector<int64_t>& axes) {
  Tensor kept = reshape(g, reduced_shape(x_shape, axes, /*keepdim=*/true));
  return broadcast_to(kept, x_shape);
}
}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& axes_in, bool keepdim) {
  std::vector<int64_t> axes = normalized_axes(axes_in, x.rank());
  Tensor out = sum_forward(x, axes, keepdim);
  Shape x_shape = x.shape();
  return autograd::record(out, "sum", {x}, [=](const Tensor& g) -> std::vector<Tensor> {
    return {expand_reduced_grad(g, x_shape, axes)};
  });
}

Tensor max(const Tensor& x, int64_t axis_in, bool keepdim) {
  const int64_t axis = checked_axis("max", axis_in, x);
  if (x.shape()[axis] == 0)
    throw InputError("max: axis " + std::to_string(axis_in) + " of shape " + shape_str(x.shape()) + " is empty");
  Tensor xc = x.contiguous();
  const AxisSplit s = split_at(x.shape(), axis);
  Tensor out = Tensor::empty(reduced_shape(x.shape(), {axis}, keepdim), x.dtype());
  Tensor argmax = Tensor::empty({s.outer * s.inner}, DType::i64);  // (outer * inner)
  kernels::dispatch_float(
      x.dtype(), "max",
      [&](auto tag) {
        using T = decltype(tag);
        kernels::ref::max_middle<T>(xc.data<T>(), out.data<T>(), argmax.data<int64_t>(), s.outer, s.n, s.inner);
      },
      [&] {
        kernels::cpu::max_middle(xc.data<float>(), out.data<float>(), argmax.data<int64_t>(), s.outer, s.n, s.inner);
      });
  Shape x_shape = x.shape();
  return autograd::record(out, "max", {x}, [=](const Tensor& g_in) -> std::vector<Tensor> {
    // The whole gradient goes to the first maximal element of each reduced line.
    Tensor g = g_in.contiguous();
    Tensor grad_x = Tensor::zeros(x_shape, g.dtype());
    // A plain scatter, exact in any precision: the same loop serves both paths.
    auto scatter = [&](auto tag) {
      using T = decltype(tag);
      const T* src = g.data<T>();
      T* dst = grad_x.data<T>();
      const int64_t* index = argmax.data<int64_t>();
      for (int64_t o = 0; o < s.outer; ++o)
        for (int64_t i = 0; i < s.inner; ++i) dst[(o * s.n + index[o * s.inner + i]) * s.inner + i] = src[o * s.inner + i];
    };
    kernels::dispatch_float(g.dtype(), "max backward", scatter, [&] { scatter(float{}); });
    return {grad_x};
  });
}

Tensor softmax(const Tensor& x, int64_t axis) { return softmax_op(x, axis, /*log=*/false); }
Tensor log_softmax(const Tensor& x, int64_t axis) { return softmax_op(x, axis, /*log=*/true); }

Tensor mean(const Tensor& x, const std::vector<int64_t>& axes_in, bool keepdim) {
  std::vector<int64_t> axes = normalized_axes(axes_in, x.rank());
  int64_t count = 1;
  for (int64_t a : axes) count *= x.shape()[a];
  return mul_scalar(sum(x, axes, keepdim), count ? 1.0 / double(count) : 0.0);
}

}  // namespace frugal
