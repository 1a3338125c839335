// Reductions over axes (sum, mean, max) and softmax / log_softmax along one axis.
// Reductions view x as (outer, reduce, inner) after moving the reduced axes together.
#include <algorithm>

#include "frugal/autograd/ops.h"
#include "frugal/kernels/cpu/elementwise.h"
#include "frugal/kernels/kernels.h"

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

Tensor mean(const Tensor& x, const std::vector<int64_t>& axes_in, bool keepdim) {
  std::vector<int64_t> axes = normalized_axes(axes_in, x.rank());
  int64_t count = 1;
  for (int64_t a : axes) count *= x.shape()[a];
  return mul_scalar(sum(x, axes, keepdim), count ? 1.0 / double(count) : 0.0);
}

}  // namespace frugal
