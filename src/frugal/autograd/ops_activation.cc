// Activations: relu, gelu (erf and tanh forms), silu, sigmoid, tanh. Each backward is one fused
// kernel pass g * f'(saved), saving the input x (or the output y for sigmoid and tanh).
// Limits: f32 and f64 only; the backward kernel is not itself differentiable (first derivatives).
#include "frugal/autograd/ops.h"
#include "frugal/kernels/cpu/activation.h"
#include "frugal/kernels/kernels.h"

namespace frugal {

namespace {
using kernels::ActivationOp;

const char* activation_name(ActivationOp op) {
  switch (op) {
    case ActivationOp::relu: return "relu";
    case ActivationOp::gelu_erf: return "gelu";
    case ActivationOp::gelu_tanh: return "gelu_tanh";
    case ActivationOp::silu: return "silu";
    case ActivationOp::sigmoid: return "sigmoid";
    case ActivationOp::tanh: return "tanh";
  }
  return "?";
}

// grad_x = grad_y * f'(saved), one pass over contiguous buffers.
Tensor activation_backward(ActivationOp op, const Tensor& saved, const Tensor& grad_y) {
  Tensor g = grad_y.contiguous();
  Tensor grad_x = Tensor::empty(saved.shape(), saved.dtype());
  kernels::dispatch_float(
      saved.dtype(), activation_name(op),
      [&](auto tag) {
        using T = decltype(tag);
        kernels::ref::activation_backward<T>(op, saved.data<T>(), g.data<T>(), grad_x.data<T>(), g.numel());
      },
      [&] {
        kernels::cpu::activation_backward(op, saved.data<float>(), g.data<float>(), grad_x.data<float>(),
                                          g.numel());
      });
  return grad_x;
}

Tensor activation(ActivationOp op, const Tensor& x) {
  const char* name = activation_name(op);
  Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  kernels::dispatch_float(
      x.dtype(), name,
      [&](auto tag) {
        using T = decltype(tag);
        kernels::ref::activation_forward<T>(op, xc.data<T>(), out.data<T>(), out.numel());
      },
      [&] { kernels::cpu::activation_forward(op, xc.data<float>(), out.data<float>(), out.numel()); });
  if (!autograd::needs_grad({&x})) return out;
  Tensor saved = (kernels::activation_backward_uses_output(op) ? out : xc).detach();
  return autograd::record(out, name, {x}, [op, saved](const Tensor& g) -> std::vector<Tensor> {
    return {activation_backward(op, saved, g)};
  });
}
}  // namespace

Tensor relu(const Tensor& x) { return activation(ActivationOp::relu, x); }
Tensor gelu(const Tensor& x, GeluApproximation approximation) {
  return activation(approximation == GeluApproximation::tanh ? ActivationOp::gelu_tanh : ActivationOp::gelu_erf, x);
}
Tensor silu(const Tensor& x) { return activation(ActivationOp::silu, x); }
Tensor sigmoid(const Tensor& x) { return activation(ActivationOp::sigmoid, x); }
Tensor tanh(const Tensor& x) { return activation(ActivationOp::tanh, x); }

}  // namespace frugal
