// add, sub, mul, div with NumPy broadcasting, and the scalar forms. Gradients of broadcast
// operands are summed back to their shapes (autograd::reduce_to_shape).
#include "frugal/autograd/ops.h"
#include "frugal/kernels/cpu/elementwise.h"
#include "frugal/kernels/kernels.h"

namespace frugal {

namespace {
using kernels::BinaryOp;

const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::add: return "add";
    case BinaryOp::sub: return "sub";
    case BinaryOp::mul: return "mul";
    case BinaryOp::div: return "div";
  }
  return "?";
}

// compute = false: shapes and dtypes checked, the output allocated and left unwritten.
Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b, bool compute = true) {
  const char* name = binary_name(op);
  if (a.dtype() != b.dtype())
    throw InputError(std::string(name) + ": dtypes differ (" + std::string(dtype_name(a.dtype())) + " and " +
                     std::string(dtype_name(b.dtype())) + ")");
  Shape shape = broadcast_shapes(a.shape(), b.shape());
  Tensor av = a.expand_view(shape), bv = b.expand_view(shape);
  Tensor out = Tensor::empty(shape, a.dtype());
  if (!compute) return out;
  kernels::dispatch_float(
      a.dtype(), name,
      [&](auto tag) {
        using T = decltype(tag);
        kernels::ref::binary<T>(op, av.data<T>(), av.strides(), bv.data<T>(), bv.strides(), out.data<T>(), shape);
      },
      [&] {
        kernels::cpu::binary(op, av.data<float>(), av.strides(), bv.data<float>(), bv.strides(),
                             out.data<float>(), shape);
      });
  return out;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  // add and sub backpropagate without reading a value: in an UnreadOutputs scope they only record.
  const bool linear_in_inputs = op == BinaryOp::add || op == BinaryOp::sub;
  Tensor out = binary_forward(op, a, b, !(linear_in_inputs && autograd::skip_output({&a, &b}, {})));
  if (!autograd::needs_grad({&a, &b})) return out;
  Tensor a_saved = a.detach(), b_saved = b.detach();
  Shape a_shape = a.shape(), b_shape = b.shape();
  bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return autograd::record(out, binary_name(op), {a, b}, [=](const Tensor& g) -> std::vector<Tensor> {
    Tensor ga, gb;
    switch (op) {
      case BinaryOp::add:
        if (need_a) ga = g;
        if (need_b) gb = g;
        break;
      case BinaryOp::sub:
        if (need_a) ga = g;
        if (need_b) gb = neg(g);
        break;
      case BinaryOp::mul:
        if (need_a) ga = mul(g, b_saved);
        if (need_b) gb = mul(g, a_saved);
        break;
      case BinaryOp::div:
        if (need_a) ga = div(g, b_saved);
        if (need_b) gb = neg(div(mul(g, a_saved), mul(b_saved, b_saved)));
        break;
    }
    if (ga.defined()) ga = autograd::reduce_to_shape(ga, a_shape);
    if (gb.defined()) gb = autograd::reduce_to_shape(gb, b_shape);
    return {ga, gb};
  });
}

// out = x * scale + shift, the one kernel behind add_scalar, mul_scalar and neg.
Tensor scale_shift(const Tensor& x, double scale, double shift, const char* name) {
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  kernels::dispatch_float(
      x.dtype(), name,
      [&](auto tag) {
        using T = decltype(tag);
        kernels::ref::scale_shift<T>(xc.data<T>(), out.data<T>(), out.numel(), scale, shift);
      },
      [&] { kernels::cpu::scale_shift(xc.data<float>(), out.data<float>(), out.numel(), scale, shift); });
  return autograd::record(out, name, {x}, [scale](const Tensor& g) -> std::vector<Tensor> {
    return {scale == 1.0 ? g : mul_scalar(g, scale)};
  });
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::div, a, b); }
Tensor add_scalar(const Tensor& a, double value) { return scale_shift(a, 1.0, value, "add_scalar"); }
Tensor mul_scalar(const Tensor& a, double value) { return scale_shift(a, value, 0.0, "mul_scalar"); }
Tensor neg(const Tensor& a) { return scale_shift(a, -1.0, 0.0, "neg"); }

}  // namespace frugal
