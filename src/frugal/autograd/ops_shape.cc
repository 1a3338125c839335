// Shape ops: reshape, permute, transpose, slice, concat, broadcast_to. Forward makes a view (or
// a packed copy when a view is impossible); backward routes the gradient back to input positions.
#include "frugal/autograd/ops.h"

namespace frugal {

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

}  // namespace frugal
